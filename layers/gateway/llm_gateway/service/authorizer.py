"""The Lambda authorizer's logic: API key in, allow/deny plus the caller's identity out.

Two event shapes:

- HTTP API `REQUEST` authorizer, payload 2.0, simple responses: `{"isAuthorized": bool,
  "context": {"tenant_id", "user_id", "key_id", "scopes"}}`. The identity source is the
  `Authorization` header (API Gateway answers 401 itself when it is missing); API Gateway caches
  the answer per identity source for the configured TTL.
- WebSocket API `$connect` `REQUEST` authorizer (payload 1.0, has `methodArn`): an IAM policy
  allowing or denying `execute-api:Invoke`, with the same context. Browsers cannot set headers
  on a WebSocket, so the key may also come as the `api_key` query parameter there.

Because the cached answer is reused for every route, the authorizer checks the key only;
route scopes and tenant policy are checked by the functions themselves.
"""

from __future__ import annotations

from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.observability import logger
from llm_gateway.pipeline.auth import Authenticator, api_key_from
from llm_gateway.stores.keys import Principal


def _context(p: Principal) -> dict[str, Any]:
    return {"tenant_id": p.tenant_id, "user_id": p.user_id, "key_id": p.key_id,
            "scopes": " ".join(sorted(p.scopes)) if p.scopes is not None else ""}


def _raw_key(event: dict[str, Any]) -> str | None:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    raw = api_key_from(headers)
    if raw is None and event.get("identitySource"):
        sources = event["identitySource"]
        first = sources[0] if isinstance(sources, list) and sources else sources
        if isinstance(first, str):
            raw = api_key_from({"authorization": first})
    if raw is None and "methodArn" in event:
        raw = (event.get("queryStringParameters") or {}).get("api_key") or None
    return raw


def _policy(effect: str, resource: str, principal_id: str, context: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "principalId": principal_id,
        "policyDocument": {"Version": "2012-10-17",
                           "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]},
    }
    if context:
        out["context"] = context
    return out


class AuthorizerService:
    def __init__(self, auth: Authenticator | None = None) -> None:
        self.auth = auth or Authenticator()

    def authorize(self, event: dict[str, Any]) -> dict[str, Any]:
        raw = _raw_key(event)
        principal: Principal | None = None
        reason = "missing"
        if raw is not None:
            try:
                principal = self.auth.check_key(raw)
            except GatewayError as exc:
                reason = exc.detail
        if principal is None:
            logger.info("authorizer denied", extra={"reason": reason.split(":")[0][:80]})
        websocket = "methodArn" in event
        if websocket:
            if principal is None:
                return _policy("Deny", event["methodArn"], "anonymous", None)
            return _policy("Allow", event["methodArn"], f"{principal.tenant_id}/{principal.user_id}", _context(principal))
        if principal is None:
            return {"isAuthorized": False}
        return {"isAuthorized": True, "context": _context(principal)}


_service: AuthorizerService | None = None


def authorizer_service() -> AuthorizerService:
    global _service
    if _service is None:
        _service = AuthorizerService()
    return _service


def reset_authorizer_service() -> None:
    global _service
    _service = None
