"""Lambda entry point for `POST /embeddings` on the HTTP API. Thin: event → service → response."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from llm_gateway.entrypoints import install_error_handlers, to_powertools
from llm_gateway.observability import logger, metrics, tracer
from llm_gateway.service.embeddings import embeddings_service
from llm_gateway.service.http import HttpRequest

app = APIGatewayHttpResolver()
install_error_handlers(app)


@app.post("/embeddings")
def embeddings():
    return to_powertools(embeddings_service().embeddings(HttpRequest.from_apigw_v2(app.current_event.raw_event)))


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
