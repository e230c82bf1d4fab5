"""boto3 clients, created lazily and reused across warm invocations.

`LLMGW_AWS_ENDPOINT_URL` points every client at an emulator (the local server's embedded moto).
boto3 is imported on first use, not at handler import, to keep cold starts short.

Client-side parameter validation is off: every request here is built by the gateway's own
stores, the service validates it anyway (a `ValidationException` names the field), and botocore's
validation walk was two thirds of the CPU of serializing a 25-item `BatchWriteItem`.
"""

from __future__ import annotations

import threading
from typing import Any

from llm_gateway.config import settings

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    c = _clients.get(service)
    if c is not None:
        return c
    with _lock:
        c = _clients.get(service)
        if c is None:
            import boto3
            from botocore.config import Config

            s = settings()
            c = boto3.session.Session().client(
                service,
                region_name=s.region,
                endpoint_url=s.aws_endpoint_url,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=2,
                    read_timeout=10,
                    max_pool_connections=50,
                    tcp_keepalive=True,
                    parameter_validation=False,
                ),
            )
            _clients[service] = c
    return c


def reset_clients() -> None:
    """Forget clients (tests that switch endpoints)."""
    _clients.clear()
