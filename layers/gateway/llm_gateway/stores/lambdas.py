"""Invoking a tenant's hook Lambda function: synchronous, JSON in and out, under a timeout.

One client per timeout value (botocore's read timeout is per client), no retries: a hook that
is slow or failing is handled by the tenant's fail-open / fail-closed policy, not retried.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from llm_gateway.config import settings

_clients: dict[int, Any] = {}
_lock = threading.Lock()


class InvokeError(Exception):
    """The function could not be invoked, timed out, raised, or answered something not JSON."""


def _client(timeout_ms: int) -> Any:
    c = _clients.get(timeout_ms)
    if c is None:
        with _lock:
            c = _clients.get(timeout_ms)
            if c is None:
                import boto3
                from botocore.config import Config

                s = settings()
                seconds = max(0.05, timeout_ms / 1000)
                c = boto3.session.Session().client(
                    "lambda", region_name=s.region, endpoint_url=s.aws_endpoint_url,
                    config=Config(connect_timeout=min(seconds, 2.0), read_timeout=seconds,
                                  retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=50),
                )
                _clients[timeout_ms] = c
    return c


def invoke_json(function: str, payload: dict[str, Any], timeout_ms: int) -> Any:
    """Call `function` (name or ARN) with `payload`; its JSON answer, or `InvokeError`."""
    try:
        resp = _client(timeout_ms).invoke(FunctionName=function, InvocationType="RequestResponse",
                                           Payload=json.dumps(payload, separators=(",", ":")).encode())
        body = resp["Payload"].read()
    except Exception as exc:  # noqa: BLE001 - botocore raises many types; the caller applies its policy
        raise InvokeError(type(exc).__name__) from exc
    if resp.get("FunctionError"):
        raise InvokeError(f"function error ({resp['FunctionError']})")
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise InvokeError("the answer is not JSON") from None


def reset_clients() -> None:
    _clients.clear()
