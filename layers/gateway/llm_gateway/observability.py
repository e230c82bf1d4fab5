"""Powertools Logger, Metrics and Tracer shared by every entry point (metadata only)."""

from __future__ import annotations

import os

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "llm-gateway")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "LLMGateway")

from aws_lambda_powertools import Logger, Metrics, Tracer  # noqa: E402

logger = Logger(log_uncaught_exceptions=False)
metrics = Metrics()
if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").strip().lower() in ("1", "true", "yes", "on"):
    # Powertools' flush skips a disabled provider without clearing it, so values pile up across
    # invocations and `add_metric` prints the whole EMF blob to stdout every 100 values anyway
    # (local mode and tests). Disabled means dropped: clear at each flush instead.
    metrics.provider.flush_metrics = lambda raise_on_empty_metrics=False: metrics.provider.clear_metrics()  # type: ignore[method-assign]
tracer = Tracer(disabled=os.environ.get("LLMGW_LOCAL") == "1" or not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
