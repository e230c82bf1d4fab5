"""Usage records: one item per request in the usage table (partition = tenant, sort = time)."""

from __future__ import annotations

import time
from typing import Any

from llm_gateway.config import settings
from llm_gateway.stores.aws import client


def _attr(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    return {"S": str(value)}


class UsageStore:
    def __init__(self, table: str | None = None) -> None:
        self.table = table or settings().usage_table

    def record(self, record: dict[str, Any]) -> None:
        """Write one request's usage (metadata only: ids, model, tokens, cost, latency)."""
        ts = record.get("timestamp") or time.time()
        item = {k: _attr(v) for k, v in record.items() if v is not None}
        item["pk"] = {"S": f"TENANT#{record['tenant_id']}"}
        item["sk"] = {"S": f"REQ#{int(ts * 1000):013d}#{record['request_id']}"}
        item["ttl"] = {"N": str(int(ts) + settings().usage_ttl_days * 86400)}
        from llm_gateway.stores.writebehind import writer

        behind = writer()
        if behind is not None:
            behind.put(self.table, item)
            return
        client("dynamodb").put_item(TableName=self.table, Item=item)

    def record_session(self, summary: dict[str, Any]) -> None:
        """A realtime session's usage summary (route `realtime`), beside its per-turn records: under
        `SESSION#`, so request listings (`REQ#`) and the aggregates never count its figures twice."""
        ts = summary.get("timestamp") or time.time()
        item = {k: _attr(v) for k, v in summary.items() if v is not None and not isinstance(v, (dict, list))}
        item["pk"] = {"S": f"TENANT#{summary['tenant_id']}"}
        item["sk"] = {"S": f"SESSION#{int(ts * 1000):013d}#{summary['session_id']}"}
        item["ttl"] = {"N": str(int(ts) + settings().usage_ttl_days * 86400)}
        client("dynamodb").put_item(TableName=self.table, Item=item)

    def list_sessions(self, tenant_id: str, limit: int = 100) -> list[dict[str, Any]]:
        resp = client("dynamodb").query(
            TableName=self.table, KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
            ExpressionAttributeValues={":pk": {"S": f"TENANT#{tenant_id}"}, ":s": {"S": "SESSION#"}},
            ScanIndexForward=False, Limit=limit,
        )
        return [{k: next(iter(v.values())) for k, v in item.items()} for item in resp.get("Items", [])]

    def list_for_tenant(self, tenant_id: str, limit: int = 100) -> list[dict[str, Any]]:
        resp = client("dynamodb").query(
            TableName=self.table, KeyConditionExpression="pk = :pk AND begins_with(sk, :req)",
            ExpressionAttributeValues={":pk": {"S": f"TENANT#{tenant_id}"}, ":req": {"S": "REQ#"}},
            ScanIndexForward=False, Limit=limit,
        )
        return [{k: next(iter(v.values())) for k, v in item.items()} for item in resp.get("Items", [])]
