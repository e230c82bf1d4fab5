"""Local mode's Step Functions: moto executes the real state machine (`workflow.asl.json`), and
its Lambda Task invocations run the real `functions/workflow` handler in-process.

moto (≥ 5.2.5) interprets ASL when `stepfunctions.execute_state_machine` is on; a Lambda Task
then calls `lambda.invoke` (on the moto server itself in server mode: `MOTO_PORT` must name the
embedded server's port), which lands in moto's simple Lambda backend. `install_dispatcher()`
replaces that backend's `invoke` so the workflow function's name is dispatched to
`functions.workflow.handler.lambda_handler` — an exception becomes a Lambda function error
(`x-amz-function-error: Unhandled`), exactly what the state machine's Catch sees on AWS. Other
function names keep moto's behaviour.

Wait states really wait in moto: local mode and tests keep the poll backoff short
(`LLMGW_JOB_POLL_INITIAL_S`, `LLMGW_BATCH_POLL_INITIAL_S`).
"""

from __future__ import annotations

import importlib
import json
import os
import traceback
import uuid
from typing import Any

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
_installed = False


def _workflow_handler() -> Any:
    return importlib.import_module("functions.workflow.handler").lambda_handler


def _is_workflow_function(function_name: str) -> bool:
    from llm_gateway.config import settings

    name = settings().workflow_function
    return function_name == name or function_name.endswith(f":function:{name}") or f":function:{name}:" in function_name


def dispatch(function_name: str, body: Any, response_headers: dict[str, Any]) -> bytes:
    """Run the workflow handler for one Task invocation; its JSON result (or a function error)."""
    from llm_gateway.local.server import LambdaContext

    raw = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else (body or "{}")
    event = json.loads(raw or "{}")
    context = LambdaContext(function_name=_short(function_name), aws_request_id=str(uuid.uuid4()), timeout_ms=900_000)
    try:
        result = _workflow_handler()(event, context)
    except Exception as exc:  # noqa: BLE001 - reported to the state machine like Lambda does
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)[:500],
                           "stackTrace": traceback.format_tb(exc.__traceback__)[-3:]}).encode("utf-8")
    return json.dumps(result).encode("utf-8")


def _short(function_name: str) -> str:
    return function_name.rsplit(":function:", 1)[-1].split(":", 1)[0]


def install_dispatcher() -> None:
    """Route moto's simple-Lambda invocations of the workflow function to the real handler."""
    global _installed
    if _installed:
        return
    from moto.awslambda_simple.models import LambdaSimpleBackend

    original = LambdaSimpleBackend.invoke

    def invoke(self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any,
               response_headers: Any) -> str | bytes | None:
        if _is_workflow_function(function_name):
            return dispatch(function_name, body, response_headers)
        return original(self, function_name, qualifier, body, headers, response_headers)

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
    _installed = True


def defer_execution_start(delay_s: float) -> None:
    """Start interpreting a new execution `delay_s` after `StartExecution` answered.

    moto parses the ASL (≈ 35 ms of CPU) on a new thread of this very process as soon as an
    execution starts — while the `POST /jobs` that started it is still answering. On AWS that
    work happens in Step Functions, not in the API's process; deferring it keeps the local
    server's submit latency the gateway's own. (A `StopExecution` inside the delay fails and is
    treated like any failed stop: the job's status already says cancelled.)"""
    if delay_s <= 0:
        return
    import threading

    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    if getattr(ExecutionWorker.start, "_llmgw_deferred", False):
        return
    original = ExecutionWorker.start

    def start(self: Any) -> None:
        timer = threading.Timer(delay_s, original, args=(self,))
        timer.daemon = True
        timer.start()

    start._llmgw_deferred = True  # type: ignore[attr-defined]
    ExecutionWorker.start = start  # type: ignore[method-assign]


def enable_server_workflows(endpoint: str, port: int) -> None:
    """For the threaded moto server: execute state machines, Lambda without Docker, tasks in-process."""
    import urllib.request

    os.environ["MOTO_PORT"] = str(port)  # where moto's ASL interpreter sends its lambda.invoke
    req = urllib.request.Request(f"{endpoint}/moto-api/config", data=json.dumps(MOTO_CONFIG).encode("utf-8"),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback, our own emulator
        resp.read()
    install_dispatcher()
    defer_execution_start(float(os.environ.get("LLMGW_LOCAL_EXECUTION_DELAY_MS", "100")) / 1000)
