"""Create the tables and bucket the gateway uses (local mode and tests; CDK does it on AWS).

The key schemas here mirror `infra/` exactly; `tests/infra` checks both agree.
"""

from __future__ import annotations

from typing import Any

from llm_gateway.config import settings
from llm_gateway.stores.aws import client

# table-name setting -> (partition key, sort key or None)
TABLES: dict[str, tuple[str, str | None]] = {
    "keys_table": ("key_hash", None),
    "tenants_table": ("tenant_id", None),
    "usage_table": ("pk", "sk"),
    "types_table": ("gts_id", None),
}


def table_definitions() -> dict[str, tuple[str, str | None]]:
    s = settings()
    return {getattr(s, attr): keys for attr, keys in TABLES.items()}


def provision() -> None:
    ddb = client("dynamodb")
    existing = set(ddb.list_tables().get("TableNames", []))
    for name, (pk, sk) in table_definitions().items():
        if name in existing:
            continue
        schema: list[dict[str, Any]] = [{"AttributeName": pk, "KeyType": "HASH"}]
        attrs = [{"AttributeName": pk, "AttributeType": "S"}]
        if sk:
            schema.append({"AttributeName": sk, "KeyType": "RANGE"})
            attrs.append({"AttributeName": sk, "AttributeType": "S"})
        ddb.create_table(TableName=name, KeySchema=schema, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST")
    s3 = client("s3")
    buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if settings().files_bucket not in buckets:
        kwargs: dict[str, Any] = {"Bucket": settings().files_bucket}
        if settings().region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings().region}
        s3.create_bucket(**kwargs)
