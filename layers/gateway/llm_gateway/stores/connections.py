"""Sending to WebSocket clients: API Gateway's `@connections` management API.

`post(connection_id, data)` is `PostToConnection` against the stage's endpoint
(`https://{domainName}/{stage}`, from the WebSocket event's request context), `close()` is
`DeleteConnection`. A client that is gone answers 410 (`GoneException`): `ConnectionGone`.
`LLMGW_AWS_ENDPOINT_URL` (local mode, tests) replaces the endpoint: the embedded moto serves
`/@connections/{id}`, and local mode delivers what is posted there to the open socket
(`llm_gateway/local/realtime.py`).

One boto3 client per endpoint and process (clients are thread-safe), created on first use.
"""

from __future__ import annotations

import threading
from typing import Any

from llm_gateway.config import settings

_clients: dict[str, Any] = {}
_lock = threading.Lock()


class ConnectionGone(Exception):
    """The client disconnected (410 Gone / ForbiddenException on a closed connection)."""


def endpoint_for(domain: str, stage: str) -> str:
    """The management API endpoint of a WebSocket stage."""
    domain = domain.strip("/")
    if domain.startswith(("http://", "https://")):
        base = domain
    else:
        base = "https://" + domain
    return f"{base}/{stage}" if stage and stage != "$default" else base


def _client(endpoint: str) -> Any:
    s = settings()
    target = s.connections_endpoint_url or s.aws_endpoint_url or endpoint
    c = _clients.get(target)
    if c is None:
        with _lock:
            c = _clients.get(target)
            if c is None:
                import boto3
                from botocore.config import Config

                c = boto3.session.Session().client(
                    "apigatewaymanagementapi", region_name=settings().region, endpoint_url=target,
                    config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=2, read_timeout=5,
                                  max_pool_connections=50, tcp_keepalive=True))
                _clients[target] = c
    return c


def _gone(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("GoneException", "410") or status == 410


class ConnectionStore:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def post(self, connection_id: str, data: bytes) -> None:
        try:
            _client(self.endpoint).post_to_connection(ConnectionId=connection_id, Data=data)
        except Exception as exc:  # noqa: BLE001 - botocore's ClientError subclasses are per client
            if _gone(exc):
                raise ConnectionGone(connection_id) from None
            raise

    def close(self, connection_id: str) -> None:
        """Close the connection from the server side (API Gateway then sends `$disconnect`)."""
        try:
            _client(self.endpoint).delete_connection(ConnectionId=connection_id)
        except Exception as exc:  # noqa: BLE001
            if not _gone(exc):
                raise


def reset_clients() -> None:
    _clients.clear()


def _register_reset() -> None:
    from llm_gateway import resets

    resets.register(reset_clients)


_register_reset()
