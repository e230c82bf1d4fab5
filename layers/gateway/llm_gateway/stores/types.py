"""The Type Registry table: GTS type schemas keyed by GTS id (without the `gts://` prefix)."""

from __future__ import annotations

import json
import time
from typing import Any

from llm_gateway.config import settings
from llm_gateway.stores.aws import client

BATCH_GET_LIMIT = 100


class TypeStore:
    def __init__(self, table: str | None = None) -> None:
        self.table = table or settings().types_table

    def put(self, gts_id: str, schema: dict[str, Any]) -> None:
        client("dynamodb").put_item(TableName=self.table, Item={
            "gts_id": {"S": gts_id},
            "schema": {"S": json.dumps(schema, separators=(",", ":"))},
            "updated_at": {"N": str(int(time.time()))},
        })

    def delete(self, gts_id: str) -> None:
        client("dynamodb").delete_item(TableName=self.table, Key={"gts_id": {"S": gts_id}})

    def batch_get(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Schemas for the ids that exist (one BatchGetItem per 100 ids, unprocessed keys retried)."""
        ddb = client("dynamodb")
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), BATCH_GET_LIMIT):
            request = {self.table: {"Keys": [{"gts_id": {"S": i}} for i in unique[start:start + BATCH_GET_LIMIT]]}}
            for attempt in range(5):
                resp = ddb.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self.table, []):
                    found[item["gts_id"]["S"]] = json.loads(item["schema"]["S"])
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
        return found

    def list_ids(self) -> list[str]:
        ddb = client("dynamodb")
        ids: list[str] = []
        kwargs: dict[str, Any] = {"TableName": self.table, "ProjectionExpression": "gts_id"}
        while True:
            resp = ddb.scan(**kwargs)
            ids.extend(item["gts_id"]["S"] for item in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return sorted(ids)
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
