"""The embedded AWS in a process of its own: moto's server, with the workflow function's Lambda
invocations sent back to the gateway's process to run there.

Why a child process: moto emulates every call in Python — several ms of CPU for a conditional
`UpdateItem`. Inside the gateway's process that CPU competes with request handling for the GIL
(the post-call writes of one request slow the next); in its own process it runs on another core,
as DynamoDB's work runs on other machines on AWS.

`python -m llm_gateway.local.moto_process PORT DISPATCH_URL` (the dispatch token in
`LLMGW_DISPATCH_TOKEN`) serves moto on loopback, prints `ready`, and exits when its stdin closes (the parent stopped it, or died).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from typing import Any

TOKEN_HEADER = "x-llmgw-dispatch-token"


def _forward_workflow_invocations(dispatch_url: str, token: str) -> None:
    """moto's simple-Lambda `invoke` for the workflow function → POST to the gateway process."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    from llm_gateway.local.workflows import _is_workflow_function

    original = LambdaSimpleBackend.invoke

    def invoke(self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any,
               response_headers: Any) -> str | bytes | None:
        if not _is_workflow_function(function_name):
            return original(self, function_name, qualifier, body, headers, response_headers)
        data = body.encode("utf-8") if isinstance(body, str) else (body or b"{}")
        req = urllib.request.Request(f"{dispatch_url}/{function_name}", data=data, method="POST",
                                     headers={"content-type": "application/json", TOKEN_HEADER: token})
        with urllib.request.urlopen(req, timeout=900) as resp:  # noqa: S310 - loopback, the parent process
            error = resp.headers.get("x-amz-function-error")
            if error:
                response_headers["x-amz-function-error"] = error
            return resp.read()

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]


def _lower_priority() -> None:
    """The emulator yields the CPU to the gateway's requests when both want it (`LLMGW_MOTO_NICE`,
    default 19, the lowest normal priority: it still runs whenever a core is free, so a request
    waiting on it is never starved): on AWS this work runs on other machines, so here it should
    not delay a request that does not need it."""
    try:
        os.nice(int(os.environ.get("LLMGW_MOTO_NICE", "19")))
    except (OSError, ValueError, AttributeError):  # not permitted, or no nice() on this platform
        pass


class _BodyReader:
    """The request body as a stream that ends at its `Content-Length` (a kept connection never
    reaches EOF, so an application reading "everything" must stop there), counting what was read."""

    def __init__(self, raw: Any, length: int) -> None:
        self.raw = raw
        self.left = length

    def read(self, size: int = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.raw.read(size) if size else b""
        self.left -= len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.raw.readline(size) if size else b""
        self.left -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def __iter__(self) -> Any:
        while line := self.readline():
            yield line


def _keep_connections_alive() -> None:
    """HTTP keep-alive between the gateway's boto3 clients and moto.

    werkzeug's development server sends `Connection: close` on every response (its request
    handler cannot tell where an unread body ends), so every boto3 call opened a new TCP
    connection and moto started a new thread for it. Here a request whose body has a
    `Content-Length` is served on a kept connection: what the application left unread of the body
    is read and dropped after the response, so the next request line starts where it should.
    Chunked request bodies keep werkzeug's behaviour (close). Nagle's algorithm is off on the
    server's sockets."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    def run_wsgi(self: Any) -> None:
        length = self.headers.get("Content-Length")
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        self.keep_alive = not chunked and (length is None or length.strip().isdigit())
        if not self.keep_alive:
            return original_run_wsgi(self)
        raw = self.rfile
        self.rfile = body = _BodyReader(raw, int(length or 0))
        try:
            original_run_wsgi(self)
        finally:
            self.rfile = raw
        while body.left > 0 and not self.close_connection:  # what the application left unread
            if not body.read(65536):
                self.close_connection = True

    def send_header(self: Any, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close" and getattr(self, "keep_alive", False):
            return
        original_send_header(self, keyword, value)

    def handle_error(self: Any, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client reset its kept connection (its pool closed, its process ended): nothing to report
        original_handle_error(self, request, client_address)

    from werkzeug.serving import BaseWSGIServer

    original_handle_error = BaseWSGIServer.handle_error
    BaseWSGIServer.handle_error = handle_error  # type: ignore[method-assign]
    original_run_wsgi = MotoRequestHandler.run_wsgi
    original_send_header = MotoRequestHandler.send_header
    MotoRequestHandler.protocol_version = "HTTP/1.1"
    # werkzeug writes the headers and the body separately: on a kept connection Nagle's algorithm
    # would hold the body until the client's delayed ACK (~40 ms a response)
    MotoRequestHandler.disable_nagle_algorithm = True
    MotoRequestHandler.run_wsgi = run_wsgi  # type: ignore[method-assign]
    MotoRequestHandler.send_header = send_header  # type: ignore[method-assign]


def serve(port: int, dispatch_url: str, token: str) -> None:
    import logging
    import threading

    from moto.server import ThreadedMotoServer

    from llm_gateway.local import moto_speedups
    from llm_gateway.local.aws import serialize_moto_dynamodb
    from llm_gateway.local.workflows import MOTO_CONFIG, defer_execution_start

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    _lower_priority()
    _keep_connections_alive()
    serialize_moto_dynamodb()
    moto_speedups.apply()
    os.environ["MOTO_PORT"] = str(port)  # where moto's ASL interpreter sends its lambda.invoke
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/config", data=json.dumps(MOTO_CONFIG).encode("utf-8"),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback, this process
        resp.read()
    _forward_workflow_invocations(dispatch_url, token)
    defer_execution_start(float(os.environ.get("LLMGW_LOCAL_EXECUTION_DELAY_MS", "100")) / 1000)
    print("ready", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2], os.environ.pop("LLMGW_DISPATCH_TOKEN", ""))
