"""The streaming transport: a raw ASGI app serving `POST /chat/completions` with true SSE.

Deployed as `functions/chat_stream` (uvicorn under the AWS Lambda Web Adapter, behind a
Function URL with `RESPONSE_STREAM`); the local server hands it every `stream: true` chat
request. It checks the API key itself (the chat service's `Authenticator`, as every entry point)
and runs the same chat service: SSE frames are sent as the pipeline produces them, and a
non-stream request gets the buffered JSON answer, so the Function URL serves both.

The pipeline is synchronous, so it runs in a worker thread: the thread runs the service, then
iterates the frame generator and hands frames to the event loop through a queue bounded by a
semaphore (backpressure: the generator — and so the provider read — pauses while
`LLMGW_STREAM_QUEUE_FRAMES` frames wait to be written to a slow client). A client that
disconnects cancels the request's `CancelScope` (the provider read in flight is aborted at once)
and the worker closes the generator (`GeneratorExit`): the provider response is closed and the
usage of what was generated is recorded with `outcome: cancelled`.

Off Lambda, the HTTP response ends as soon as the terminal frame (`data: [DONE]` or the error
event) is written, and the usage record is written after it. On Lambda the response ends after
the usage record, since the environment freezes once the response is complete.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llm_gateway import heap
from llm_gateway.api.errors import GatewayError
from llm_gateway.api.render import SSE_DONE
from llm_gateway.config import settings
from llm_gateway.observability import logger, metrics
from llm_gateway.outbound.control import CancelScope, cancel_scope
from llm_gateway.service.http import HttpRequest, HttpResponse

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_END = object()
CHAT_PATH = "/chat/completions"


class _Bridge:
    """Worker thread -> event loop: the response, then its frames (bounded), then the end.

    One channel; the worker wakes the loop only when the loop is waiting for it, so a burst of
    frames costs one wake-up (each cross-thread wake-up is a syscall and a GIL hand-off)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_frames: int) -> None:
        self.loop = loop
        self.items: deque[Any] = deque()
        self.lock = threading.Lock()
        self.waiting = False
        self.ready = asyncio.Event()
        self.slots = threading.Semaphore(max_frames)
        self.max_frames = max_frames
        self.cancelled = False

    # ------------------------------------------------------------ worker side
    def put(self, item: Any) -> None:
        with self.lock:
            self.items.append(item)
            wake, self.waiting = self.waiting, False
        if wake:
            try:
                self.loop.call_soon_threadsafe(self.ready.set)
            except RuntimeError:  # the loop is gone (server shutting down)
                self.cancelled = True

    def produce(self, frames: Iterator[str]) -> None:
        try:
            for frame in frames:
                if self.cancelled:
                    break
                self.slots.acquire()
                if self.cancelled:
                    break
                self.put(frame)
        except Exception as exc:  # noqa: BLE001 - the pipeline turns errors into frames; this is a bug
            logger.error("stream producer failed", extra={"error_type": type(exc).__name__})
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                try:
                    close()  # no-op when exhausted; else GeneratorExit: upstream closed, usage recorded
                except Exception as exc:  # noqa: BLE001
                    logger.error("stream close failed", extra={"error_type": type(exc).__name__})

    # ------------------------------------------------------------ loop side
    async def take(self) -> list[Any]:
        """Everything the worker has put since the last call (waits for at least one item)."""
        while True:
            with self.lock:
                if self.items:
                    batch = list(self.items)
                    self.items.clear()
                    return batch
                self.waiting = True
                self.ready.clear()
            await self.ready.wait()

    def cancel(self) -> None:
        self.cancelled = True
        self.slots.release(self.max_frames)  # wake a producer waiting for room


def _terminal(frame: str) -> bool:
    return frame == SSE_DONE or frame.startswith("event: error")


class ChatStreamApp:
    """Raw ASGI (no framework in the request path; importing it costs nothing beyond the service)."""

    def __init__(self, service: Any = None, *, workers: int | None = None, queue_frames: int | None = None,
                 early_close: bool | None = None) -> None:
        self._service = service
        self._pool = ThreadPoolExecutor(max_workers=workers or int(os.environ.get("LLMGW_STREAM_WORKERS", "64")),
                                        thread_name_prefix="llmgw-stream")
        self.queue_frames = queue_frames or int(os.environ.get("LLMGW_STREAM_QUEUE_FRAMES", "64"))
        self.on_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
        self.early_close = (not self.on_lambda) if early_close is None else early_close

    @property
    def service(self) -> Any:
        if self._service is not None:
            return self._service
        from llm_gateway.service.chat import chat_service

        return chat_service()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http":
            return
        method, path = scope["method"], scope["path"]
        if path in ("/", "/health") and method in ("GET", "HEAD"):
            # the Web Adapter's readiness check (AWS_LWA_READINESS_CHECK_PATH, default "/")
            await _send_response(send, HttpResponse.json(200, {"status": "ok"}))
            return
        rid = _request_id(scope)
        if path != CHAT_PATH:
            await _send_response(send, HttpResponse.problem(GatewayError("not_found", f"There is no route {method} {path[:200]} on the streaming endpoint."), rid))
            return
        if method != "POST":
            err = GatewayError("method_not_allowed", f"{method} is not allowed on {CHAT_PATH}; use POST.", headers={"Allow": "POST"})
            await _send_response(send, HttpResponse.problem(err, rid))
            return
        await self.chat(scope, receive, send, rid)
        heap.settle()  # the Web Adapter's process stays warm: full collections skip the startup heap

    async def chat(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        limit = settings().max_body_bytes
        try:
            body = await _read_body(receive, limit)
        except _Disconnected:
            return
        if body is None:
            err = GatewayError("payload_too_large", f"The body is larger than the limit of {limit} bytes.", limit_bytes=limit)
            await _send_response(send, HttpResponse.problem(err, request_id))
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
        client = scope.get("client") or ("127.0.0.1", 0)
        req = HttpRequest(method="POST", path=scope["path"], headers=headers, body=body,
                          query=_query(scope.get("query_string", b"")), request_id=request_id, source_ip=client[0])
        loop = asyncio.get_running_loop()
        bridge = _Bridge(loop, self.queue_frames)
        cancel = CancelScope()
        disconnected = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    cancel.cancel()  # aborts the provider call in flight, in whichever thread
                    bridge.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        self._pool.submit(self._work, req, cancel, bridge)
        finished = False
        try:
            batch = await bridge.take()
            resp = batch[0]
            if not isinstance(resp, HttpResponse):  # the worker ended without an answer (a bug): say so
                await _send_response(send, HttpResponse.problem(GatewayError("internal_error", "The gateway failed unexpectedly; the error was logged."), request_id))
                return
            if disconnected.is_set():
                return
            if resp.stream is None:
                await _send_response(send, resp)
                finished = True
                return
            await self._pump(resp, batch[1:], bridge, send, disconnected, watcher)
            finished = True
        finally:
            watcher.cancel()
            if not finished:  # cancelled (server shutting down), failed, or the client left: release the worker
                cancel.cancel()
                bridge.cancel()

    def _work(self, req: HttpRequest, cancel: CancelScope, bridge: _Bridge) -> None:
        """Worker thread: run the service; stream its frames through the bridge."""
        try:
            with cancel_scope(cancel):
                try:
                    resp = self.service.chat_completions(req)
                except Exception as exc:  # noqa: BLE001 - never leave the client without an answer
                    logger.error("chat service failed", extra={"error_type": type(exc).__name__})
                    resp = HttpResponse.problem(GatewayError("internal_error", "The gateway failed unexpectedly; the error was logged."), req.request_id)
                bridge.put(resp)
                if resp.stream is not None:
                    bridge.produce(resp.stream)
        except BaseException as exc:  # noqa: BLE001
            logger.error("stream worker failed", extra={"error_type": type(exc).__name__})
        finally:
            bridge.put(_END)
            if self.on_lambda:
                try:
                    metrics.flush_metrics()
                except Exception:  # noqa: BLE001 - metrics must not fail the request
                    pass

    async def _pump(self, resp: HttpResponse, pending: list[Any], bridge: _Bridge, send: Send, disconnected: asyncio.Event,
                    watcher: asyncio.Future[Any]) -> None:
        headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in resp.headers.items()]
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        while True:
            batch = pending or await bridge.take()  # what is waiting goes out in one write
            pending = []
            ended = bool(batch) and batch[-1] is _END
            if ended:
                batch.pop()
            if batch:
                finished = ended or (self.early_close and _terminal(batch[-1]))
                if finished:
                    watcher.cancel()
                await send({"type": "http.response.body", "body": "".join(batch).encode("utf-8"), "more_body": not finished})
                bridge.slots.release(len(batch))
                if finished:
                    return  # off Lambda the worker finishes (usage record) after the client is served
            elif ended:
                if not disconnected.is_set():
                    watcher.cancel()
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if disconnected.is_set():
                bridge.cancel()
                return


class _Disconnected(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks) if size <= limit else None


def _request_id(scope: Scope) -> str:
    """The Lambda request id when the Web Adapter passes the request context, else a new one."""
    for k, v in scope.get("headers") or ():
        if k == b"x-amzn-request-context":
            try:
                rid = json.loads(v).get("requestId")
            except (ValueError, AttributeError):
                rid = None
            if isinstance(rid, str) and rid:
                return rid
    return "req_" + uuid.uuid4().hex


def _query(raw: bytes) -> dict[str, str]:
    if not raw:
        return {}
    from urllib.parse import parse_qsl

    out: dict[str, str] = {}
    for k, v in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        out[k] = f"{out[k]},{v}" if k in out else v
    return out


async def _send_response(send: Send, resp: HttpResponse) -> None:
    body = resp.buffered_body().encode("utf-8")
    headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in resp.headers.items()]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
