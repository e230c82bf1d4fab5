"""A scriptable fake HTTP server on loopback, for speaking a provider's exact wire format.

Each fake provider is a `FakeServer` whose `route(method, path)` handlers get a `FakeRequest`
(recorded in `server.requests`) and return a `Reply`: a status, headers and either a JSON body,
raw bytes, or a list of byte chunks streamed one by one (with optional delays, stalls or a cut
connection) — enough to inject every fault the gateway must survive.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class FakeRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    chunks: list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the status line
    chunk_delay_s: float = 0.0  # between streamed chunks
    stall_after: int | None = None  # stop sending (and hold the socket) after N chunks
    stall_s: float = 30.0
    cut_after: int | None = None  # close the socket abruptly after N chunks


Handler = Callable[[FakeRequest], Reply]


class FakeServer:
    def __init__(self) -> None:
        self.requests: list[FakeRequest] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._queue: dict[tuple[str, str], list[Reply]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    # ---------------------------------------------------------------- scripting
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), re.compile(pattern + r"$"), handler))

    def enqueue(self, method: str, pattern: str, *replies: Reply) -> None:
        """Replies served (in order) before the route's handler, for one-off faults."""
        self._queue.setdefault((method.upper(), pattern), []).extend(replies)

    # ---------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FakeServer":
        fake = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body are separate writes: without TCP_NODELAY, Nagle + delayed ACK add
            # ~40 ms to every keep-alive request
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                req = FakeRequest(self.command, path, query, {k.lower(): v for k, v in self.headers.items()}, body)
                fake.requests.append(req)
                reply = fake._dispatch(req)
                fake._write(self, reply)

            do_GET = do_POST = do_DELETE = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---------------------------------------------------------------- internals
    def _dispatch(self, req: FakeRequest) -> Reply:
        for (method, pattern), replies in self._queue.items():
            if method == req.method and re.match(pattern + r"$", req.path) and replies:
                return replies.pop(0)
        for method, pattern, handler in self._routes:
            if method == req.method and pattern.match(req.path):
                return handler(req)
        return Reply(404, json={"error": {"message": f"no fake route {req.method} {req.path}"}})

    def _write(self, h: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.delay_s:
            if self._stop.wait(reply.delay_s):
                return
        h.send_response(reply.status)
        for k, v in reply.headers.items():
            h.send_header(k, v)
        if reply.chunks is not None:
            h.send_header("Transfer-Encoding", "chunked")
            h.send_header("Content-Type", reply.headers.get("Content-Type", "text/event-stream"))
            h.end_headers()
            try:
                for i, chunk in enumerate(reply.chunks):
                    if reply.cut_after is not None and i >= reply.cut_after:
                        h.wfile.flush()
                        h.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if reply.stall_after is not None and i >= reply.stall_after:
                        self._stop.wait(reply.stall_s)
                        return
                    h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    h.wfile.flush()
                    if reply.chunk_delay_s:
                        time.sleep(reply.chunk_delay_s)
                h.wfile.write(b"0\r\n\r\n")
                h.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                return
            return
        data = reply.body if reply.body is not None else json.dumps(reply.json if reply.json is not None else {}).encode()
        if reply.body is None and "Content-Type" not in reply.headers:
            h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        try:
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


def sse(*events: Any, event_names: list[str] | None = None) -> list[bytes]:
    """SSE frames: each event a `data:` JSON line (or a raw string), with an optional `event:` name."""
    out = []
    for i, e in enumerate(events):
        data = e if isinstance(e, str) else json.dumps(e)
        name = event_names[i] if event_names else None
        out.append((f"event: {name}\n" if name else "").encode() + f"data: {data}\n\n".encode())
    return out
