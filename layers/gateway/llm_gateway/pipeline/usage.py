"""Step 11 — report usage: cost from the registry's prices, a usage record, metrics.

Records carry metadata only (ids, model, provider, token counts, cost, latency), never content.

`report` is the request's one post-call step and runs exactly once per request (a second call
is a no-op). Its writes are independent, so they run side by side — one round trip: the usage
record, the tenant's day aggregate (`stores/aggregates.py`), the governance settlement (budget
charges, token correction: `pipeline/governance.py`) and the audit events (`pipeline/audit.py`).
With `LLMGW_USAGE_ASYNC=1` (the local server) they are handed to background threads instead.
"""

from __future__ import annotations

import time
from typing import Any

from llm_gateway.config import settings
from llm_gateway.observability import logger, metrics
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.registry.catalog import cost_of


class UsageReporter:
    def __init__(self, store: Any = None, aggregates: Any = None, events: Any = None) -> None:
        self._store = store
        self._aggregates = aggregates
        self._events = events

    @property
    def aggregates(self) -> Any:
        if self._aggregates is None:
            from llm_gateway.stores.aggregates import AggregateStore

            self._aggregates = AggregateStore()
        return self._aggregates

    @aggregates.setter
    def aggregates(self, value: Any) -> None:
        self._aggregates = value

    @property
    def events(self) -> Any:
        if self._events is None:
            from llm_gateway.stores.events import EventSink

            self._events = EventSink()
        return self._events

    @events.setter
    def events(self, value: Any) -> None:
        self._events = value

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
        if ctx.attributes.get("reported"):
            return  # exactly once per request, whichever path ends it
        ctx.attributes["reported"] = True
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
        self._post_call(ctx, record, model)
        logger.info("request finished", extra={k: v for k, v in record.items() if v is not None and k != "timestamp"})
        if usage is not None:
            metrics.add_metric(name="InputTokens", unit="Count", value=usage.input_tokens)
            metrics.add_metric(name="OutputTokens", unit="Count", value=usage.output_tokens)
            metrics.add_metric(name="CostUSD", unit="None", value=ctx.cost)
        metrics.add_metric(name="Requests", unit="Count", value=1)
        metrics.add_metric(name="LatencyMs", unit="Milliseconds", value=latency_ms)
        if model is not None and settings().governance:
            tenant_metrics(ctx, model.id, latency_ms)

    def _post_call(self, ctx: RequestContext, record: dict[str, Any], model: Any) -> None:
        """The post-call writes, side by side. Failures are logged, never raised: usage must not
        fail an answer that was already produced (the log line keeps the figures)."""
        from llm_gateway.pipeline.parallel import run_post

        tasks: list[tuple[str, Any]] = []
        if model is not None:  # requests that never reached a model (auth, validation) get audit events only
            tasks.append(("usage record", lambda: self.store.record(record)))
        if settings().governance:
            if model is not None:
                tasks.append(("usage aggregate", lambda: self.aggregates.add(
                    ctx.tenant_id, day_of(record["timestamp"]), model.id, aggregate_figures(record))))
            for contribute in ctx.attributes.get("post_call") or ():
                try:
                    tasks.extend(("governance settlement", t) for t in contribute())
                except Exception as exc:  # noqa: BLE001
                    logger.error("post-call step failed", extra={"request_id": ctx.request_id, "error": type(exc).__name__})
            if settings().audit_events:
                from llm_gateway.pipeline.audit import events_for

                events = events_for(ctx)
                tasks.append(("audit events", lambda: self.events.put(events)))
        run_post(tasks, ctx.request_id)


def day_of(ts: float) -> str:
    from llm_gateway.stores.aggregates import day_of as _day

    return _day(ts)


def aggregate_figures(record: dict[str, Any]) -> dict[str, float]:
    return {
        "requests": 1,
        "errors": 0 if record.get("outcome") in ("ok", "cancelled") else 1,
        "input_tokens": record.get("input_tokens") or 0,
        "output_tokens": record.get("output_tokens") or 0,
        "cached_input_tokens": record.get("cached_input_tokens") or 0,
        "cache_write_tokens": record.get("cache_write_tokens") or 0,
        "reasoning_tokens": record.get("reasoning_tokens") or 0,
        "cost_usd": float(record.get("cost_usd") or 0.0),
        "latency_ms_sum": float(record.get("latency_ms") or 0.0),
    }


_METRICS_ON: bool | None = None


def tenant_metrics(ctx: RequestContext, model_id: str, latency_ms: float) -> None:
    """One EMF blob per request with `tenant_id` and `model` dimensions (CloudWatch metrics
    per tenant and model: Requests, Errors, InputTokens, OutputTokens, CostUSD, LatencyMs)."""
    global _METRICS_ON
    if _METRICS_ON is None:
        import os

        _METRICS_ON = os.environ.get("POWERTOOLS_METRICS_DISABLED", "").strip().lower() not in ("1", "true", "yes", "on")
    if not _METRICS_ON:
        return
    from aws_lambda_powertools.metrics import EphemeralMetrics

    m = EphemeralMetrics()
    m.add_dimension(name="tenant_id", value=ctx.tenant_id)
    m.add_dimension(name="model", value=model_id)
    m.add_metric(name="Requests", unit="Count", value=1)
    m.add_metric(name="Errors", unit="Count", value=0 if ctx.outcome in ("ok", "cancelled") else 1)
    m.add_metric(name="LatencyMs", unit="Milliseconds", value=latency_ms)
    if ctx.usage is not None:
        m.add_metric(name="InputTokens", unit="Count", value=ctx.usage.input_tokens)
        m.add_metric(name="OutputTokens", unit="Count", value=ctx.usage.output_tokens)
        m.add_metric(name="CostUSD", unit="None", value=ctx.cost)
    try:
        m.flush_metrics()
    except Exception as exc:  # noqa: BLE001 - metrics never fail a request
        logger.warning("tenant metrics failed", extra={"error": type(exc).__name__})
