"""Async jobs: one item per job in the jobs table (partition key `job_id`), with a TTL.

Item attributes: `tenant_id`, `user_id`, `key_id`, `scopes`, `status`, `created_at`,
`expires_at` (ISO), `ttl` (epoch seconds: DynamoDB deletes expired items lazily, so reads filter
on it too), `deadline` (epoch seconds: a job still pending/running after it is failed on read),
`request_id`, `model`, `provider`, `async_task` (the provider task runs asynchronously),
`request` / `result` / `error` / `handle` (JSON text) — or `request_key` / `result_key` (S3)
when the JSON is larger than `LLMGW_JOB_INLINE_BYTES` — `result_bytes`, `attempt`,
`updated_at`. Status changes are conditional updates, so a cancelled job stays cancelled even
when its worker finishes later.

Large JSON goes to the files bucket under `jobs/<tenant>/<id>/…` (never readable through media
URLs: `FileStorage` only serves `tenants/` and `generated/` prefixes); the bucket's lifecycle
rule for `jobs/` expires it after the TTL.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from llm_gateway.config import settings
from llm_gateway.stores.aws import client


def enc(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    if isinstance(value, (dict, list)):
        return {"S": json.dumps(value, separators=(",", ":"), ensure_ascii=False)}
    return {"S": str(value)}


def dec(attr: dict[str, Any]) -> Any:
    if "S" in attr:
        return attr["S"]
    if "N" in attr:
        n = attr["N"]
        return float(n) if any(c in n for c in ".eE") else int(n)
    if "BOOL" in attr:
        return attr["BOOL"]
    if "NULL" in attr:
        return None
    if "SS" in attr:
        return list(attr["SS"])
    if "L" in attr:
        return [dec(v) for v in attr["L"]]
    if "M" in attr:
        return {k: dec(v) for k, v in attr["M"].items()}
    return None


def decode_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: dec(v) for k, v in item.items()}


def update_args(values: dict[str, Any], remove: Iterable[str] = (), add: dict[str, int | float] | None = None,
                expect: Iterable[str] | None = None) -> dict[str, Any]:
    """UpdateItem arguments: SET `values`, ADD `add`, REMOVE `remove`, and optionally the
    condition that `status` is one of `expect`."""
    names: dict[str, str] = {}
    vals: dict[str, Any] = {}
    sets = []
    for i, (k, v) in enumerate(values.items()):
        names[f"#s{i}"] = k
        vals[f":s{i}"] = enc(v)
        sets.append(f"#s{i} = :s{i}")
    adds = []
    for i, (k, v) in enumerate((add or {}).items()):
        names[f"#a{i}"] = k
        vals[f":a{i}"] = enc(v)
        adds.append(f"#a{i} :a{i}")
    rems = []
    for i, k in enumerate(remove):
        names[f"#r{i}"] = k
        rems.append(f"#r{i}")
    expr = []
    if sets:
        expr.append("SET " + ", ".join(sets))
    if adds:
        expr.append("ADD " + ", ".join(adds))
    if rems:
        expr.append("REMOVE " + ", ".join(rems))
    args: dict[str, Any] = {"UpdateExpression": " ".join(expr), "ExpressionAttributeNames": names}
    if expect is not None:
        expected = list(expect)
        names["#status"] = "status"
        keys = []
        for i, status in enumerate(expected):
            vals[f":e{i}"] = {"S": status}
            keys.append(f":e{i}")
        args["ConditionExpression"] = f"#status IN ({', '.join(keys)})"
    if vals:
        args["ExpressionAttributeValues"] = vals
    return args


class Blobs:
    """JSON documents of jobs and batches in the files bucket, under `jobs/<tenant>/<id>/`."""

    def __init__(self, bucket: str | None = None) -> None:
        self.bucket = bucket or settings().files_bucket

    @staticmethod
    def key(tenant_id: str, owner_id: str, name: str) -> str:
        return f"jobs/{tenant_id}/{owner_id}/{name}"

    def put(self, tenant_id: str, owner_id: str, name: str, data: bytes, content_type: str = "application/json") -> str:
        key = self.key(tenant_id, owner_id, name)
        client("s3").put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return key

    def get(self, key: str) -> bytes:
        return client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def presign(self, key: str, expires_in_s: int) -> str:
        return client("s3").generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                   ExpiresIn=expires_in_s)


class JobStore:
    def __init__(self, table: str | None = None, blobs: Blobs | None = None) -> None:
        self.table = table or settings().jobs_table
        self.blobs = blobs or Blobs()

    def create(self, item: dict[str, Any]) -> None:
        client("dynamodb").put_item(
            TableName=self.table, Item={k: enc(v) for k, v in item.items() if v is not None},
            ConditionExpression="attribute_not_exists(job_id)",
        )

    def get(self, job_id: str) -> dict[str, Any] | None:
        resp = client("dynamodb").get_item(TableName=self.table, Key={"job_id": {"S": job_id}}, ConsistentRead=True)
        item = resp.get("Item")
        return decode_item(item) if item else None

    def update(self, job_id: str, values: dict[str, Any], *, remove: Iterable[str] = (),
               expect: Iterable[str] | None = None) -> dict[str, Any] | None:
        """Apply the update; the new item, or None when `status` was not one of `expect`."""
        ddb = client("dynamodb")
        try:
            resp = ddb.update_item(TableName=self.table, Key={"job_id": {"S": job_id}}, ReturnValues="ALL_NEW",
                                   **update_args(values, remove, expect=expect))
        except ddb.exceptions.ConditionalCheckFailedException:
            return None
        return decode_item(resp["Attributes"])
