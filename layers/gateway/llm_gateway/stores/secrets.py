"""Secrets Manager reads, cached per process; values are never logged."""

from __future__ import annotations

from llm_gateway import resets
from llm_gateway.stores.aws import client

_cache: dict[str, str | None] = {}


@resets.register
def clear_secret_cache() -> None:
    _cache.clear()


def get_secret_string(secret_id: str) -> str | None:
    if secret_id in _cache:
        return _cache[secret_id]
    sm = client("secretsmanager")
    try:
        value = sm.get_secret_value(SecretId=secret_id).get("SecretString")
    except sm.exceptions.ResourceNotFoundException:
        value = None
    _cache[secret_id] = value
    return value
