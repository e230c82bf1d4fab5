"""Step 1 — authenticate: API key (`Authorization: Bearer`) or an upstream authorizer's context.

Three ways in, one `Principal` out:

- API Gateway's Lambda authorizer (`functions/authorizer`) already checked the key: its context
  (`requestContext.authorizer.lambda`) carries `tenant_id`, `user_id`, `key_id`, `scopes`.
- API Gateway's JWT authorizer already checked the token: the claims
  (`requestContext.authorizer.jwt.claims`) name the tenant and user; which claims is set by
  `LLMGW_JWT_TENANT_CLAIM` (default `tenant_id`) and `LLMGW_JWT_USER_CLAIM` (default `sub`).
- No authorizer (the streaming Function URL, WebSocket `$connect`, the local server): the API
  key from `Authorization: Bearer …` or `x-api-key` is checked here against the keys table.
"""

from __future__ import annotations

from typing import Any, Mapping

from llm_gateway.api.errors import GatewayError
from llm_gateway.config import settings
from llm_gateway.stores.keys import SCOPES, ApiKeyStore, Principal

_REASONS = {
    "malformed": "The API key is malformed: keys look like 'llmgw_<key id>_<secret>'.",
    "unknown": "The API key is not valid (unknown key).",
    "revoked": "The API key '{key_id}' was revoked.",
    "expired": "The API key '{key_id}' has expired.",
}

# route family -> the scope a key needs for it
ROUTE_SCOPES = {"chat": "inference", "embeddings": "inference", "jobs": "inference", "batches": "inference",
                "realtime": "inference", "models": "models", "usage": "usage"}


def _challenge(error: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="llm-gateway"' + (f', error="{error}"' if error else "")
    return {"WWW-Authenticate": value}


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by name; a dotted name (`org.tenant`) also walks into nested objects."""
    if name in claims:
        return claims[name]
    node: Any = claims
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _scopes(value: Any) -> frozenset[str] | None:
    """`scopes` from an authorizer context or a JWT `scope` claim, kept to the gateway's own names."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        items = value.replace(",", " ").strip("[]").split()
    else:
        items = [str(v) for v in value]
    # JWT scopes may be namespaced (`llmgw:inference`, `llmgw/usage`); keep the last segment
    names = {i.rsplit(":", 1)[-1].rsplit("/", 1)[-1] for i in items}
    known = names & SCOPES
    return frozenset(known) if known else None


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
            principal = self.from_authorizer(authorizer)
            if principal is not None:
                return principal
        raw = api_key_from(headers)
        if raw is None:
            raise GatewayError("unauthorized", "No API key: send 'Authorization: Bearer <api key>'.", headers=_challenge())
        return self.check_key(raw)

    def check_key(self, raw: str) -> Principal:
        result = self.keys.check(raw)
        if result.principal is None:
            detail = _REASONS[result.reason or "unknown"].format(key_id=result.key_id or "?")
            raise GatewayError("unauthorized", detail, headers=_challenge("invalid_token"))
        return result.principal

    @staticmethod
    def from_authorizer(authorizer: Mapping[str, Any]) -> Principal | None:
        ctx = authorizer.get("lambda") or {}
        if ctx.get("tenant_id"):
            return Principal(tenant_id=str(ctx["tenant_id"]), user_id=str(ctx.get("user_id") or "unknown"),
                             key_id=str(ctx.get("key_id") or "authorizer"), scopes=_scopes(ctx.get("scopes")),
                             source="authorizer")
        jwt = authorizer.get("jwt")
        if jwt is None:
            return None
        claims = jwt.get("claims") or {}
        s = settings()
        tenant = claim(claims, s.jwt_tenant_claim)
        if tenant in (None, ""):
            raise GatewayError("unauthorized", f"The token has no '{s.jwt_tenant_claim}' claim naming the tenant.",
                               headers=_challenge("invalid_token"))
        user = claim(claims, s.jwt_user_claim)
        if user in (None, ""):
            raise GatewayError("unauthorized", f"The token has no '{s.jwt_user_claim}' claim naming the user.",
                               headers=_challenge("invalid_token"))
        scopes = _scopes(claim(claims, s.jwt_scopes_claim)) if s.jwt_scopes_claim else None
        if scopes is None and jwt.get("scopes"):
            scopes = _scopes(jwt["scopes"])
        jti = claims.get("jti")
        return Principal(tenant_id=str(tenant), user_id=str(user), key_id=f"jwt:{jti}" if jti else "jwt",
                         scopes=scopes, source="jwt")


def require_scope(principal: Principal, route: str) -> None:
    """`forbidden` when the credentials were issued without the scope this route needs."""
    scope = ROUTE_SCOPES.get(route)
    if scope is not None and not principal.allows(scope):
        have = ", ".join(sorted(principal.scopes or ())) or "none"
        raise GatewayError("forbidden", f"These credentials lack the '{scope}' scope this route needs (they have: {have}).",
                           scope=scope)


def api_key_from(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value:
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None
