"""A small process-wide thread pool: runs a request's independent I/O (DynamoDB, EventBridge,
hook Lambdas) side by side, so several calls cost one round trip of latency.

boto3 clients are thread-safe; the pool is created on first use and reused across warm
invocations. `run_all` runs the first task in the calling thread (no hand-off for the common
single-task case) and the others in the pool.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="gw-io")
    return _pool


def submit(fn: Callable[..., Any], *args: Any) -> Future:
    return pool().submit(fn, *args)


def run_all(tasks: list[Callable[[], Any]]) -> list[Any]:
    """Run tasks concurrently; a list of their results, where a task that raised gives its exception."""
    if not tasks:
        return []
    futures = [pool().submit(t) for t in tasks[1:]]
    results: list[Any] = []
    try:
        results.append(tasks[0]())
    except Exception as exc:  # noqa: BLE001 - returned to the caller, which decides
        results.append(exc)
    for f in futures:
        try:
            results.append(f.result())
        except Exception as exc:  # noqa: BLE001
            results.append(exc)
    return results


_background: set[Future] = set()
_bg_lock = threading.Lock()


def run_post(tasks: list[tuple[str, Callable[[], Any]]], request_id: str = "") -> None:
    """A request's post-call writes: side by side and waited for (Lambda: the environment
    freezes after the response), or with `LLMGW_USAGE_ASYNC=1` (the local server) handed to
    the pool without waiting. Failures are logged by name, never raised."""
    import os

    from llm_gateway.observability import logger

    def logged(name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001
                logger.error(f"{name} failed", extra={"request_id": request_id, "error": type(exc).__name__})
                return exc
        return run

    wrapped = [logged(name, fn) for name, fn in tasks]
    if os.environ.get("LLMGW_USAGE_ASYNC") == "1":
        for fn in wrapped:
            background(fn)
        return
    run_all(wrapped)


def background(fn: Callable[..., Any], *args: Any) -> Future:
    """Work nobody waits for (a lease refill, a cache refresh); `drain` waits for it."""
    f = pool().submit(fn, *args)
    with _bg_lock:
        _background.add(f)
    f.add_done_callback(_forget)
    return f


def _forget(f: Future) -> None:
    with _bg_lock:
        _background.discard(f)


def drain(timeout_s: float = 5.0) -> None:
    """Wait (bounded) for background work: post-call writes, refills (tests, shutdown)."""
    from concurrent.futures import wait

    with _bg_lock:
        pending = list(_background)
    if pending:
        wait(pending, timeout=timeout_s)
    from llm_gateway.stores import writebehind

    writebehind.flush()
