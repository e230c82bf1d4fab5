"""Shared helpers for the benchmark modules: environment, percentiles, markdown, process state.

`setup_env()` must run before anything from `llm_gateway` is imported (Powertools reads its
settings at import time).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

BENCH_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "LLMGW_LOCAL": "1",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


def setup_env(extra: dict[str, str] | None = None) -> None:
    """Offline, credential-free settings (the same as the test suite's), and `functions` importable."""
    os.environ.update(BENCH_ENV)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "LLMGW_AWS_ENDPOINT_URL", "LLMGW_CATALOG", "LLMGW_MOCK_LATENCY_MS"):
        os.environ.pop(name, None)
    if extra:
        os.environ.update(extra)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def reset_process_state() -> None:
    """Forget every per-process cache (as a fresh Lambda environment would) — mirrors tests/conftest.py."""
    from llm_gateway.config import reset_settings
    from llm_gateway.outbound import credentials
    from llm_gateway.outbound.client import set_outbound
    from llm_gateway.providers import reset_adapters
    from llm_gateway.registry import catalog
    from llm_gateway.service.chat import reset_chat_service
    from llm_gateway.stores.aws import reset_clients

    reset_settings()
    reset_clients()
    reset_adapters()
    reset_chat_service()
    credentials.clear_cache()
    set_outbound(None)
    catalog._CATALOG = None
    try:
        from llm_gateway import resets  # type: ignore[attr-defined]

        resets.reset_all()
    except ImportError:
        pass


def rounds(warmup: int, n: int, budget_s: float, on_start: Callable[[], None] | None = None) -> Iterator[bool]:
    """`warmup` rounds then up to `n` measured ones, stopping once the measured rounds have taken
    `budget_s` (a busy machine; the caller reports the real n). Yields whether the round is
    measured; `on_start` runs when the first measured round begins (e.g. to read a CPU counter)."""
    deadline = float("inf")
    for i in range(warmup + n):
        if i == warmup:
            if on_start is not None:
                on_start()
            deadline = time.monotonic() + budget_s
        elif i > warmup and time.monotonic() > deadline:
            return
        yield i >= warmup


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "mean": statistics.fmean(values) if values else float("nan"),
        "p50": pct(values, 50),
        "p90": pct(values, 90),
        "p99": pct(values, 99),
        "max": max(values) if values else float("nan"),
    }


def ms(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    header = list(header)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in rows:
        out.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(out)


def verdict(ok: bool) -> str:
    return "✅ met" if ok else "❌ missed"


def machine() -> str:
    return f"{os.cpu_count()} CPU(s), {platform.machine()}, Python {platform.python_version()}, {platform.system()}"


class AwsCallTimer:
    """Times every botocore API call (all the gateway's stores go through `stores.aws.client`).

    `wall_ns` is the union of the calls' intervals — calls run side by side (the pipeline's I/O
    pool) count once — so it is the time AWS kept the request waiting; `cpu_ns` is the CPU time of
    the calls made on the installing thread and `cpu_all_ns` that of the calls on every thread
    (with in-process moto both include the emulation); `calls` counts them by operation.
    """

    def __init__(self) -> None:
        import threading
        from collections import Counter

        self.wall_ns = 0
        self.cpu_ns = 0
        self.cpu_all_ns = 0
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._inflight = 0
        self._since = 0
        self._owner = threading.get_ident()
        self._orig = None

    def install(self) -> "AwsCallTimer":
        import threading
        import time

        from botocore.client import BaseClient

        self._orig = BaseClient._make_api_call
        timer, orig, owner = self, BaseClient._make_api_call, self._owner

        def timed(client_self, operation_name, api_params):  # type: ignore[no-untyped-def]
            mine = threading.get_ident() == owner
            with timer._lock:
                if timer._inflight == 0:
                    timer._since = time.perf_counter_ns()
                timer._inflight += 1
                timer.calls[operation_name] += 1
            c0 = time.thread_time_ns()
            try:
                return orig(client_self, operation_name, api_params)
            finally:
                spent = time.thread_time_ns() - c0
                with timer._lock:
                    timer.cpu_all_ns += spent
                    if mine:
                        timer.cpu_ns += spent
                    timer._inflight -= 1
                    if timer._inflight == 0:
                        timer.wall_ns += time.perf_counter_ns() - timer._since

        BaseClient._make_api_call = timed  # type: ignore[method-assign]
        return self

    def wall_now_ns(self) -> int:
        """`wall_ns` including a call still in flight (a fire-and-forget call may outlive its request)."""
        import time

        with self._lock:
            return self.wall_ns + ((time.perf_counter_ns() - self._since) if self._inflight else 0)

    def uninstall(self) -> None:
        from botocore.client import BaseClient

        if self._orig is not None:
            BaseClient._make_api_call = self._orig  # type: ignore[method-assign]
            self._orig = None
