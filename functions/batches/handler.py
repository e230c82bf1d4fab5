"""Lambda entry point for batches on the HTTP API: `POST /batches`, `GET /batches/{id}`,
`POST /batches/{id}/cancel` (and `DELETE /batches/{id}`, the same cancel).

Thin: parse the API Gateway event, call the batches service, render.
"""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from llm_gateway.entrypoints import install_error_handlers, to_powertools
from llm_gateway.jobs.batch_service import batch_service
from llm_gateway.observability import logger, metrics, tracer
from llm_gateway.service.http import HttpRequest

app = APIGatewayHttpResolver()
install_error_handlers(app)


def _request() -> HttpRequest:
    return HttpRequest.from_apigw_v2(app.current_event.raw_event)


@app.post("/batches")
def create_batch():
    return to_powertools(batch_service().create(_request()))


@app.get("/batches/<batch_id>")
def get_batch(batch_id: str):
    return to_powertools(batch_service().get(_request(), batch_id))


@app.post("/batches/<batch_id>/cancel")
def cancel_batch(batch_id: str):
    return to_powertools(batch_service().cancel(_request(), batch_id))


@app.delete("/batches/<batch_id>")
def delete_batch(batch_id: str):
    return to_powertools(batch_service().cancel(_request(), batch_id))


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
