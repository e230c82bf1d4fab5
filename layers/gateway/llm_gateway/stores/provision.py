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
    "jobs_table": ("job_id", None),  # async jobs (stores/jobs.py)
    "batches_table": ("pk", "sk"),  # batches: a meta item and one item per request result (stores/batches.py)
    "counters_table": ("pk", None),  # rate-limit windows and budget spend (stores/ratelimit.py, stores/budgets.py)
    "sessions_table": ("pk", "sk"),  # realtime sessions: a meta item and buffered audio per connection (stores/sessions.py)
}

# table-name setting -> TTL attribute (moto stores it; DynamoDB deletes expired items lazily)
TTL_ATTRIBUTES: dict[str, str] = {
    "usage_table": "ttl",
    "counters_table": "ttl",
    "jobs_table": "ttl",
    "batches_table": "ttl",
    "sessions_table": "ttl",
}


def table_definitions() -> dict[str, tuple[str, str | None]]:
    s = settings()
    return {getattr(s, attr): keys for attr, keys in TABLES.items()}


def provision() -> None:
    ddb = client("dynamodb")
    existing = set(ddb.list_tables().get("TableNames", []))
    ttl_by_name = {getattr(settings(), attr): name for attr, name in TTL_ATTRIBUTES.items()}
    for name, (pk, sk) in table_definitions().items():
        if name in existing:
            continue
        schema: list[dict[str, Any]] = [{"AttributeName": pk, "KeyType": "HASH"}]
        attrs = [{"AttributeName": pk, "AttributeType": "S"}]
        if sk:
            schema.append({"AttributeName": sk, "KeyType": "RANGE"})
            attrs.append({"AttributeName": sk, "AttributeType": "S"})
        ddb.create_table(TableName=name, KeySchema=schema, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST")
        ttl = ttl_by_name.get(name)
        if ttl:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl})
    s3 = client("s3")
    buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if settings().files_bucket not in buckets:
        kwargs: dict[str, Any] = {"Bucket": settings().files_bucket}
        if settings().region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings().region}
        s3.create_bucket(**kwargs)
    events = client("events")
    bus = settings().event_bus
    if bus != "default" and not any(b["Name"] == bus for b in events.list_event_buses().get("EventBuses", [])):
        events.create_event_bus(Name=bus)
