"""Batches: a meta item and one item per finished request in the batches table (`pk`, `sk`).

- `pk = <batch id>, sk = "meta"`: `tenant_id`, `user_id`, `key_id`, `scopes`, `status`,
  `created_at`, `expires_at`, `ttl`, `deadline`, `backend`, `provider`, `model`, `count`,
  `completed` / `failed` (counters), `provider_batch_id`, `provider_state` (JSON), `input_key`
  (the requests, JSONL in S3), `error` (JSON), `metadata` (JSON), `request_id`, `updated_at`.
- `pk = <batch id>, sk = "r#000017"`: the result of request 17 — `result` (JSON) or
  `result_key` (S3), or `error` (JSON) — with the same `ttl`.

Results are separate items so gateway-run chunks write them concurrently without contention,
and a `GET` shows each one as soon as it exists (partial results).
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from llm_gateway.config import settings
from llm_gateway.stores.aws import client
from llm_gateway.stores.jobs import Blobs, decode_item, enc, update_args

META = "meta"
WRITE_BATCH = 25


def result_sk(index: int) -> str:
    return f"r#{index:06d}"


class BatchStore:
    def __init__(self, table: str | None = None, blobs: Blobs | None = None) -> None:
        self.table = table or settings().batches_table
        self.blobs = blobs or Blobs()

    def _key(self, batch_id: str, sk: str = META) -> dict[str, Any]:
        return {"pk": {"S": batch_id}, "sk": {"S": sk}}

    def create(self, meta: dict[str, Any]) -> None:
        item = {k: enc(v) for k, v in meta.items() if v is not None}
        item.update(self._key(meta["batch_id"]))
        client("dynamodb").put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)")

    def get(self, batch_id: str) -> dict[str, Any] | None:
        resp = client("dynamodb").get_item(TableName=self.table, Key=self._key(batch_id), ConsistentRead=True)
        item = resp.get("Item")
        return decode_item(item) if item else None

    def update(self, batch_id: str, values: dict[str, Any], *, add: dict[str, int] | None = None,
               remove: Iterable[str] = (), expect: Iterable[str] | None = None) -> dict[str, Any] | None:
        """Apply the update; the new meta item, or None when `status` was not one of `expect`."""
        ddb = client("dynamodb")
        try:
            resp = ddb.update_item(TableName=self.table, Key=self._key(batch_id), ReturnValues="ALL_NEW",
                                   **update_args(values, remove, add=add, expect=expect))
        except ddb.exceptions.ConditionalCheckFailedException:
            return None
        return decode_item(resp["Attributes"])

    def put_results(self, batch_id: str, rows: list[dict[str, Any]], ttl: int) -> None:
        """Write result items (`index` + `result` | `result_key` | `error`), 25 per request."""
        ddb = client("dynamodb")
        items = []
        for row in rows:
            item = {k: enc(v) for k, v in row.items() if v is not None and k != "index"}
            item.update(self._key(batch_id, result_sk(int(row["index"]))))
            item["ttl"] = {"N": str(ttl)}
            items.append({"PutRequest": {"Item": item}})
        for start in range(0, len(items), WRITE_BATCH):
            pending = {self.table: items[start:start + WRITE_BATCH]}
            for attempt in range(8):
                resp = ddb.batch_write_item(RequestItems=pending)
                pending = resp.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(1.0, 0.05 * 2 ** attempt))
            if pending:
                raise RuntimeError("DynamoDB did not accept every batch result write")

    def results(self, batch_id: str, first: int | None = None, last: int | None = None) -> dict[int, dict[str, Any]]:
        """Result items by request index (all, or those in `first..last`)."""
        ddb = client("dynamodb")
        if first is None:
            cond = "pk = :pk AND begins_with(sk, :r)"
            values: dict[str, Any] = {":pk": {"S": batch_id}, ":r": {"S": "r#"}}
        else:
            cond = "pk = :pk AND sk BETWEEN :a AND :b"
            values = {":pk": {"S": batch_id}, ":a": {"S": result_sk(first)}, ":b": {"S": result_sk(last if last is not None else first)}}
        out: dict[int, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": cond,
                                  "ExpressionAttributeValues": values, "ConsistentRead": True}
        while True:
            resp = ddb.query(**kwargs)
            for item in resp.get("Items", []):
                row = decode_item(item)
                out[int(row["sk"][2:])] = row
            last_key = resp.get("LastEvaluatedKey")
            if not last_key:
                return out
            kwargs["ExclusiveStartKey"] = last_key
