"""Step 1 — authenticate: API key (`Authorization: Bearer`) or an upstream authorizer's context."""

from __future__ import annotations

from typing import Any, Mapping

from llm_gateway.api.errors import GatewayError
from llm_gateway.stores.keys import ApiKeyStore, Principal


class Authenticator:
    def __init__(self, keys: ApiKeyStore | None = None) -> None:
        self._keys = keys

    @property
    def keys(self) -> ApiKeyStore:
        if self._keys is None:
            self._keys = ApiKeyStore()
        return self._keys

    def authenticate(self, headers: Mapping[str, str], authorizer: Mapping[str, Any] | None = None) -> Principal:
        """The caller. `headers` are lower-cased; `authorizer` is API Gateway's authorizer context."""
        if authorizer:
            ctx = authorizer.get("lambda") or {}
            claims = (authorizer.get("jwt") or {}).get("claims") or {}
            tenant = ctx.get("tenant_id") or claims.get("tenant_id")
            if tenant:
                return Principal(tenant_id=str(tenant), user_id=str(ctx.get("user_id") or claims.get("sub") or "unknown"),
                                 key_id=str(ctx.get("key_id") or "jwt"))
        raw = api_key_from(headers)
        if raw is None:
            raise GatewayError("unauthorized", "No API key: send 'Authorization: Bearer <api key>'.",
                               headers={"WWW-Authenticate": 'Bearer realm="llm-gateway"'})
        principal = self.keys.lookup(raw)
        if principal is None:
            raise GatewayError("unauthorized", "The API key is not valid (unknown, revoked or expired).",
                               headers={"WWW-Authenticate": 'Bearer realm="llm-gateway", error="invalid_token"'})
        return principal


def api_key_from(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value:
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None
