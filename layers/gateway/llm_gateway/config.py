"""Settings from the environment, read once per process (tests call `reset_settings()`).

Every name is documented in the README's Configuration table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Settings:
    keys_table: str
    tenants_table: str
    usage_table: str
    types_table: str
    types_cache_ttl_s: float
    files_bucket: str
    aws_endpoint_url: str | None
    region: str
    max_body_bytes: int
    auth_cache_ttl_s: float
    usage_ttl_days: int
    local_mode: bool


@lru_cache(maxsize=1)
def settings() -> Settings:
    env = os.environ.get
    return Settings(
        keys_table=env("LLMGW_KEYS_TABLE", "llmgw-api-keys"),
        tenants_table=env("LLMGW_TENANTS_TABLE", "llmgw-tenants"),
        usage_table=env("LLMGW_USAGE_TABLE", "llmgw-usage"),
        types_table=env("LLMGW_TYPES_TABLE", "llmgw-types"),
        types_cache_ttl_s=float(env("LLMGW_TYPES_CACHE_TTL_S", "300")),
        files_bucket=env("LLMGW_FILES_BUCKET", "llmgw-files"),
        aws_endpoint_url=env("LLMGW_AWS_ENDPOINT_URL") or None,
        region=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1",
        max_body_bytes=int(env("LLMGW_MAX_BODY_BYTES", str(4 * 1024 * 1024))),
        auth_cache_ttl_s=float(env("LLMGW_AUTH_CACHE_TTL_S", "30")),
        usage_ttl_days=int(env("LLMGW_USAGE_TTL_DAYS", "400")),
        local_mode=env("LLMGW_LOCAL", "") == "1",
    )


def reset_settings() -> None:
    settings.cache_clear()
