"""API keys: stored as SHA-256 hashes in DynamoDB, each scoped to a tenant and a user.

Keys look like `llmgw_<key id>_<secret>`; only the hash is stored (the key id is kept in the
clear to name a key in the admin CLI and logs). A key may expire (`expires_at`, epoch seconds),
be revoked, and carry scopes (`inference`, `models`, `usage`; none stored = all).

Items in the keys table (partition key `key_hash`):

- `<sha256 hex>`: the key itself — `key_id`, `tenant_id`, `user_id`, `created_at`, `revoked`,
  optional `expires_at`, `revoked_at`, `scopes` (string set), `name`.
- `id#<key id>`: a pointer to the hash, so `llm-gateway keys revoke <key id>` needs no scan.

Lookups go through a short in-process cache (`LLMGW_AUTH_CACHE_TTL_S`, default 30 s), which also
bounds how long a revoked key still works in a warm process; expiry is checked on every lookup.
A token that is not shaped like a key is refused without any DynamoDB call.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable

from llm_gateway.config import settings
from llm_gateway.stores.aws import client

KEY_PREFIX = "llmgw_"
KEY_SHAPE = re.compile(r"^llmgw_([A-Za-z0-9]{4,32})_([A-Za-z0-9_\-]{16,128})$")
POINTER_PREFIX = "id#"
SCOPES = frozenset({"inference", "models", "usage"})


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    user_id: str
    key_id: str
    expires_at: int | None = None
    scopes: frozenset[str] | None = None  # None: every scope
    source: str = "api_key"  # api_key | jwt | authorizer

    def allows(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """The outcome of checking one raw key: a principal, or why not."""

    principal: Principal | None
    reason: str | None = None  # malformed | unknown | revoked | expired
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as the admin CLI shows it (never the secret, never the hash in full)."""

    key_id: str
    tenant_id: str
    user_id: str
    created_at: int
    expires_at: int | None
    revoked: bool
    revoked_at: int | None
    scopes: frozenset[str] | None
    name: str | None
    key_hash: str


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def key_id_of(raw_key: str) -> str | None:
    m = KEY_SHAPE.match(raw_key)
    return m.group(1) if m else None


def new_key() -> tuple[str, str]:
    """A fresh (key id, raw key): 12 hex characters of id, 192 bits of secret."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"


def _info(item: dict[str, Any]) -> KeyInfo:
    expires = item.get("expires_at", {}).get("N")
    revoked_at = item.get("revoked_at", {}).get("N")
    scopes = item.get("scopes", {}).get("SS")
    return KeyInfo(
        key_id=item.get("key_id", {}).get("S", ""),
        tenant_id=item["tenant_id"]["S"],
        user_id=item["user_id"]["S"],
        created_at=int(item.get("created_at", {}).get("N", "0")),
        expires_at=int(expires) if expires else None,
        revoked=bool(item.get("revoked", {}).get("BOOL")),
        revoked_at=int(revoked_at) if revoked_at else None,
        scopes=frozenset(scopes) if scopes else None,
        name=item.get("name", {}).get("S"),
        key_hash=item["key_hash"]["S"],
    )


class ApiKeyStore:
    def __init__(self, table: str | None = None) -> None:
        self.table = table or settings().keys_table
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ admin

    def put(
        self, raw_key: str, tenant_id: str, user_id: str, *, key_id: str | None = None, expires_at: int | None = None,
        scopes: Iterable[str] | None = None, name: str | None = None,
    ) -> str:
        """Store a key (its hash) and the pointer from its id. Returns the key id."""
        if key_id is None:
            key_id = key_id_of(raw_key)
            if key_id is None:
                raise ValueError("an API key must look like llmgw_<id>_<secret>")
        key_hash = hash_key(raw_key)
        now = int(time.time())
        item: dict[str, Any] = {
            "key_hash": {"S": key_hash},
            "key_id": {"S": key_id},
            "tenant_id": {"S": tenant_id},
            "user_id": {"S": user_id},
            "created_at": {"N": str(now)},
            "revoked": {"BOOL": False},
        }
        if expires_at:
            item["expires_at"] = {"N": str(int(expires_at))}
        if scopes is not None:
            wanted = sorted(set(scopes))
            if unknown := set(wanted) - SCOPES:
                raise ValueError(f"unknown scopes {sorted(unknown)}; use {sorted(SCOPES)}")
            if not wanted:
                raise ValueError("a key needs at least one scope (or none given: all scopes)")
            item["scopes"] = {"SS": wanted}
        if name:
            item["name"] = {"S": name[:200]}
        ddb = client("dynamodb")
        ddb.put_item(TableName=self.table, Item=item)
        ddb.put_item(TableName=self.table, Item={
            "key_hash": {"S": POINTER_PREFIX + key_id}, "target": {"S": key_hash}, "tenant_id": {"S": tenant_id},
        })
        self._cache.pop(key_hash, None)
        return key_id

    def issue(
        self, tenant_id: str, user_id: str, *, expires_at: int | None = None, scopes: Iterable[str] | None = None,
        name: str | None = None,
    ) -> tuple[str, str]:
        """A new key for a tenant's user: (key id, raw key). The raw key is shown once, never stored."""
        for _ in range(5):
            key_id, raw = new_key()
            if self.get(key_id) is None:
                self.put(raw, tenant_id, user_id, key_id=key_id, expires_at=expires_at, scopes=scopes, name=name)
                return key_id, raw
        raise RuntimeError("could not draw an unused key id")  # pragma: no cover - 48 random bits

    def get(self, key_id: str) -> KeyInfo | None:
        ddb = client("dynamodb")
        ptr = ddb.get_item(TableName=self.table, Key={"key_hash": {"S": POINTER_PREFIX + key_id}}, ConsistentRead=True).get("Item")
        if not ptr:
            return None
        item = ddb.get_item(TableName=self.table, Key={"key_hash": ptr["target"]}, ConsistentRead=True).get("Item")
        return _info(item) if item else None

    def revoke(self, key: str) -> KeyInfo | None:
        """Revoke by key id, raw key or hash. Returns the key as it now is (None: unknown)."""
        if key.startswith(KEY_PREFIX):
            key_hash = hash_key(key)
        elif len(key) == 64 and all(c in "0123456789abcdef" for c in key):
            key_hash = key
        else:
            info = self.get(key)
            if info is None:
                return None
            key_hash = info.key_hash
        ddb = client("dynamodb")
        try:
            attrs = ddb.update_item(
                TableName=self.table, Key={"key_hash": {"S": key_hash}},
                UpdateExpression="SET revoked = :t, revoked_at = if_not_exists(revoked_at, :now)",
                ConditionExpression="attribute_exists(key_hash)",
                ExpressionAttributeValues={":t": {"BOOL": True}, ":now": {"N": str(int(time.time()))}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ddb.exceptions.ConditionalCheckFailedException:
            return None
        self._cache.pop(key_hash, None)
        return _info(attrs)

    def list_keys(self, tenant_id: str | None = None) -> list[KeyInfo]:
        """Every key (of one tenant). A scan: an admin operation, never on the request path."""
        kwargs: dict[str, Any] = {"TableName": self.table, "FilterExpression": "attribute_exists(key_id)"}
        if tenant_id:
            kwargs["FilterExpression"] += " AND tenant_id = :t"
            kwargs["ExpressionAttributeValues"] = {":t": {"S": tenant_id}}
        out: list[KeyInfo] = []
        ddb = client("dynamodb")
        while True:
            resp = ddb.scan(**kwargs)
            out.extend(_info(i) for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return sorted(out, key=lambda k: (k.tenant_id, k.created_at, k.key_id))

    # ------------------------------------------------------------------ request path

    def check(self, raw_key: str) -> KeyCheck:
        """The principal for a key, or the reason it is refused."""
        m = KEY_SHAPE.match(raw_key)
        if m is None:
            return KeyCheck(None, "malformed")
        key_hash = hash_key(raw_key)
        now = time.monotonic()
        hit = self._cache.get(key_hash)
        if hit is not None and hit[0] > now:
            info = hit[1]
        else:
            info = self._fetch(key_hash)
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[key_hash] = (now + settings().auth_cache_ttl_s, info)
        if info is None:
            return KeyCheck(None, "unknown", m.group(1))
        if info.revoked:
            return KeyCheck(None, "revoked", info.key_id)
        if info.expires_at is not None and info.expires_at <= time.time():
            return KeyCheck(None, "expired", info.key_id)
        return KeyCheck(Principal(tenant_id=info.tenant_id, user_id=info.user_id, key_id=info.key_id,
                                  expires_at=info.expires_at, scopes=info.scopes))

    def lookup(self, raw_key: str) -> Principal | None:
        """The principal for a key, or None when malformed, unknown, revoked or expired."""
        return self.check(raw_key).principal

    def _fetch(self, key_hash: str) -> KeyInfo | None:
        item = client("dynamodb").get_item(TableName=self.table, Key={"key_hash": {"S": key_hash}}, ConsistentRead=False).get("Item")
        if not item or "key_id" not in item:
            return None
        return _info(item)

    def forget(self) -> None:
        self._cache.clear()
