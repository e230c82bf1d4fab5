"""Local mode's WebSocket API: `ws://127.0.0.1:<port>/realtime` runs the realtime Lambda handler
(`functions/realtime/handler.py`) exactly as API Gateway's WebSocket API would.

- The handshake becomes a `$connect` event (headers, query string, a new connection id); a
  non-200 answer refuses it with that HTTP status and the problem body (ASGI's WebSocket
  denial response; a plain close where the server lacks it). Each text (or binary) message
  becomes a `$default` event, run in order per connection; the end of the socket becomes a
  `$disconnect` event with the close code.
- `@connections` emulation: the gateway's `stores/connections.py` calls the management API
  through boto3, as on AWS. The local server's embedded AWS serves it in the gateway process
  (`local/aws.py`, `LLMGW_CONNECTIONS_ENDPOINT_URL`); with moto in-process (tests), `install()`
  patches moto's backend instead. Either way what is posted is delivered to the open socket, an
  unknown or closed connection answers 410 `GoneException` (moto alone never does), and
  `DeleteConnection` closes the socket (1000). Posts that arrive before the handshake completed are held and sent after
  it (API Gateway answers 410 then; the worker's greeting retries either way).
- API Gateway's limits: a message over `LLMGW_REALTIME_MAX_MESSAGE_BYTES` (128 KB) closes the
  connection with 1009; no client message for `LLMGW_REALTIME_IDLE_S` (600 s) closes it with
  1001 (send a `ping` event to keep it open); `LLMGW_REALTIME_MAX_S` (2 h) after the connect it
  is closed with 1001. Frames are not visible through ASGI, so the 32 KB frame limit is not
  enforced here: keep client messages ≤ 32 KB (every server event is).
- Turns and the greeting run in threads (`LLMGW_REALTIME_WORKER=thread`) through the same
  handler, as an asynchronous Lambda invocation would.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

PATHS = ("/realtime", "/v1/realtime")
STAGE = "local"
_ALNUM = string.ascii_letters + string.digits
_CLOSE = object()


class _Conn:
    def __init__(self, loop: asyncio.AbstractEventLoop | None, sink: Callable[[bytes], None] | None = None) -> None:
        self.loop = loop
        self.sink = sink
        self.queue: asyncio.Queue[Any] | None = asyncio.Queue() if loop is not None else None
        self.state = "pending"  # pending | open | closed
        self.held: list[Any] = []
        self.closed_by_server = False


class LocalConnections:
    """Open local WebSocket connections, by connection id (what `@connections` reaches)."""

    def __init__(self) -> None:
        self._conns: dict[str, _Conn] = {}
        self._lock = threading.Lock()

    def register(self, connection_id: str, loop: asyncio.AbstractEventLoop | None = None,
                 sink: Callable[[bytes], None] | None = None) -> _Conn:
        """A connection being opened (`loop`: an ASGI socket's) or a test collector (`sink`)."""
        conn = _Conn(loop, sink)
        if sink is not None:
            conn.state = "open"
        with self._lock:
            self._conns[connection_id] = conn
        return conn

    def accept(self, connection_id: str) -> None:
        with self._lock:
            conn = self._conns.get(connection_id)
            if conn is None:
                return
            conn.state = "open"
            held, conn.held = conn.held, []
        for item in held:
            self._push(conn, item)

    def remove(self, connection_id: str) -> None:
        with self._lock:
            conn = self._conns.pop(connection_id, None)
        if conn is not None:
            conn.state = "closed"

    def is_open(self, connection_id: str) -> bool:
        conn = self._conns.get(connection_id)
        return conn is not None and conn.state != "closed"

    def _push(self, conn: _Conn, item: Any) -> None:
        if conn.sink is not None:
            if item is not _CLOSE:
                conn.sink(item)
            else:
                conn.state = "closed"
            return
        assert conn.loop is not None and conn.queue is not None
        conn.loop.call_soon_threadsafe(conn.queue.put_nowait, item)

    def deliver(self, connection_id: str, data: bytes) -> bool:
        """`PostToConnection`: False when the connection is unknown or closed (410)."""
        with self._lock:
            conn = self._conns.get(connection_id)
            if conn is None or conn.state == "closed" or conn.closed_by_server:
                return False
            if conn.state == "pending":
                conn.held.append(bytes(data))
                return True
        self._push(conn, bytes(data))
        return True

    def close(self, connection_id: str) -> bool:
        """`DeleteConnection`: close from the server side (after what was posted before)."""
        with self._lock:
            conn = self._conns.get(connection_id)
            if conn is None or conn.state == "closed" or conn.closed_by_server:
                return False
            conn.closed_by_server = True
            if conn.state == "pending":
                conn.held.append(_CLOSE)
                return True
        self._push(conn, _CLOSE)
        return True


connections = LocalConnections()
_installed = False


def install() -> None:
    """Route moto's `apigatewaymanagementapi` to the local connections (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.apigatewaymanagementapi.models import ApiGatewayManagementApiBackend
    from moto.core.exceptions import JsonRESTError

    class GoneException(JsonRESTError):
        code = 410

        def __init__(self, connection_id: str) -> None:
            super().__init__("GoneException", f"Connection {connection_id} is gone.")

    def post_to_connection(self: Any, data: bytes, connection_id: str) -> None:
        if not connections.deliver(connection_id, data):
            raise GoneException(connection_id)

    def delete_connection(self: Any, connection_id: str) -> None:
        if not connections.close(connection_id):
            raise GoneException(connection_id)

    original_get = ApiGatewayManagementApiBackend.get_connection

    def get_connection(self: Any, connection_id: str) -> Any:
        if not connections.is_open(connection_id):
            raise GoneException(connection_id)
        return original_get(self, connection_id)

    ApiGatewayManagementApiBackend.post_to_connection = post_to_connection  # type: ignore[method-assign]
    ApiGatewayManagementApiBackend.delete_connection = delete_connection  # type: ignore[method-assign]
    ApiGatewayManagementApiBackend.get_connection = get_connection  # type: ignore[method-assign]
    _installed = True


def _problem(code: str, detail: str) -> dict[str, Any]:
    from llm_gateway.api.errors import GatewayError

    return GatewayError(code, detail).to_problem()


def new_connection_id() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(15)) + "A"


def _context(name: str, request_id: str, timeout_ms: int = 29_000) -> Any:
    from llm_gateway.local.server import LambdaContext

    return LambdaContext(function_name=name, aws_request_id=request_id, timeout_ms=timeout_ms)


def _handler() -> Callable[..., dict[str, Any]]:
    return importlib.import_module("functions.realtime.handler").lambda_handler


def _run_task(payload: dict[str, Any]) -> Any:
    """The worker, as an asynchronous Lambda invocation of the worker function would run it."""
    return _handler()(payload, _context("realtime-worker", str(uuid.uuid4()), 900_000))


def ws_event(route: str, connection_id: str, scope: dict[str, Any], connected_at_ms: int, *, body: str | None = None,
             binary: bool = False, close_code: int | None = None) -> dict[str, Any]:
    """An API Gateway WebSocket event for `route` ($connect, $default, $disconnect)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
    client = scope.get("client") or ("127.0.0.1", 0)
    now = time.time()
    kind = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
    rc: dict[str, Any] = {
        "routeKey": route, "eventType": kind, "messageDirection": "IN", "stage": STAGE,
        "connectedAt": connected_at_ms, "requestTimeEpoch": int(now * 1000),
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "identity": {"sourceIp": client[0], "userAgent": headers.get("user-agent", "")},
        "requestId": uuid.uuid4().hex, "extendedRequestId": uuid.uuid4().hex,
        "domainName": headers.get("host", "127.0.0.1"), "connectionId": connection_id, "apiId": "local",
    }
    event: dict[str, Any] = {"requestContext": rc, "isBase64Encoded": binary}
    if kind == "CONNECT":
        event["headers"] = headers
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            from urllib.parse import parse_qsl

            qs: dict[str, str] = {}
            for k, v in parse_qsl(query, keep_blank_values=True):
                qs[k] = f"{qs[k]},{v}" if k in qs else v
            event["queryStringParameters"] = qs
    elif kind == "MESSAGE":
        rc["messageId"] = uuid.uuid4().hex[:16]
        event["body"] = body
    else:
        rc["disconnectStatusCode"] = close_code if close_code is not None else 1005
        rc["disconnectReason"] = ""
    return event


class RealtimeApp:
    """The ASGI app local mode hands WebSocket scopes to."""

    def __init__(self, workers: int = 16) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="realtime")
        install()
        from llm_gateway.realtime import launch

        launch.set_runner(_run_task)

    async def _call(self, event: dict[str, Any], name: str = "realtime") -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        ctx = _context(name, event["requestContext"]["requestId"])
        return await loop.run_in_executor(self._pool, _handler(), event, ctx)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"WebSocket only: ws://host:port/realtime"})
            return
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if scope["path"].rstrip("/") not in PATHS:
            await self._deny(scope, send, 404, _problem("not_found", f"No WebSocket route {scope['path'][:100]}; use /realtime."))
            return
        from llm_gateway.config import settings

        s = settings()
        loop = asyncio.get_running_loop()
        conn_id = new_connection_id()
        connected_ms = int(time.time() * 1000)
        conn = connections.register(conn_id, loop)
        try:
            result = await self._call(ws_event("$connect", conn_id, scope, connected_ms))
        except Exception:  # noqa: BLE001 - API Gateway answers 500 when the integration fails
            connections.remove(conn_id)
            await self._deny(scope, send, 500, _problem("internal_error", "The $connect handler failed."))
            return
        status = int(result.get("statusCode", 200))
        if status != 200:
            connections.remove(conn_id)
            try:
                body = json.loads(result.get("body") or "{}")
            except ValueError:
                body = {"detail": result.get("body")}
            await self._deny(scope, send, status, body, result.get("headers") or {})
            return
        await send({"type": "websocket.accept"})
        connections.accept(conn_id)
        state = {"last": time.monotonic(), "close_code": None, "server_closed": False}
        inbox: asyncio.Queue[Any] = asyncio.Queue()

        async def writer() -> None:
            assert conn.queue is not None
            while True:
                item = await conn.queue.get()
                if item is _CLOSE:
                    state["server_closed"] = True
                    await send({"type": "websocket.close", "code": 1000, "reason": "closed by the server"})
                    return
                await send({"type": "websocket.send", "text": item.decode("utf-8")})

        async def handle_messages() -> None:
            while True:
                item = await inbox.get()
                if item is None:
                    return
                body, binary = item
                try:
                    await self._call(ws_event("$default", conn_id, scope, connected_ms, body=body, binary=binary))
                except Exception:  # noqa: BLE001 - API Gateway drops a failed integration's answer
                    pass

        async def timers() -> None:
            started = time.monotonic()
            while True:
                await asyncio.sleep(min(1.0, s.realtime_idle_s / 4, s.realtime_max_s / 4))
                now = time.monotonic()
                if now - state["last"] >= s.realtime_idle_s:
                    reason = "idle timeout"
                elif now - started >= s.realtime_max_s:
                    reason = "maximum connection duration"
                else:
                    continue
                state["close_code"] = 1001
                connections.remove(conn_id)
                await send({"type": "websocket.close", "code": 1001, "reason": reason})
                return

        tasks = [asyncio.create_task(writer()), asyncio.create_task(handle_messages()), asyncio.create_task(timers())]
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    if state["close_code"] is None:
                        state["close_code"] = message.get("code", 1005)
                    break
                if kind != "websocket.receive":
                    continue
                text, data = message.get("text"), message.get("bytes")
                size = len(text.encode("utf-8")) if text is not None else len(data or b"")
                if size > s.realtime_max_message_bytes:
                    state["close_code"] = 1009
                    connections.remove(conn_id)
                    await send({"type": "websocket.close", "code": 1009, "reason": "message too big"})
                    break
                state["last"] = time.monotonic()
                if text is not None:
                    inbox.put_nowait((text, False))
                else:
                    import base64

                    inbox.put_nowait((base64.b64encode(data or b"").decode("ascii"), True))
        except Exception:  # noqa: BLE001 - the socket broke: same as a disconnect
            state["close_code"] = state["close_code"] or 1006
        finally:
            connections.remove(conn_id)
            inbox.put_nowait(None)
            for t in tasks:
                if t is not tasks[1]:
                    t.cancel()
            try:
                await asyncio.wait_for(tasks[1], timeout=30)  # messages already received still run, in order
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
            code = 1000 if state["server_closed"] and state["close_code"] in (None, 1005) else state["close_code"]
            try:
                await self._call(ws_event("$disconnect", conn_id, scope, connected_ms, close_code=code))
            except Exception:  # noqa: BLE001
                pass

    @staticmethod
    async def _deny(scope: dict[str, Any], send: Any, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        if "websocket.http.response" in (scope.get("extensions") or {}):
            raw = json.dumps(body).encode("utf-8")
            hdrs = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(raw)).encode())]
            for k, v in (headers or {}).items():
                if k.lower() not in ("content-type", "content-length"):
                    hdrs.append((k.lower().encode("latin-1"), str(v).encode("latin-1")))
            await send({"type": "websocket.http.response.start", "status": status, "headers": hdrs})
            await send({"type": "websocket.http.response.body", "body": raw})
        else:
            await send({"type": "websocket.close", "code": 1008})


app = RealtimeApp()
