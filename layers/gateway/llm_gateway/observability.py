"""Powertools Logger, Metrics and Tracer shared by every entry point (metadata only)."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "llm-gateway")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "LLMGateway")

from aws_lambda_powertools import Logger, Metrics, Tracer  # noqa: E402

logger = Logger(log_uncaught_exceptions=False)
metrics = Metrics()
if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").strip().lower() in ("1", "true", "yes", "on"):
    # Powertools' flush skips a disabled provider without clearing it, so values pile up across
    # invocations and `add_metric` prints the whole EMF blob to stdout every 100 values anyway
    # (local mode and tests). Disabled means dropped: clear at each flush instead, and skip
    # `add_metric` (its unit/resolution checks cost ~25 µs a call, five calls per request).
    metrics.provider.flush_metrics = lambda raise_on_empty_metrics=False: metrics.provider.clear_metrics()  # type: ignore[method-assign]
    metrics.provider.add_metric = lambda *_args, **_kwargs: None  # type: ignore[method-assign]


def _tracing_enabled() -> bool:
    """On Lambda only (never in local mode), unless POWERTOOLS_TRACE_DISABLED says otherwise."""
    if os.environ.get("LLMGW_LOCAL") == "1" or not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return False
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() not in ("1", "true", "yes", "on")


class _NoTracer:
    """Stands in for Powertools' Tracer when tracing is off: constructing the real one imports the
    X-Ray SDK (which builds two botocore clients, ~0.3 s) even with `disabled=True`."""

    disabled = True

    def capture_lambda_handler(self, lambda_handler: Any = None, **_kwargs: Any) -> Any:
        return lambda_handler if lambda_handler is not None else (lambda fn: fn)

    capture_method = capture_lambda_handler

    def put_annotation(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    put_metadata = patch = ignore_endpoint = put_annotation


tracer: Any = Tracer() if _tracing_enabled() else _NoTracer()
