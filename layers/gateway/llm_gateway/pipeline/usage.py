"""Step 11 — report usage: cost from the registry's prices, a usage record, metrics.

Records carry metadata only (ids, model, provider, token counts, cost, latency), never content.
"""

from __future__ import annotations

import time
from typing import Any

from llm_gateway.observability import logger, metrics
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.registry.catalog import cost_of


class UsageReporter:
    def __init__(self, store: Any = None) -> None:
        self._store = store

    @property
    def store(self) -> Any:
        if self._store is None:
            from llm_gateway.stores.usage import UsageStore

            self._store = UsageStore()
        return self._store

    def price(self, ctx: RequestContext) -> float:
        model = ctx.model_used or ctx.model
        if model is None or ctx.usage is None:
            return 0.0
        ctx.cost = cost_of(model.pricing, ctx.usage)
        return ctx.cost

    def report(self, ctx: RequestContext) -> None:
        model = ctx.model_used or ctx.model
        usage = ctx.usage
        latency_ms = round(ctx.elapsed_ms(), 3)
        record: dict[str, Any] = {
            "request_id": ctx.request_id,
            "tenant_id": ctx.tenant_id,
            "user_id": ctx.user_id,
            "key_id": ctx.principal.key_id,
            "route": ctx.route,
            "model": model.id if model else None,
            "provider": model.provider.id if model else None,
            "requested_model": ctx.request.model if ctx.request else None,
            "conversation_id": ctx.request.metadata.conversation_id if ctx.request and ctx.request.metadata else None,
            "stream": bool(ctx.request and ctx.request.stream),
            "fallback_used": ctx.fallback_used,
            "outcome": ctx.outcome,
            "error_code": ctx.error_code,
            "finish_reason": ctx.finish_reason,
            "latency_ms": latency_ms,
            "ttft_ms": round(ctx.ttft_ms, 3) if ctx.ttft_ms is not None else None,
            "timestamp": time.time(),
        }
        record.update(ctx.attributes.get("usage_record") or {})  # step-specific metadata (fallback trail, estimates)
        if usage is not None:
            record.update(
                input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                cached_input_tokens=usage.cached_input_tokens, cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens, cost_usd=ctx.cost,
            )
        try:
            self.store.record(record)
        except Exception as exc:  # usage must not fail the answer; the log line keeps the figures
            logger.error("usage record failed", extra={"request_id": ctx.request_id, "error": type(exc).__name__})
        logger.info("request finished", extra={k: v for k, v in record.items() if v is not None and k != "timestamp"})
        if usage is not None:
            metrics.add_metric(name="InputTokens", unit="Count", value=usage.input_tokens)
            metrics.add_metric(name="OutputTokens", unit="Count", value=usage.output_tokens)
            metrics.add_metric(name="CostUSD", unit="None", value=ctx.cost)
        metrics.add_metric(name="Requests", unit="Count", value=1)
        metrics.add_metric(name="LatencyMs", unit="Milliseconds", value=latency_ms)
