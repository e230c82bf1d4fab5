"""The local server: one port, every route, invoking the real Lambda handlers.

Each HTTP request becomes an API Gateway v2 (HTTP API) event and is passed to the handler the
deployed API would call, in a worker thread. A `POST /chat/completions` whose body says
`"stream": true` is handed to the streaming app (`functions/chat_stream`, what the Function URL
serves when deployed), so SSE frames reach the client as the provider produces them; the HTTP API
Lambda path keeps answering the same SSE body buffered, as deployed.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from llm_gateway import heap
from llm_gateway.api.errors import GatewayError
from llm_gateway.config import settings
from llm_gateway.local.routes import handler_module_for

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class LambdaContext:
    """Enough of the Lambda context object for Powertools."""

    function_name: str
    aws_request_id: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    log_group_name: str = "/local"
    log_stream_name: str = "local"
    timeout_ms: int = 29_000

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def apigw_v2_event(method: str, path: str, query: str, headers: dict[str, str], body: bytes, request_id: str, source_ip: str) -> dict[str, Any]:
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    qs: dict[str, str] = {}
    if query:
        from urllib.parse import parse_qsl

        for k, v in parse_qsl(query, keep_blank_values=True):
            qs[k] = f"{qs[k]},{v}" if k in qs else v
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip, "userAgent": headers.get("user-agent", "")},
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": encoded,
    }
    if qs:
        event["queryStringParameters"] = qs
    if body:
        event["body"] = text
    return event


class LocalGateway:
    """Raw ASGI app (no framework in the request path)."""

    def __init__(self, workers: int = 32) -> None:
        self._handlers: dict[str, Callable[..., dict[str, Any]]] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda")
        self.stream_app: Any = None
        self.websocket_app: Any = None
        try:
            self.stream_app = importlib.import_module("functions.chat_stream.app").app
        except ModuleNotFoundError:
            self.stream_app = None
        try:
            self.websocket_app = importlib.import_module("llm_gateway.local.realtime").app
        except ModuleNotFoundError:
            self.websocket_app = None

    def handler(self, module: str) -> Callable[..., dict[str, Any]]:
        fn = self._handlers.get(module)
        if fn is None:
            fn = importlib.import_module(module).lambda_handler
            self._handlers[module] = fn
        return fn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            if self.websocket_app is None:
                await send({"type": "websocket.close", "code": 1008})
            else:
                await self.websocket_app(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _read_body(self, receive: Receive, limit: int) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks) if size <= limit else None

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        request_id = "req_" + uuid.uuid4().hex
        limit = settings().max_body_bytes
        body = await self._read_body(receive, limit)
        if body is None:
            err = GatewayError("payload_too_large", f"The body is larger than the limit of {limit} bytes.", limit_bytes=limit)
            await _send_problem(send, err, request_id)
            return
        if self.stream_app is not None and scope["method"] == "POST" and path in STREAM_PATHS and wants_stream(body):
            # what the Function URL serves when deployed: true SSE, frames sent as produced
            await self.stream_app(scope, _replay(body, receive), send)
            heap.settle()
            return
        module = handler_module_for(path)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if module is None:
            await _send_problem(send, GatewayError("not_found", f"There is no route {scope['method']} {path[:200]}."), request_id)
            return
        try:
            fn = self.handler(module)
        except ModuleNotFoundError:
            await _send_problem(send, GatewayError("not_found", f"There is no route {scope['method']} {path[:200]} in this build."), request_id)
            return
        client = scope.get("client") or ("127.0.0.1", 0)
        event = apigw_v2_event(scope["method"], path, scope.get("query_string", b"").decode("latin-1"), headers, body, request_id, client[0])
        context = LambdaContext(function_name=module.split(".")[1], aws_request_id=request_id)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._pool, fn, event, context)
        await _send_result(send, result)
        heap.settle()


STREAM_PATH = "/chat/completions"
# and the front doors' streamed chat routes (llm_gateway/compat), which the streaming app also serves
STREAM_PATHS = frozenset({STREAM_PATH, "/openai/v1/chat/completions", "/anthropic/v1/messages"})


def wants_stream(body: bytes) -> bool:
    """Whether a chat body asks for `"stream": true` (parsed only when the word is there)."""
    if b'"stream"' not in body:
        return False
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("stream") is True


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the already-read body once, then the client's own messages
    (so the streaming app still sees `http.disconnect`)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_result(send: Send, result: dict[str, Any]) -> None:
    status = int(result.get("statusCode", 200))
    headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in (result.get("headers") or {}).items()]
    for k, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((k.lower().encode("latin-1"), str(v).encode("latin-1")) for v in values)
    for cookie in result.get("cookies") or []:
        headers.append((b"set-cookie", cookie.encode("latin-1")))
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_problem(send: Send, err: GatewayError, request_id: str) -> None:
    body = err.to_problem()
    body["instance"] = request_id
    await _send_result(send, {"statusCode": err.status, "headers": {**err.response_headers(), "x-request-id": request_id}, "body": json.dumps(body)})
