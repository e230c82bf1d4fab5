"""Powertools Logger, Metrics and Tracer shared by every entry point (metadata only)."""

from __future__ import annotations

import os

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "llm-gateway")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "LLMGateway")

from aws_lambda_powertools import Logger, Metrics, Tracer  # noqa: E402

logger = Logger(log_uncaught_exceptions=False)
metrics = Metrics()
tracer = Tracer(disabled=os.environ.get("LLMGW_LOCAL") == "1" or not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
