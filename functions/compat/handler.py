"""Lambda entry point for the OpenAI- and Anthropic-compatible front doors on the HTTP API
(`/openai/{proxy+}`, `/anthropic/{proxy+}`).

Thin: parse the API Gateway event, call the compat service (which translates and calls the
native services), render. Errors, unknown routes included, are in the door's own shape. Over the
HTTP API a `stream: true` chat gets the door's SSE body buffered (true streaming: the
`chat_stream` Function URL serves the same door paths).
"""

from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from llm_gateway.api.errors import GatewayError
from llm_gateway.compat.service import compat_service, door_of, door_error
from llm_gateway.entrypoints import to_powertools
from llm_gateway.observability import logger, metrics, tracer
from llm_gateway.service.http import HttpRequest

app = APIGatewayHttpResolver()

MODELS_PREFIX = "/openai/v1/models/"
# path -> methods, for the 405 an existing route answers to a wrong method
ROUTES = {
    "/openai/v1/chat/completions": "POST", "/openai/v1/embeddings": "POST", "/openai/v1/images/generations": "POST",
    "/openai/v1/audio/transcriptions": "POST", "/openai/v1/audio/speech": "POST", "/openai/v1/models": "GET",
    "/openai/v1/files": "POST", "/openai/v1/batches": "POST",
    "/anthropic/v1/messages": "POST", "/anthropic/v1/messages/count_tokens": "POST", "/anthropic/v1/models": "GET",
}


def _request() -> HttpRequest:
    return HttpRequest.from_apigw_v2(app.current_event.raw_event)


# ---------------------------------------------------------------- /openai/v1


@app.post("/openai/v1/chat/completions")
def openai_chat():
    return to_powertools(compat_service().openai_chat(_request()))


@app.post("/openai/v1/embeddings")
def openai_embeddings():
    return to_powertools(compat_service().openai_embeddings(_request()))


@app.post("/openai/v1/images/generations")
def openai_images():
    return to_powertools(compat_service().openai_images(_request()))


@app.post("/openai/v1/audio/transcriptions")
def openai_transcriptions():
    return to_powertools(compat_service().openai_transcriptions(_request()))


@app.post("/openai/v1/audio/speech")
def openai_speech():
    return to_powertools(compat_service().openai_speech(_request()))


@app.get("/openai/v1/models")
def openai_models():
    return to_powertools(compat_service().openai_models(_request()))


@app.get("/openai/v1/models/<model_id>")
def openai_model(model_id: str):
    return to_powertools(compat_service().openai_model(_request(), unquote(model_id)))


@app.post("/openai/v1/files")
def openai_file_create():
    return to_powertools(compat_service().openai_file_create(_request()))


@app.get("/openai/v1/files/<file_id>")
def openai_file_get(file_id: str):
    return to_powertools(compat_service().openai_file_get(_request(), file_id))


@app.get("/openai/v1/files/<file_id>/content")
def openai_file_content(file_id: str):
    return to_powertools(compat_service().openai_file_content(_request(), file_id))


@app.post("/openai/v1/batches")
def openai_batch_create():
    return to_powertools(compat_service().openai_batch_create(_request()))


@app.get("/openai/v1/batches/<batch_id>")
def openai_batch_get(batch_id: str):
    return to_powertools(compat_service().openai_batch_get(_request(), batch_id))


@app.post("/openai/v1/batches/<batch_id>/cancel")
def openai_batch_cancel(batch_id: str):
    return to_powertools(compat_service().openai_batch_cancel(_request(), batch_id))


# ---------------------------------------------------------------- /anthropic/v1


@app.post("/anthropic/v1/messages")
def anthropic_messages():
    return to_powertools(compat_service().anthropic_messages(_request()))


@app.post("/anthropic/v1/messages/count_tokens")
def anthropic_count_tokens():
    return to_powertools(compat_service().anthropic_count_tokens(_request()))


@app.get("/anthropic/v1/models")
def anthropic_models():
    return to_powertools(compat_service().anthropic_models(_request()))


# ---------------------------------------------------------------- errors in the door's shape


@app.not_found
def _not_found(_exc: Exception):
    req = _request()
    if req.method == "GET" and req.path.startswith(MODELS_PREFIX):  # model ids with a '/' in them
        return to_powertools(compat_service().openai_model(req, unquote(req.path[len(MODELS_PREFIX):])))
    allowed = ROUTES.get(req.path)
    if allowed is not None:
        err = GatewayError("method_not_allowed", f"{req.method} is not allowed on {req.path}; use {allowed}.", headers={"Allow": allowed})
        problem = {**err.to_problem(), "instance": req.request_id}
        return to_powertools(door_error(door_of(req.path), problem, err.response_headers(), req.request_id))
    return to_powertools(compat_service().not_found(req))


@app.exception_handler(Exception)
def _unexpected(exc: Exception):
    logger.error("unhandled error", extra={"error_type": type(exc).__name__})
    req = _request()
    problem = {"code": "internal_error", "detail": "The gateway failed unexpectedly; the error was logged.", "instance": req.request_id}
    return to_powertools(door_error(door_of(req.path), problem, {}, req.request_id))


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
