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
        return replace(cfg, **changes)

    # -- assets -----------------------------------------------------------------------------

    def layer_path(self) -> Path:
        if not (self.layer_asset / "python" / "llm_gateway").is_dir() and self.require_built_assets:
            raise AssetMissing(
                f"The gateway layer is not built at {self.layer_asset}/python. "
                "Run `python infra/build_layer.py` (or `make synth`) first."
            )
        return self.layer_asset

    def function_path(self, fs: spec.FunctionSpec) -> Path:
        """build/functions/<family> when bundled, else functions/<family>."""
        if self.functions_build_dir is not None:
            built = self.functions_build_dir / fs.family
            if built.is_dir():
                return built
        if self.require_built_assets:
            from infra.build_layer import function_requirements

            if function_requirements(fs):
                raise AssetMissing(
                    f"functions/{fs.family} needs packages bundled ({', '.join(function_requirements(fs))}). "
                    "Run `python infra/build_layer.py` (or `make synth`) first."
                )
        source = spec.FUNCTIONS_SOURCE / fs.family
        if not source.is_dir():
            raise AssetMissing(f"functions/{fs.family}/ does not exist")
        return source
