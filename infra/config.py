"""Deployment settings: CDK context values (cdk.json or `-c key=value`) -> one frozen object.

| context key | default | meaning |
| --- | --- | --- |
| `stackName` | `LlmGateway` | CloudFormation stack name |
| `layerAsset` | `build/layer` | folder holding `python/llm_gateway` + deps (infra/build_layer.py) |
| `functionsBuildDir` | `build/functions` | bundles of functions that need extra packages |
| `lwaLayerVersion` | `25` | version of the Lambda Web Adapter layer (arm64) |
| `logRetentionDays` | `30` | retention of every log group |
| `fileExpiryDays` | `{"generated/": 7}` | files-bucket key prefix -> days until objects expire |
| `retainData` | `true` | keep tables and bucket when the stack is deleted |
| `providerSecretPrefix` | `llmgw/` | functions may read Secrets Manager secrets named `<prefix>*` |
| `hookFunctionPrefix` | `llmgw-hook-` | functions may invoke tenant hook functions named `<prefix>*` |
| `providerEnv` | `[]` | names of env vars copied from the deploying shell into the functions (dev only: values are visible in the Lambda configuration) |
| `extraEnv` | `{}` | more plain settings for every function (`LLMGW_CATALOG`, `LLMGW_EGRESS_BASE_URL`, ...) |
| `httpAuthorizer` | `lambda` (`jwt` when `jwtIssuer` is set) | the HTTP API routes' authorizer: `lambda` (API keys, functions/authorizer), `jwt` (API Gateway's JWT authorizer) or `none` (the functions check the key themselves) |
| `authorizerCacheTtlSeconds` | `30` | how long API Gateway caches the Lambda authorizer's answer per key (0-3600; 0 = no cache, and either key header works on every route) |
| `jwtIssuer`, `jwtAudience` | unset | the JWT authorizer's issuer URL and audience(s) (string or list) |
| `jwtTenantClaim`, `jwtUserClaim`, `jwtScopesClaim` | `tenant_id`, `sub`, `scope` | claims naming the tenant, user and scopes (`LLMGW_JWT_*_CLAIM` on the API functions) |
| `nag` | `true` | run cdk-nag's AwsSolutions checks when cdk-nag is installed |
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from infra import spec


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _as_path(value: Any) -> Path:
    path = Path(str(value))
    return path if path.is_absolute() else spec.ROOT / path


class AssetMissing(SystemExit):
    pass


@dataclass(frozen=True)
class GatewayConfig:
    stack_name: str = "LlmGateway"
    layer_asset: Path = spec.LAYER_BUILD_DIR
    functions_build_dir: Path | None = spec.FUNCTIONS_BUILD_DIR
    lwa_layer_version: int = spec.LWA_DEFAULT_VERSION
    log_retention_days: int = 30
    file_expiry_days: dict[str, int] = field(default_factory=lambda: dict(spec.DEFAULT_FILE_EXPIRY_DAYS))
    retain_data: bool = True
    provider_secret_prefix: str = "llmgw/"
    hook_function_prefix: str = "llmgw-hook-"
    provider_env: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    http_authorizer: str = "lambda"  # lambda | jwt | none
    authorizer_cache_ttl_s: int = 30  # LLMGW_AUTH_CACHE_TTL_S's default: the longest a revoked key may keep working
    jwt_issuer: str | None = None
    jwt_audience: tuple[str, ...] = ()
    jwt_tenant_claim: str = "tenant_id"
    jwt_user_claim: str = "sub"
    jwt_scopes_claim: str = "scope"
    nag: bool = True
    # A deploy needs real assets: fail early instead of shipping a function without its deps.
    require_built_assets: bool = True

    @classmethod
    def from_context(cls, node: Any, environ: dict[str, str] | None = None) -> GatewayConfig:
        """Read the app's context (`node.try_get_context`)."""
        environ = dict(os.environ if environ is None else environ)
        get = node.try_get_context
        cfg = cls()
        changes: dict[str, Any] = {}
        if get("stackName"):
            changes["stack_name"] = str(get("stackName"))
        if get("layerAsset"):
            changes["layer_asset"] = _as_path(get("layerAsset"))
        if get("functionsBuildDir"):
            changes["functions_build_dir"] = _as_path(get("functionsBuildDir"))
        if get("lwaLayerVersion") is not None:
            changes["lwa_layer_version"] = int(get("lwaLayerVersion"))
        if get("logRetentionDays") is not None:
            changes["log_retention_days"] = int(get("logRetentionDays"))
        if get("fileExpiryDays") is not None:
            changes["file_expiry_days"] = {str(k): int(v) for k, v in _as_json(get("fileExpiryDays")).items()}
        if get("retainData") is not None:
            changes["retain_data"] = _as_bool(get("retainData"))
        if get("providerSecretPrefix") is not None:
            changes["provider_secret_prefix"] = str(get("providerSecretPrefix"))
        if get("hookFunctionPrefix") is not None:
            changes["hook_function_prefix"] = str(get("hookFunctionPrefix"))
        if get("providerEnv"):
            names = _as_json(get("providerEnv"))
            names = [names] if isinstance(names, str) else names
            missing = [n for n in names if not environ.get(n)]
            if missing:
                raise SystemExit(f"providerEnv names unset environment variables: {', '.join(missing)}")
            changes["provider_env"] = {n: environ[n] for n in names}
        if get("extraEnv"):
            changes["extra_env"] = {str(k): str(v) for k, v in _as_json(get("extraEnv")).items()}
        if get("nag") is not None:
            changes["nag"] = _as_bool(get("nag"))
        if get("jwtIssuer"):
            changes["jwt_issuer"] = str(get("jwtIssuer"))
        if get("jwtAudience"):
            audience = get("jwtAudience")
            if isinstance(audience, str) and audience.strip().startswith("["):
                audience = json.loads(audience)
            changes["jwt_audience"] = tuple(str(a) for a in ([audience] if isinstance(audience, str) else audience))
        for key, attr in (("jwtTenantClaim", "jwt_tenant_claim"), ("jwtUserClaim", "jwt_user_claim"),
                          ("jwtScopesClaim", "jwt_scopes_claim")):
            if get(key):
                changes[attr] = str(get(key))
        if get("httpAuthorizer"):
            changes["http_authorizer"] = str(get("httpAuthorizer")).strip().lower()
        elif changes.get("jwt_issuer"):
            changes["http_authorizer"] = "jwt"
        if get("authorizerCacheTtlSeconds") is not None:
            changes["authorizer_cache_ttl_s"] = int(get("authorizerCacheTtlSeconds"))
        return replace(cfg, **changes).checked()

    def checked(self) -> GatewayConfig:
        """Refuse authorizer settings API Gateway would reject (at deploy time, much later)."""
        if self.http_authorizer not in ("lambda", "jwt", "none"):
            raise SystemExit(f"httpAuthorizer={self.http_authorizer!r}: use lambda, jwt or none")
        if not 0 <= self.authorizer_cache_ttl_s <= 3600:
            raise SystemExit(f"authorizerCacheTtlSeconds={self.authorizer_cache_ttl_s}: API Gateway allows 0 to 3600")
        if self.http_authorizer == "jwt":
            if not (self.jwt_issuer or "").startswith("https://"):
                raise SystemExit("httpAuthorizer=jwt needs jwtIssuer, the issuer's https:// URL (its OIDC discovery document)")
            if not self.jwt_audience:
                raise SystemExit("httpAuthorizer=jwt needs jwtAudience (one value or a list)")
        return self

    def jwt_environment(self) -> dict[str, str]:
        """The claim names the API functions read from `requestContext.authorizer.jwt.claims`."""
        if self.http_authorizer != "jwt":
            return {}
        return {"LLMGW_JWT_TENANT_CLAIM": self.jwt_tenant_claim, "LLMGW_JWT_USER_CLAIM": self.jwt_user_claim,
                "LLMGW_JWT_SCOPES_CLAIM": self.jwt_scopes_claim}

    # -- assets -----------------------------------------------------------------------------

    def layer_path(self) -> Path:
        if not (self.layer_asset / "python" / "llm_gateway").is_dir() and self.require_built_assets:
            raise AssetMissing(
                f"The gateway layer is not built at {self.layer_asset}/python. "
                "Run `python infra/build_layer.py` (or `make synth`) first."
            )
        return self.layer_asset

    def function_path(self, fs: spec.FunctionSpec) -> Path:
        """build/functions/<folder> when bundled, else functions/<folder> (`folder` = `family`
        unless the spec runs another family's code)."""
        if self.functions_build_dir is not None:
            built = self.functions_build_dir / fs.folder
            if built.is_dir():
                return built
        if self.require_built_assets:
            from infra.build_layer import function_requirements

            if function_requirements(fs):
                raise AssetMissing(
                    f"functions/{fs.folder} needs packages bundled ({', '.join(function_requirements(fs))}). "
                    "Run `python infra/build_layer.py` (or `make synth`) first."
                )
        source = spec.FUNCTIONS_SOURCE / fs.folder
        if not source.is_dir():
            raise AssetMissing(f"functions/{fs.folder}/ does not exist")
        return source
