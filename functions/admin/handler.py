"""Lambda entry point for the tenant-facing admin routes on the HTTP API: `GET /usage`.

Thin: parse the API Gateway event, call the admin service, render.
"""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from llm_gateway.entrypoints import install_error_handlers, to_powertools
from llm_gateway.observability import logger, metrics, tracer
from llm_gateway.service.admin import admin_service
from llm_gateway.service.http import HttpRequest

app = APIGatewayHttpResolver()
install_error_handlers(app)


@app.get("/usage")
def usage():
    return to_powertools(admin_service().usage(HttpRequest.from_apigw_v2(app.current_event.raw_event)))


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
