"""Starting realtime work outside the WebSocket route's invocation (its answer must not wait).

- `lambda` (AWS): an asynchronous invoke (`InvocationType=Event`) of the worker function
  (`LLMGW_REALTIME_WORKER_FUNCTION`), whose handler is `functions/realtime/handler.py`, same as
  the routes; the payload carries `realtime_task`.
- `thread` (local mode, tests): a daemon thread in this process runs the same task function.
  The local server installs a runner that goes through the Lambda handler, like AWS would.

`set_runner()` replaces how a task runs (tests, the local server); `launch()` starts one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from llm_gateway.config import settings
from llm_gateway.observability import logger

Runner = Callable[[dict[str, Any]], Any]
_runner: Runner | None = None


def set_runner(runner: Runner | None) -> None:
    """How `thread` mode runs a task payload (default: `llm_gateway.realtime.worker.handle`)."""
    global _runner
    _runner = runner


def _run(payload: dict[str, Any]) -> None:
    try:
        if _runner is not None:
            _runner(payload)
        else:
            from llm_gateway.realtime.worker import handle

            handle(payload)
    except Exception:  # noqa: BLE001 - a worker never raises into nothing
        logger.exception("realtime task failed", extra={"task": payload.get("realtime_task")})


def launch(payload: dict[str, Any]) -> None:
    if settings().realtime_worker == "thread":
        threading.Thread(target=_run, args=(payload,), name=f"rt-{payload.get('realtime_task')}", daemon=True).start()
        return
    from llm_gateway.stores.sessions import invoke_worker

    invoke_worker(settings().realtime_worker_function, payload)

