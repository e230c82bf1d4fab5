"""`GET /usage`: a tenant's own figures by day and model, from the usage aggregates.

Query: `from` and `to` (UTC dates, `YYYY-MM-DD`, inclusive; default the last 7 days up to
today; at most 366 days), optional `model` (a canonical id). The caller's key (or token) picks
the tenant — a tenant only ever sees its own figures — and needs the `usage` scope.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.pipeline.auth import Authenticator, require_scope
from llm_gateway.pipeline.context import new_request_id
from llm_gateway.service.http import HttpRequest, HttpResponse

MAX_DAYS = 366
SUMS = ("requests", "errors", "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
        "reasoning_tokens", "cost_usd", "latency_ms_sum")


def _date(value: str | None, name: str) -> dt.date | None:
    if value is None or value == "":
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise GatewayError("validation_error", f"'{name}' must be a date like 2026-11-26 (got {value[:40]!r}).",
                           errors=[{"path": name, "message": "expected YYYY-MM-DD"}]) from None


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "latency_ms_sum"}
    out["cost_usd"] = round(row["cost_usd"], 10)
    out["avg_latency_ms"] = round(row["latency_ms_sum"] / row["requests"], 3) if row["requests"] else None
    return out


def summarize(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(per-model totals, grand totals) of aggregate rows."""
    by_model: dict[str, dict[str, Any]] = {}
    total: dict[str, Any] = {k: 0 for k in SUMS}
    for row in rows:
        m = by_model.setdefault(row["model"], {"model": row["model"], **{k: 0 for k in SUMS}})
        for k in SUMS:
            m[k] += row[k]
            total[k] += row[k]
    return [_finish(m) for m in sorted(by_model.values(), key=lambda m: m["model"])], _finish(total)


class AdminService:
    def __init__(self, auth: Authenticator | None = None, aggregates: Any = None) -> None:
        self.auth = auth or Authenticator()
        self._aggregates = aggregates

    @property
    def aggregates(self) -> Any:
        if self._aggregates is None:
            from llm_gateway.stores.aggregates import AggregateStore

            self._aggregates = AggregateStore()
        return self._aggregates

    def usage(self, req: HttpRequest) -> HttpResponse:
        rid = req.request_id or new_request_id()
        try:
            principal = self.auth.authenticate(req.headers, req.authorizer)
            require_scope(principal, "usage")
            today = dt.datetime.now(dt.timezone.utc).date()
            last = _date(req.query.get("to"), "to") or today
            first = _date(req.query.get("from"), "from") or (last - dt.timedelta(days=6))
            if first > last:
                raise GatewayError("validation_error", f"'from' ({first}) is after 'to' ({last}).",
                                   errors=[{"path": "from", "message": "must not be after 'to'"}])
            if (last - first).days + 1 > MAX_DAYS:
                raise GatewayError("validation_error", f"The range is {(last - first).days + 1} days; at most {MAX_DAYS}.",
                                   errors=[{"path": "from", "message": f"at most {MAX_DAYS} days"}])
            rows = self.aggregates.query(principal.tenant_id, first.isoformat(), last.isoformat())
            model = req.query.get("model")
            if model:
                rows = [r for r in rows if r["model"] == model]
            by_model, totals = summarize(rows)
            body = {"object": "usage", "tenant_id": principal.tenant_id, "from": first.isoformat(), "to": last.isoformat(),
                    "data": [_finish(r) for r in rows], "by_model": by_model, "totals": totals}
            return HttpResponse.json(200, body, {"x-request-id": rid, "Cache-Control": "no-store"})
        except GatewayError as exc:
            return HttpResponse.problem(exc, rid)


_service: AdminService | None = None


def admin_service() -> AdminService:
    global _service
    if _service is None:
        _service = AdminService()
    return _service


def reset_admin_service() -> None:
    global _service
    _service = None
