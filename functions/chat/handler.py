"""Lambda entry point for the chat family on the HTTP API: `POST /chat/completions`, `GET /models`.

Thin: parse the API Gateway event, call the chat service, render. Over the HTTP API a
`stream: true` request gets the same SSE body, buffered (true streaming: `functions/chat_stream`).
"""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from llm_gateway.entrypoints import install_error_handlers, to_powertools
from llm_gateway.observability import logger, metrics, tracer
from llm_gateway.service.chat import chat_service
from llm_gateway.service.http import HttpRequest

app = APIGatewayHttpResolver()
install_error_handlers(app)


@app.post("/chat/completions")
def chat_completions():
    return to_powertools(chat_service().chat_completions(HttpRequest.from_apigw_v2(app.current_event.raw_event)))


@app.get("/models")
def list_models():
    return to_powertools(chat_service().list_models(HttpRequest.from_apigw_v2(app.current_event.raw_event)))


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
