"""A fast fake OpenAI-wire server for benchmarks: raw asyncio, HTTP/1.1 keep-alive, fixed answers.

`POST …/chat/completions` returns a fixed `chat.completion` (or, when the body asks for
`"stream": true`, a fixed SSE stream of `chat.completion.chunk`s with usage on the last one);
`GET /health` answers 200. No framework, no JSON parsing of the request beyond a substring check,
so the fake is never the bottleneck of a benchmark.

    python -m bench.fake_openai --port 0      # prints "READY <port>" on stdout once listening
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1767225600,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Gateways centralize auth, routing, limits and cost tracking.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 24,
        "completion_tokens": 11,
        "total_tokens": 35,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
    "system_fingerprint": "fp_bench",
}

STREAM_WORDS = ["Gateways ", "centralize ", "auth, ", "routing, ", "limits ", "and ", "cost ", "tracking."]


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1767225600, "model": "gpt-4o-mini-2024-07-18",
        "choices": [] if usage is not None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _http(status: str, content_type: bytes, body: bytes) -> bytes:
    return (b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + content_type + b"\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: keep-alive\r\n\r\n" + body)


JSON_RESPONSE = _http("200 OK", b"application/json", json.dumps(COMPLETION, separators=(",", ":")).encode())
HEALTH_RESPONSE = _http("200 OK", b"application/json", b'{"ok":true}')
NOT_FOUND = _http("404 Not Found", b"application/json", b'{"error":{"message":"not found","type":"invalid_request_error"}}')
_frames = [_chunk({"role": "assistant", "content": ""})] + [_chunk({"content": w}) for w in STREAM_WORDS]
_frames += [_chunk({}, finish="stop"), _chunk({}, usage=COMPLETION["usage"]), b"data: [DONE]\n\n"]
_sse = b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in _frames) + b"0\r\n\r\n"
SSE_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
                b"connection: keep-alive\r\n\r\n" + _sse)


class _Proto(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            lines = head.split(b"\r\n")
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            method, _, rest = lines[0].partition(b" ")
            path = rest.partition(b" ")[0]
            if method == b"POST" and path.endswith(b"/chat/completions"):
                streamed = b'"stream":true' in body.replace(b" ", b"")
                self.transport.write(SSE_RESPONSE if streamed else JSON_RESPONSE)  # type: ignore[attr-defined]
            elif path == b"/health":
                self.transport.write(HEALTH_RESPONSE)  # type: ignore[attr-defined]
            else:
                self.transport.write(NOT_FOUND)  # type: ignore[attr-defined]


async def serve(port: int, ready: Any = None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Proto, "127.0.0.1", port, backlog=256)
    actual = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(actual)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_openai")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        asyncio.run(serve(args.port, lambda p: print(f"READY {p}", flush=True)))
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


class FakeOpenAIProcess:
    """The fake in its own process (so it never competes for the GIL with what is measured)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> "FakeOpenAIProcess":
        from bench._common import REPO

        self.proc = subprocess.Popen([sys.executable, "-m", "bench.fake_openai", "--port", "0"], cwd=str(REPO),
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + timeout_s
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY "):
                self.port = int(line.split()[1])
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError("the fake OpenAI server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> "FakeOpenAIProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


if __name__ == "__main__":
    raise SystemExit(main())
