"""Who may call the HTTP API: one authorizer mode for every route (`httpAuthorizer` context).

- `lambda` (default): `functions/authorizer` (llm_gateway/service/authorizer.py), a REQUEST
  authorizer with simple responses (`{"isAuthorized", "context": {tenant_id, user_id, key_id,
  scopes}}`, payload 2.0). API Gateway caches its answer per key for `authorizerCacheTtlSeconds`.
  A cached authorizer needs an identity source that every request carries, and HTTP API refuses
  (401) a request missing any of them, so each route names the header its clients send the key
  in: `Authorization` (Bearer; native routes and the OpenAI front door) or `x-api-key` (the
  Anthropic front door, as the Anthropic SDKs send it). With a TTL of 0 there is no cache and no
  identity source: the authorizer runs on every request and takes either header on every route.
- `jwt`: API Gateway's JWT authorizer (issuer + audience) on every route; the functions read the
  tenant, user and scopes from the claims (`LLMGW_JWT_*_CLAIM`). API keys are then not accepted
  on the HTTP API (an HTTP API route takes one authorizer); the streaming Function URL keeps
  checking keys in the app.
- `none`: no API Gateway authorizer; every function checks the key itself (pipeline step 1).

Whatever the mode, the functions still authenticate: they trust the authorizer context API
Gateway adds (never anything a client can send) and fall back to the key lookup without it, so
local mode and direct invocations behave as before. Route scopes and tenant policy are always
checked by the functions (a cached authorizer answer is shared by every route).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk.aws_apigatewayv2_authorizers import HttpJwtAuthorizer, HttpLambdaAuthorizer, HttpLambdaResponseType
from constructs import Construct

from infra import spec
from infra.constructs.functions import GatewayFunction, SharedDeps

# Route path prefix -> the header its clients send the API key in (default: Authorization).
KEY_HEADER_BY_PREFIX: dict[str, str] = {"/anthropic/": "x-api-key"}


def key_header(path: str) -> str:
    for prefix, header in KEY_HEADER_BY_PREFIX.items():
        if path.startswith(prefix):
            return header
    return "Authorization"


class ApiAuth(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        mode: str,
        cache_ttl_s: int,
        jwt_issuer: str | None,
        jwt_audience: tuple[str, ...],
        code: Path | None,
        deps: SharedDeps,
    ) -> None:
        super().__init__(scope, construct_id)
        self.mode = mode
        self.function: lambda_.Function | None = None
        self._lambda: dict[str, HttpLambdaAuthorizer] = {}
        self._jwt: HttpJwtAuthorizer | None = None
        self._cache_ttl_s = cache_ttl_s
        if mode == "lambda":
            if code is None:
                raise SystemExit("httpAuthorizer=lambda needs functions/authorizer")
            self.function = GatewayFunction(self, "Authorizer", fn_spec=spec.AUTHORIZER, code=code, deps=deps).function
        elif mode == "jwt":
            self._jwt = HttpJwtAuthorizer(
                "JwtAuthorizer", jwt_issuer or "", jwt_audience=list(jwt_audience),
                authorizer_name="llmgw-jwt", identity_source=["$request.header.Authorization"],
            )

    def _lambda_authorizer(self, header: str | None) -> HttpLambdaAuthorizer:
        """One authorizer (same function) per identity source; `None` = uncached, no identity source."""
        key = header or ""
        if key not in self._lambda:
            assert self.function is not None
            name = "llmgw-api-key" + (f"-{header.lower()}" if header else "")
            self._lambda[key] = HttpLambdaAuthorizer(
                "ApiKeyAuthorizer" + (header.replace("-", "").capitalize() if header else ""), self.function,
                authorizer_name=name,
                response_types=[HttpLambdaResponseType.SIMPLE],
                identity_source=[f"$request.header.{header}"] if header else [],
                results_cache_ttl=Duration.seconds(self._cache_ttl_s),
            )
        return self._lambda[key]

    def for_route(self, path: str) -> apigwv2.IHttpRouteAuthorizer | None:
        """The authorizer of a route (None: the route has none)."""
        if self.mode == "jwt":
            return self._jwt
        if self.mode == "lambda":
            return self._lambda_authorizer(key_header(path) if self._cache_ttl_s > 0 else None)
        return None
