"""Small pieces shared by jobs and batches: clock, timestamps, stored principals, errors, backoff."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.stores.keys import Principal

TERMINAL_JOB = frozenset({"completed", "failed", "cancelled"})
ACTIVE_JOB = ("pending", "running")
TERMINAL_BATCH = frozenset({"completed", "failed", "cancelled"})
ACTIVE_BATCH = ("pending", "in_progress")


def now() -> float:
    return time.time()


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def principal_fields(principal: Principal) -> dict[str, Any]:
    """What a job or batch keeps of its creator (metadata only), to run as them later."""
    out: dict[str, Any] = {"tenant_id": principal.tenant_id, "user_id": principal.user_id, "key_id": principal.key_id}
    if principal.scopes is not None:
        out["scopes"] = " ".join(sorted(principal.scopes))
    return out


def principal_of(item: dict[str, Any]) -> Principal:
    scopes = item.get("scopes")
    return Principal(tenant_id=item["tenant_id"], user_id=item.get("user_id") or "unknown",
                     key_id=item.get("key_id") or "job", scopes=frozenset(scopes.split()) if scopes else None,
                     source="job")


def error_info(exc: GatewayError) -> dict[str, str]:
    """The contract's `ErrorInfo` for a gateway error (code + the precise detail)."""
    return {"code": exc.code, "message": exc.detail}


def backoff(attempt: int, initial: int, maximum: int) -> int:
    """Whole seconds to wait before poll number `attempt + 1` (Step Functions waits in seconds)."""
    if initial <= 0:
        return 0
    return int(min(maximum, max(initial, round(initial * 1.5 ** attempt))))


def retryable(exc: GatewayError) -> bool:
    """Errors a job retries (bounded by LLMGW_JOB_MAX_RETRIES): rate limits (the provider's or the
    tenant's own) and transient provider failures that came with a retry hint."""
    if exc.code == "rate_limited":
        return True
    return exc.code == "provider_error" and exc.retry_after_s is not None


def step_result(next_step: str = "done", *, wait_s: int = 0, attempt: int = 0, chunks: list[int] | None = None,
                max_concurrency: int = 1) -> dict[str, Any]:
    """What a workflow Task returns: every key the state machine's ResultSelector reads."""
    return {"next": next_step, "wait_s": int(max(0, wait_s)), "attempt": attempt, "chunks": chunks or [],
            "max_concurrency": max(1, int(max_concurrency))}
