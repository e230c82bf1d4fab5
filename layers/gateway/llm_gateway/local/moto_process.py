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


def serve(port: int, dispatch_url: str, token: str) -> None:
    import logging
    import threading

    from moto.server import ThreadedMotoServer

    from llm_gateway.local.aws import serialize_moto_dynamodb
    from llm_gateway.local.workflows import MOTO_CONFIG, defer_execution_start

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # keep-alive: werkzeug answers HTTP/1.0 (`Connection: close`) by default, so every boto3 call
    # would open a new TCP connection and the server a new thread
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    MotoRequestHandler.protocol_version = "HTTP/1.1"
    serialize_moto_dynamodb()
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
