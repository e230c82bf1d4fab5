"""Provider credentials from the environment or Secrets Manager, cached per process.

A catalog provider names its source: `{"env": "OPENAI_API_KEY"}` or
`{"secret": "<name or ARN>", "field": "api_key"}` (`field` when the secret is JSON),
`"optional": true` for servers that take no key. The value never reaches a log or an error.
"""

from __future__ import annotations

import json
import os
from typing import Any

from llm_gateway.api.errors import GatewayError

_cache: dict[str, str | None] = {}


def resolve_credential(provider_id: str, source: dict[str, Any] | None) -> str | None:
    if not source or source.get("aws"):
        return None
    key = f"{provider_id}:{source.get('env') or source.get('secret')}"
    if key in _cache:
        return _cache[key]
    value: str | None = None
    if "env" in source:
        value = os.environ.get(source["env"]) or None
    elif "secret" in source:
        from llm_gateway.stores.secrets import get_secret_string

        raw = get_secret_string(source["secret"])
        if raw is not None and source.get("field"):
            try:
                value = json.loads(raw).get(source["field"])
            except (ValueError, AttributeError):
                value = None
        else:
            value = raw
    if value is None and not source.get("optional"):
        where = f"environment variable {source['env']}" if "env" in source else "its Secrets Manager secret"
        raise GatewayError(
            "provider_error",
            f"Provider '{provider_id}' has no credential configured (set {where}).",
            provider=provider_id,
        )
    _cache[key] = value
    return value


def clear_cache() -> None:
    _cache.clear()
