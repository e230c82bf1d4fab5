"""Budget counters: USD spent per tenant (or user) per period, in the counters table.

Item `BUD#<tenant>#T#<period>` or `BUD#<tenant>#U#<period>#<user>` holds `spent` (USD, a
DynamoDB number: exact decimal arithmetic). Periods are UTC calendar days (`D20261126`) and
months (`M202611`). Before a call the gateway reads the items it needs in one strongly
consistent `BatchGetItem`; after the call it adds the request's cost with an unconditional
atomic `ADD`. A budget can therefore be overshot by at most the cost of the requests that were
admitted while it still had room (the requests in flight), never by more.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from llm_gateway.config import settings
from llm_gateway.stores.aws import client

KEEP_AFTER_PERIOD_S = 40 * 86400  # keep a period's item 40 days after it ends (admin reads)


def period_window(period: str, now: float) -> tuple[str, float]:
    """(period key, reset time as epoch seconds) of the period containing `now` (UTC)."""
    t = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    if period == "daily":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        return f"D{t:%Y%m%d}", (start + dt.timedelta(days=1)).timestamp()
    if period == "monthly":
        nxt = dt.datetime(t.year + (t.month == 12), t.month % 12 + 1, 1, tzinfo=dt.timezone.utc)
        return f"M{t:%Y%m}", nxt.timestamp()
    raise ValueError(f"unknown budget period {period!r}")


def budget_key(tenant_id: str, period_key: str, user_id: str | None = None) -> str:
    if user_id is None:
        return f"BUD#{tenant_id}#T#{period_key}"
    return f"BUD#{tenant_id}#U#{period_key}#{user_id}"


def usd(amount: float) -> str:
    """A DynamoDB number for a USD amount (10 decimals: the cost estimate's precision)."""
    text = f"{amount:.10f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


class BudgetStore:
    def __init__(self, table: str | None = None) -> None:
        self.table = table or settings().counters_table

    def spent(self, keys: list[str]) -> dict[str, float]:
        """USD spent per budget item (0 for items not written yet), strongly consistent."""
        wanted = list(dict.fromkeys(keys))
        out = {k: 0.0 for k in wanted}
        if not wanted:
            return out
        ddb = client("dynamodb")
        request: dict[str, Any] = {self.table: {"Keys": [{"pk": {"S": k}} for k in wanted], "ConsistentRead": True,
                                                "ProjectionExpression": "pk, spent"}}
        for _ in range(5):
            resp = ddb.batch_get_item(RequestItems=request)
            for item in resp.get("Responses", {}).get(self.table, []):
                out[item["pk"]["S"]] = float(item.get("spent", {}).get("N", "0"))
            request = resp.get("UnprocessedKeys") or {}
            if not request:
                break
        return out

    def charge(self, key: str, amount_usd: float, resets_at: float) -> None:
        """Add a request's cost (atomic ADD, unconditional: the work was done)."""
        from llm_gateway.stores.writebehind import writer

        behind = writer()
        if behind is not None:
            behind.add(self.table, {"pk": {"S": key}}, {"spent": float(amount_usd)},
                       {"ttl": {"N": str(int(resets_at) + KEEP_AFTER_PERIOD_S)}})
            return
        client("dynamodb").update_item(
            TableName=self.table, Key={"pk": {"S": key}},
            UpdateExpression="SET #ttl = if_not_exists(#ttl, :ttl) ADD spent :c",
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={":c": {"N": usd(amount_usd)}, ":ttl": {"N": str(int(resets_at) + KEEP_AFTER_PERIOD_S)}},
        )
