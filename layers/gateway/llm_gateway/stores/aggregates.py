"""Usage aggregates: per tenant, per UTC day, per model — what `GET /usage` reads.

Items live beside the usage records in the usage table: partition `TENANT#<tenant>`, sort key
`AGG#<YYYY-MM-DD>#<model>`, one atomic `ADD` per request (no read-modify-write, so concurrent
requests never lose an update). Figures: `requests`, `errors`, `input_tokens`,
`output_tokens`, `cached_input_tokens`, `cache_write_tokens`, `reasoning_tokens`, `cost_usd`,
`latency_ms_sum` (average latency = sum / requests).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from llm_gateway.config import settings
from llm_gateway.stores.aws import client
from llm_gateway.stores.budgets import usd

FIGURES = ("requests", "errors", "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
           "reasoning_tokens", "cost_usd", "latency_ms_sum")


def day_of(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d")


class AggregateStore:
    def __init__(self, table: str | None = None) -> None:
        self.table = table or settings().usage_table

    def add(self, tenant_id: str, day: str, model: str, figures: dict[str, float]) -> None:
        names, values, parts = {"#ttl": "ttl"}, {}, []
        for i, (name, value) in enumerate(figures.items()):
            if not value:
                continue
            names[f"#f{i}"] = name
            values[f":v{i}"] = {"N": usd(value) if isinstance(value, float) else str(int(value))}
            parts.append(f"#f{i} :v{i}")
        if not parts:
            return
        expires = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc).timestamp() + settings().usage_ttl_days * 86400
        from llm_gateway.stores.writebehind import writer

        behind = writer()
        if behind is not None:
            behind.add(self.table, {"pk": {"S": f"TENANT#{tenant_id}"}, "sk": {"S": f"AGG#{day}#{model}"}},
                       {k: v for k, v in figures.items() if v}, {"ttl": {"N": str(int(expires))}})
            return
        values[":ttl"] = {"N": str(int(expires))}
        client("dynamodb").update_item(
            TableName=self.table, Key={"pk": {"S": f"TENANT#{tenant_id}"}, "sk": {"S": f"AGG#{day}#{model}"}},
            UpdateExpression="SET #ttl = if_not_exists(#ttl, :ttl) ADD " + ", ".join(parts),
            ExpressionAttributeNames=names, ExpressionAttributeValues=values,
        )

    def query(self, tenant_id: str, first_day: str, last_day: str) -> list[dict[str, Any]]:
        """Rows `{date, model, <figures>}` for the days in [first_day, last_day], oldest first."""
        ddb = client("dynamodb")
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":pk": {"S": f"TENANT#{tenant_id}"}, ":lo": {"S": f"AGG#{first_day}#"},
                                          ":hi": {"S": f"AGG#{last_day}#\U0010ffff"}},
        }
        rows: list[dict[str, Any]] = []
        while True:
            resp = ddb.query(**kwargs)
            for item in resp.get("Items", []):
                _, day, model = item["sk"]["S"].split("#", 2)
                row: dict[str, Any] = {"date": day, "model": model}
                for f in FIGURES:
                    raw = item.get(f, {}).get("N", "0")
                    row[f] = float(raw) if f in ("cost_usd", "latency_ms_sum") else int(float(raw))
                rows.append(row)
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return rows
