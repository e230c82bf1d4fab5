"""Entry point of the `chat_stream` function: the streaming chat ASGI app.

Runs under uvicorn (`run.sh`) behind the AWS Lambda Web Adapter and a Function URL with
`InvokeMode.RESPONSE_STREAM`, so `POST /chat/completions` with `stream: true` is true SSE; a
non-stream request gets the buffered JSON answer. The app checks the gateway API key itself
(the Function URL's auth is NONE). `GET /` and `GET /health` answer the adapter's readiness check.
The local server (`python -m llm_gateway.local`) serves every `stream: true` chat request with
this same app. The front doors' streamed chat routes (`POST /openai/v1/chat/completions`,
`POST /anthropic/v1/messages`, `llm_gateway/compat`) are served by it too (`with_doors`).
"""

from llm_gateway.compat.stream import with_doors
from llm_gateway.service.asgi import ChatStreamApp
from llm_gateway.service.chat import chat_service  # noqa: F401 - imported at init, not on the first request

app = with_doors(ChatStreamApp())
