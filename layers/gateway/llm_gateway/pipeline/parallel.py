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
