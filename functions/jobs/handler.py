"""Lambda entry point for async jobs on the HTTP API: `POST /jobs`, `GET /jobs/{id}`, `DELETE /jobs/{id}`.

Thin: parse the API Gateway event, call the jobs service, render.
"""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from llm_gateway.entrypoints import install_error_handlers, to_powertools
from llm_gateway.jobs.service import job_service
from llm_gateway.observability import logger, metrics, tracer
from llm_gateway.service.http import HttpRequest

app = APIGatewayHttpResolver()
install_error_handlers(app)


def _request() -> HttpRequest:
    return HttpRequest.from_apigw_v2(app.current_event.raw_event)


@app.post("/jobs")
def submit_job():
    return to_powertools(job_service().submit(_request()))


@app.get("/jobs/<job_id>")
def get_job(job_id: str):
    return to_powertools(job_service().get(_request(), job_id))


@app.delete("/jobs/<job_id>")
def cancel_job(job_id: str):
    return to_powertools(job_service().cancel(_request(), job_id))


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
