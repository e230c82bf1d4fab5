"""API keys: stored as SHA-256 hashes in DynamoDB, each scoped to a tenant and a user.

Keys look like `llmgw_<key id>_<secret>`; only the hash is stored (the key id is kept in the
clear to name a key in the admin CLI and logs). Lookups go through a short in-process cache
(`LLMGW_AUTH_CACHE_TTL_S`, default 30 s), which also bounds how long a revoked key still works.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from llm_gateway.config import settings
from llm_gateway.stores.aws import client

KEY_PREFIX = "llmgw_"


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    user_id: str
    key_id: str
    expires_at: int | None = None


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh (key id, raw key)."""
    key_id = secrets.token_hex(4)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"


class ApiKeyStore:
    def __init__(self, table: str | None = None) -> None:
        self.table = table or settings().keys_table
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def put(self, raw_key: str, tenant_id: str, user_id: str, *, key_id: str | None = None, expires_at: int | None = None) -> None:
        if key_id is None:
            key_id = raw_key.split("_")[1] if raw_key.startswith(KEY_PREFIX) else "external"
        item: dict[str, Any] = {
            "key_hash": {"S": hash_key(raw_key)},
            "key_id": {"S": key_id},
            "tenant_id": {"S": tenant_id},
            "user_id": {"S": user_id},
            "created_at": {"N": str(int(time.time()))},
            "revoked": {"BOOL": False},
        }
        if expires_at:
            item["expires_at"] = {"N": str(int(expires_at))}
        client("dynamodb").put_item(TableName=self.table, Item=item)

    def revoke(self, raw_key_or_hash: str) -> None:
        key_hash = raw_key_or_hash if len(raw_key_or_hash) == 64 and not raw_key_or_hash.startswith(KEY_PREFIX) else hash_key(raw_key_or_hash)
        client("dynamodb").update_item(
            TableName=self.table, Key={"key_hash": {"S": key_hash}},
            UpdateExpression="SET revoked = :t", ExpressionAttributeValues={":t": {"BOOL": True}},
        )
        self._cache.pop(key_hash, None)

    def lookup(self, raw_key: str) -> Principal | None:
        """The principal for a key, or None when unknown, revoked or expired."""
        key_hash = hash_key(raw_key)
        now = time.monotonic()
        hit = self._cache.get(key_hash)
        if hit is not None and hit[0] > now:
            principal = hit[1]
        else:
            principal = self._fetch(key_hash)
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[key_hash] = (now + settings().auth_cache_ttl_s, principal)
        if principal is not None and principal.expires_at is not None and principal.expires_at <= time.time():
            return None
        return principal

    def _fetch(self, key_hash: str) -> Principal | None:
        item = client("dynamodb").get_item(TableName=self.table, Key={"key_hash": {"S": key_hash}}, ConsistentRead=False).get("Item")
        if not item or item.get("revoked", {}).get("BOOL"):
            return None
        expires = item.get("expires_at", {}).get("N")
        return Principal(
            tenant_id=item["tenant_id"]["S"], user_id=item["user_id"]["S"], key_id=item.get("key_id", {}).get("S", ""),
            expires_at=int(expires) if expires else None,
        )
