"""Rate-limit counters: fixed one-minute windows in the counters table, one item per scope.

Item `RL#<tenant>#T#<window start>` (the tenant) or `RL#<tenant>#U#<window start>#<user>` (one
user) holds `req` (requests admitted) and `tok` (tokens reserved, corrected after the call).
Admission is ONE conditional `UpdateItem`:

    ADD req :1, tok :estimate   IF (req <= rpm - 1) AND (tok <= tpm - estimate)

A lease (`pipeline/leases.py`) claims several requests and tokens at once with the same update.

DynamoDB applies it atomically per item, so the limit holds across every Lambda instance and
process at once; `ReturnValues` gives the new counts (the `x-ratelimit-remaining-*` headers)
and a refusal returns the counts that refused it. Items expire through the `ttl` attribute.

Why not one `TransactWriteItems` for every scope: transactions conflict on hot items (every
request of a tenant touches the same counter), so under load they fail with
`TransactionConflict`; plain conditional updates on one item serialize instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llm_gateway.config import settings
from llm_gateway.stores.aws import client

WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class RateCheck:
    scope: str  # tenant | user
    key: str
    rpm: int | None
    tpm: int | None
    tokens: int  # tokens to reserve (the estimate)
    ident: str = ""  # the scope across windows (tenant, user): what a lease is kept under


@dataclass(frozen=True, slots=True)
class RateOutcome:
    check: RateCheck
    allowed: bool
    requests: int  # count in the window after this request (or, refused, the count that refused it)
    tokens: int
    refused_by: str | None = None  # requests | tokens
    leased: bool = False  # admitted from this instance's lease (pipeline/leases.py)

    @property
    def remaining_requests(self) -> int | None:
        return None if self.check.rpm is None else max(0, self.check.rpm - self.requests)

    @property
    def remaining_tokens(self) -> int | None:
        return None if self.check.tpm is None else max(0, self.check.tpm - self.tokens)


def window_start(now: float) -> int:
    return int(now // WINDOW_S) * WINDOW_S


def rate_key(tenant_id: str, window: int, user_id: str | None = None) -> str:
    """User ids come last: they are free-form (JWT subjects), tenant ids cannot hold '#'."""
    if user_id is None:
        return f"RL#{tenant_id}#T#{window}"
    return f"RL#{tenant_id}#U#{window}#{user_id}"


def _n(item: dict[str, Any] | None, name: str) -> int:
    if not item or name not in item:
        return 0
    return int(float(item[name]["N"]))


class RateLimitStore:
    def __init__(self, table: str | None = None) -> None:
        self.table = table or settings().counters_table

    def hit(self, check: RateCheck, window: int, requests: int = 1) -> RateOutcome:
        """Count `requests` requests (and `check.tokens` tokens) if the window still has room for all of them."""
        conditions = []
        values: dict[str, Any] = {":one": {"N": str(requests)}, ":ttl": {"N": str(window + WINDOW_S + 3600)}}
        update = "SET #ttl = if_not_exists(#ttl, :ttl) ADD req :one"
        if check.rpm is not None:
            conditions.append("(attribute_not_exists(req) OR req <= :rpm)")
            values[":rpm"] = {"N": str(check.rpm - requests)}
        if check.tpm is not None:
            update += ", tok :tok"
            values[":tok"] = {"N": str(check.tokens)}
            conditions.append("(attribute_not_exists(tok) OR tok <= :room)")
            values[":room"] = {"N": str(check.tpm - check.tokens)}
        kwargs: dict[str, Any] = {
            "TableName": self.table, "Key": {"pk": {"S": check.key}}, "UpdateExpression": update,
            "ExpressionAttributeNames": {"#ttl": "ttl"}, "ExpressionAttributeValues": values, "ReturnValues": "UPDATED_NEW",
        }
        if conditions:
            kwargs["ConditionExpression"] = " AND ".join(conditions)
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        ddb = client("dynamodb")
        try:
            attrs = ddb.update_item(**kwargs).get("Attributes")
        except ddb.exceptions.ConditionalCheckFailedException as exc:
            old = exc.response.get("Item") or {}
            req, tok = _n(old, "req"), _n(old, "tok")
            by = "requests" if check.rpm is not None and req > check.rpm - requests else "tokens"
            return RateOutcome(check, False, req, tok, by)
        return RateOutcome(check, True, _n(attrs, "req"), _n(attrs, "tok"))

    def adjust(self, key: str, *, requests: int = 0, tokens: int = 0) -> None:
        """Unconditional correction: give back a refused request's slot, or fix the token estimate."""
        parts, values = [], {}
        if requests:
            parts.append("req :r")
            values[":r"] = {"N": str(requests)}
        if tokens:
            parts.append("tok :t")
            values[":t"] = {"N": str(tokens)}
        if not parts:
            return
        from llm_gateway.stores.writebehind import writer

        behind = writer()
        if behind is not None:
            behind.add(self.table, {"pk": {"S": key}}, {k: v for k, v in (("req", requests), ("tok", tokens)) if v}, {})
            return
        client("dynamodb").update_item(
            TableName=self.table, Key={"pk": {"S": key}}, UpdateExpression="ADD " + ", ".join(parts),
            ExpressionAttributeValues=values,
        )

    def current(self, key: str) -> tuple[int, int]:
        """(requests, tokens) counted in a window (admin CLI)."""
        item = client("dynamodb").get_item(TableName=self.table, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")
        return _n(item, "req"), _n(item, "tok")
