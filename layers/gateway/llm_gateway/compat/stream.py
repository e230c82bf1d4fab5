"""True SSE for the front doors' streamed chat routes, on the streaming transport.

`with_doors(app)` wraps the streaming ASGI app (`functions/chat_stream`: the Function URL when
deployed, and what the local server hands `stream: true` chat requests to): `POST
/openai/v1/chat/completions` and `POST /anthropic/v1/messages` are served by a `ChatStreamApp`
whose service is the compat service — the same worker-thread bridge, backpressure and
disconnect handling as native streams, with the door's translated frames — and everything else
goes to the wrapped app unchanged (attributes too, so the wrapper is transparent).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.compat.service import ANTHROPIC_MESSAGES, OPENAI_CHAT, compat_service, door_error, door_of

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

STREAM_PATHS = frozenset({OPENAI_CHAT, ANTHROPIC_MESSAGES})
DOOR_PREFIXES = ("/openai/", "/anthropic/")


class _DoorService:
    """What the streaming app calls (`chat_completions(req)`), resolved per request so a process
    reset (tests, local reload) is seen."""

    def chat_completions(self, req: Any) -> Any:
        return compat_service().chat_completions(req)


def _request_id(scope: Scope) -> str:
    for k, v in scope.get("headers") or ():
        if k == b"x-amzn-request-context":  # the Lambda Web Adapter passes the request context
            try:
                rid = json.loads(v).get("requestId")
            except (ValueError, AttributeError):
                rid = None
            if isinstance(rid, str) and rid:
                return rid
    return "req_" + uuid.uuid4().hex


async def _send_error(send: Send, path: str, err: GatewayError, rid: str) -> None:
    problem = {**err.to_problem(), "instance": rid}
    resp = door_error(door_of(path), problem, err.response_headers(), rid)
    body = resp.body.encode("utf-8")
    headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in resp.headers.items()]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class DoorStreamApp:
    def __init__(self, inner: Any, service: Any = None) -> None:
        self.inner = inner
        self._service = service
        self._doors: Any = None

    @property
    def doors(self) -> Any:
        if self._doors is None:
            from llm_gateway.service.asgi import ChatStreamApp

            self._doors = ChatStreamApp(service=self._service or _DoorService())
        return self._doors

    def __getattr__(self, name: str) -> Any:  # transparent: the wrapped app's attributes
        return getattr(self.inner, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(DOOR_PREFIXES):
            path = scope["path"]
            rid = _request_id(scope)
            if path not in STREAM_PATHS:
                await _send_error(send, path, GatewayError(
                    "not_found", f"There is no route {scope['method']} {path[:200]} on the streaming endpoint "
                    "(it serves the chat routes; use the HTTP API for the others)."), rid)
            elif scope["method"] != "POST":
                await _send_error(send, path, GatewayError(
                    "method_not_allowed", f"{scope['method']} is not allowed on {path}; use POST.", headers={"Allow": "POST"}), rid)
            else:
                await self.doors.chat(scope, receive, send, rid)
            return
        await self.inner(scope, receive, send)


def with_doors(app: Any) -> DoorStreamApp:
    return DoorStreamApp(app)
