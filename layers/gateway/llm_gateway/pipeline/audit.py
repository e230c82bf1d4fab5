"""Audit events (step 11): what happened to a request, as metadata — never content.

Per request, exactly once each, sent together when the request ends (one `PutEvents` call, in
the post-call round trip):

- `request.started`   — `time` is when the request arrived;
- one terminal event: `request.completed` (answered; also a stream the client closed early,
  `outcome: cancelled`), `request.blocked` (a hook blocked it: `request_blocked` /
  `response_blocked`), or `request.failed` (any other error, with its `error_code`);
- `fallback.triggered` — once per fallback hop, when a model other than the requested one was
  tried.

The schema is in docs/audit-events.md.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from llm_gateway.api.errors import ERROR_CODES

if TYPE_CHECKING:
    from llm_gateway.pipeline.context import RequestContext

SCHEMA_VERSION = "1"
BLOCK_CODES = frozenset({"request_blocked", "response_blocked"})


def _base(ctx: "RequestContext") -> dict[str, Any]:
    req = ctx.request
    base: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "request_id": ctx.request_id,
        "tenant_id": ctx.tenant_id,
        "user_id": ctx.user_id,
        "key_id": ctx.principal.key_id,
        "auth": ctx.principal.source,
        "route": ctx.route,
    }
    if req is not None:
        base["requested_model"] = req.model
        base["stream"] = bool(req.stream)
        if req.metadata is not None and req.metadata.conversation_id:
            base["conversation_id"] = req.metadata.conversation_id
    return base


def terminal_type(ctx: "RequestContext") -> str:
    if ctx.outcome == "error":
        return "request.blocked" if ctx.error_code in BLOCK_CODES else "request.failed"
    return "request.completed"


def events_for(ctx: "RequestContext", now: float | None = None) -> list[dict[str, Any]]:
    """The request's audit events: `{"detail-type", "time", "detail"}` each."""
    now = time.time() if now is None else now
    latency_ms = round(ctx.elapsed_ms(), 3)
    started_at = now - latency_ms / 1000
    base = _base(ctx)
    events = [{"detail-type": "request.started", "time": started_at,
               "detail": {**base, "event_id": uuid.uuid4().hex}}]

    model = ctx.model_used or ctx.model
    detail: dict[str, Any] = {**base, "event_id": uuid.uuid4().hex, "outcome": ctx.outcome, "latency_ms": latency_ms}
    if model is not None:
        detail["model"] = model.id
        detail["provider"] = model.provider.id
    if ctx.error_code:
        detail["error_code"] = ctx.error_code
        detail["status"] = ERROR_CODES.get(ctx.error_code, (500,))[0]
    elif ctx.outcome == "ok":
        detail["status"] = 200
    if ctx.finish_reason:
        detail["finish_reason"] = ctx.finish_reason
    if ctx.ttft_ms is not None:
        detail["ttft_ms"] = round(ctx.ttft_ms, 3)
    if ctx.usage is not None:
        u = ctx.usage
        detail["usage"] = {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                           "cached_input_tokens": u.cached_input_tokens, "reasoning_tokens": u.reasoning_tokens}
        detail["cost_usd"] = ctx.cost
    detail["fallback_used"] = bool(ctx.fallback_used)
    hooks = ctx.attributes.get("hooks")
    if hooks:
        detail["hooks"] = [{k: v for k, v in h.items() if v is not None} for h in hooks]
    events.append({"detail-type": terminal_type(ctx), "time": now, "detail": detail})

    for hop in fallback_hops(ctx):
        events.append({"detail-type": "fallback.triggered", "time": now,
                       "detail": {**base, "event_id": uuid.uuid4().hex, **hop}})
    return events


def fallback_hops(ctx: "RequestContext") -> list[dict[str, Any]]:
    """Each move from one model to the next: `{from_model, to_model, reason}` (the error code
    that moved it on), from the fallback trail the pipeline keeps in the usage record."""
    trail = ctx.attributes.get("usage_record") or {}
    errors = trail.get("attempt_errors")
    if trail.get("fallback_strategy") == "sequential" and errors:
        failed = [e.rsplit("=", 1) for e in str(errors).split(",") if "=" in e]
        chain = [m for m, _ in failed]
        if ctx.outcome != "error" and ctx.model_used is not None and ctx.model_used.id not in chain:
            chain.append(ctx.model_used.id)
        return [{"from_model": chain[i], "to_model": chain[i + 1], "strategy": "sequential", "reason": failed[i][1]}
                for i in range(len(chain) - 1)]
    if ctx.fallback_used and ctx.model is not None and ctx.model_used is not None and ctx.model_used is not ctx.model:
        return [{"from_model": ctx.model.id, "to_model": ctx.model_used.id, "strategy": trail.get("fallback_strategy"),
                 "reason": None}]
    return []
