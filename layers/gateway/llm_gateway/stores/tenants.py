"""Tenants: approved models, rate limits, budgets and hook settings, one item per tenant.

Item (tenants table, partition key `tenant_id`): `config` (the JSON document below), `version`
(incremented by every write; writes are conditional on it) and `updated_at`.

```json
{"name": "Acme", "status": "active",
 "approved_models": ["openai::gpt-4o-mini", "mock::*"],
 "limits": {"tenant": {"rpm": 600, "tpm": 200000}, "user": {"rpm": 60, "tpm": 40000}},
 "budgets": [{"scope": "tenant", "period": "monthly", "limit_usd": 500},
             {"scope": "user", "period": "daily", "limit_usd": 5},
             {"scope": "user", "period": "daily", "limit_usd": 50, "user_id": "alice"}],
 "hooks": {"pre_call": [...], "post_response": [...]}}
```

Reads go through an in-process cache (`LLMGW_TENANT_CACHE_TTL_S`, default 30 s): a change made
with the admin CLI reaches every warm process within that time.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from llm_gateway.config import settings
from llm_gateway.stores.aws import client

TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
PERIODS = ("daily", "monthly")
BUDGET_SCOPES = ("tenant", "user")
STATUSES = ("active", "suspended")


class ConfigError(ValueError):
    """A tenant configuration document is invalid (the message says where)."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens per minute (input + output)

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.tpm)

    def to_dict(self) -> dict[str, int]:
        return {k: v for k, v in (("rpm", self.rpm), ("tpm", self.tpm)) if v}


@dataclass(frozen=True, slots=True)
class Budget:
    scope: str  # tenant | user
    period: str  # daily | monthly
    limit_usd: float
    user_id: str | None = None  # a user budget for one user only (else: each user)

    def applies_to(self, user_id: str) -> bool:
        return self.scope == "tenant" or self.user_id is None or self.user_id == user_id

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"scope": self.scope, "period": self.period, "limit_usd": self.limit_usd}
        if self.user_id:
            d["user_id"] = self.user_id
        return d


@dataclass(frozen=True)
class TenantConfig:
    tenant_id: str
    name: str = ""
    status: str = "active"
    approved_models: tuple[str, ...] = ("*",)
    tenant_limit: RateLimit = RateLimit()
    user_limit: RateLimit = RateLimit()
    budgets: tuple[Budget, ...] = ()
    hooks: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    registered: bool = True  # False: the stand-in for a tenant with no item (LLMGW_UNKNOWN_TENANT=allow)
    _approval: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # e.g. the built hook chain

    # ------------------------------------------------------------------ queries

    def approves(self, model_id: str, aliases: tuple[str, ...] = ()) -> bool:
        """Whether a model (canonical id, or one of its aliases) matches an approved pattern."""
        hit = self._approval.get(model_id)
        if hit is None:
            names = (model_id, *aliases)
            hit = any(fnmatch.fnmatchcase(n, p) for p in self.approved_models for n in names)
            if len(self._approval) < 4096:
                self._approval[model_id] = hit
        return hit

    def budgets_for(self, user_id: str) -> list[Budget]:
        return [b for b in self.budgets if b.applies_to(user_id)]

    @property
    def governed(self) -> bool:
        """Whether a request needs the pre-call DynamoDB step (a rate limit or a budget)."""
        return self.tenant_limit.active or self.user_limit.active or bool(self.budgets)

    # ------------------------------------------------------------------ (de)serialization

    def to_dict(self) -> dict[str, Any]:
        limits = {}
        if self.tenant_limit.active:
            limits["tenant"] = self.tenant_limit.to_dict()
        if self.user_limit.active:
            limits["user"] = self.user_limit.to_dict()
        return {
            "name": self.name, "status": self.status, "approved_models": list(self.approved_models),
            "limits": limits, "budgets": [b.to_dict() for b in self.budgets], "hooks": self.hooks,
        }

    @classmethod
    def from_dict(cls, tenant_id: str, data: dict[str, Any], *, version: int = 0) -> "TenantConfig":
        if not TENANT_ID.match(tenant_id or ""):
            raise ConfigError(f"tenant id {tenant_id!r} must match {TENANT_ID.pattern}")
        if not isinstance(data, dict):
            raise ConfigError("the tenant configuration must be a JSON object")
        unknown = set(data) - {"name", "status", "approved_models", "limits", "budgets", "hooks"}
        if unknown:
            raise ConfigError(f"unknown fields {sorted(unknown)}")
        status = data.get("status", "active")
        if status not in STATUSES:
            raise ConfigError(f"status must be one of {STATUSES}")
        models = data.get("approved_models", ["*"])
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise ConfigError("approved_models must be a list of model ids or patterns (e.g. 'openai::*')")
        limits = data.get("limits") or {}
        if not isinstance(limits, dict) or set(limits) - {"tenant", "user"}:
            raise ConfigError("limits must be {'tenant': {...}, 'user': {...}}")
        budgets = []
        for i, b in enumerate(data.get("budgets") or []):
            if not isinstance(b, dict) or set(b) - {"scope", "period", "limit_usd", "user_id"}:
                raise ConfigError(f"budgets[{i}] must be {{scope, period, limit_usd[, user_id]}}")
            if b.get("scope") not in BUDGET_SCOPES:
                raise ConfigError(f"budgets[{i}].scope must be one of {BUDGET_SCOPES}")
            if b.get("period") not in PERIODS:
                raise ConfigError(f"budgets[{i}].period must be one of {PERIODS}")
            limit = b.get("limit_usd")
            if not isinstance(limit, (int, float)) or isinstance(limit, bool) or limit < 0:
                raise ConfigError(f"budgets[{i}].limit_usd must be a number >= 0")
            if b.get("user_id") is not None and b["scope"] != "user":
                raise ConfigError(f"budgets[{i}].user_id needs scope 'user'")
            budgets.append(Budget(b["scope"], b["period"], float(limit), b.get("user_id")))
        hooks = data.get("hooks") or {}
        if not isinstance(hooks, dict):
            raise ConfigError("hooks must be an object")
        return cls(
            tenant_id=tenant_id, name=str(data.get("name") or ""), status=status, approved_models=tuple(models),
            tenant_limit=_limit(limits.get("tenant"), "limits.tenant"), user_limit=_limit(limits.get("user"), "limits.user"),
            budgets=tuple(budgets), hooks=hooks, version=version,
        )


def _limit(value: Any, where: str) -> RateLimit:
    if value is None:
        return RateLimit()
    if not isinstance(value, dict) or set(value) - {"rpm", "tpm"}:
        raise ConfigError(f"{where} must be {{'rpm': n, 'tpm': n}}")
    out = {}
    for k in ("rpm", "tpm"):
        v = value.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ConfigError(f"{where}.{k} must be a positive integer (omit it for no limit)")
        out[k] = v
    return RateLimit(**out)


class TenantStore:
    def __init__(self, table: str | None = None) -> None:
        self.table = table or settings().tenants_table
        self._cache: dict[str, tuple[float, TenantConfig | None]] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str, *, fresh: bool = False) -> TenantConfig | None:
        """The tenant's configuration (cached), or None when the tenant has no item."""
        now = time.monotonic()
        hit = None if fresh else self._cache.get(tenant_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        config = self._fetch(tenant_id)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[tenant_id] = (now + settings().tenant_cache_ttl_s, config)
        return config

    def _fetch(self, tenant_id: str) -> TenantConfig | None:
        item = client("dynamodb").get_item(TableName=self.table, Key={"tenant_id": {"S": tenant_id}}, ConsistentRead=True).get("Item")
        if not item or "config" not in item:
            return None
        return TenantConfig.from_dict(tenant_id, json.loads(item["config"]["S"]), version=int(item.get("version", {}).get("N", "0")))

    def put(self, config: TenantConfig, *, expected_version: int | None = None) -> TenantConfig:
        """Write a configuration. `expected_version`: fail (ConfigError) if someone else wrote since."""
        TenantConfig.from_dict(config.tenant_id, config.to_dict())  # validate what is written
        new_version = (config.version if expected_version is None else expected_version) + 1
        kwargs: dict[str, Any] = {}
        if expected_version is not None:
            if expected_version == 0:
                kwargs["ConditionExpression"] = "attribute_not_exists(tenant_id)"
            else:
                kwargs["ConditionExpression"] = "version = :v"
                kwargs["ExpressionAttributeValues"] = {":v": {"N": str(expected_version)}}
        ddb = client("dynamodb")
        try:
            ddb.put_item(TableName=self.table, Item={
                "tenant_id": {"S": config.tenant_id},
                "config": {"S": json.dumps(config.to_dict(), separators=(",", ":"), sort_keys=True)},
                "version": {"N": str(new_version)},
                "updated_at": {"N": str(int(time.time()))},
            }, **kwargs)
        except ddb.exceptions.ConditionalCheckFailedException:
            raise ConfigError(f"tenant {config.tenant_id!r} was changed concurrently (or already exists); retry") from None
        self._cache.pop(config.tenant_id, None)
        return TenantConfig.from_dict(config.tenant_id, config.to_dict(), version=new_version)

    def update(self, tenant_id: str, change: Any) -> TenantConfig:
        """Read, apply `change(dict) -> dict`, write conditionally on the version read; retried on races."""
        for _ in range(5):
            current = self.get(tenant_id, fresh=True)
            if current is None:
                raise ConfigError(f"tenant {tenant_id!r} does not exist (create it first)")
            data = change(json.loads(json.dumps(current.to_dict())))
            try:
                return self.put(TenantConfig.from_dict(tenant_id, data), expected_version=current.version)
            except ConfigError as exc:
                if "concurrently" not in str(exc):
                    raise
        raise ConfigError(f"tenant {tenant_id!r} keeps changing concurrently; retry")

    def delete(self, tenant_id: str) -> None:
        client("dynamodb").delete_item(TableName=self.table, Key={"tenant_id": {"S": tenant_id}})
        self._cache.pop(tenant_id, None)

    def list(self) -> list[TenantConfig]:
        out = []
        kwargs: dict[str, Any] = {"TableName": self.table}
        ddb = client("dynamodb")
        while True:
            resp = ddb.scan(**kwargs)
            for item in resp.get("Items", []):
                if "config" in item:
                    out.append(TenantConfig.from_dict(item["tenant_id"]["S"], json.loads(item["config"]["S"]),
                                                      version=int(item.get("version", {}).get("N", "0"))))
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return sorted(out, key=lambda t: t.tenant_id)

    def forget(self) -> None:
        self._cache.clear()
