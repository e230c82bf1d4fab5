"""A transport-neutral HTTP request/response pair, and their API Gateway v2 mapping."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.render import dumps


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""
    query: dict[str, str] = field(default_factory=dict)
    path_params: dict[str, str] = field(default_factory=dict)
    authorizer: dict[str, Any] | None = None
    request_id: str | None = None
    source_ip: str | None = None

    @classmethod
    def from_apigw_v2(cls, event: dict[str, Any]) -> "HttpRequest":
        rc = event.get("requestContext") or {}
        http = rc.get("http") or {}
        raw = event.get("body")
        if raw is None:
            body = b""
        elif event.get("isBase64Encoded"):
            body = base64.b64decode(raw)
        else:
            body = raw.encode("utf-8")
        return cls(
            method=(http.get("method") or "GET").upper(),
            path=http.get("path") or event.get("rawPath") or "/",
            headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
            body=body,
            query=event.get("queryStringParameters") or {},
            path_params=event.get("pathParameters") or {},
            authorizer=rc.get("authorizer"),
            request_id=rc.get("requestId"),
            source_ip=http.get("sourceIp"),
        )


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: str = ""
    stream: Iterator[str] | None = None  # SSE frames, when the transport can stream

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> "HttpResponse":
        return cls(status, {"Content-Type": "application/json", **(headers or {})}, dumps(payload))

    @classmethod
    def problem(cls, exc: GatewayError, request_id: str | None = None) -> "HttpResponse":
        body = exc.to_problem()
        if request_id:
            body["instance"] = request_id
        headers = exc.response_headers()
        if request_id:
            headers["x-request-id"] = request_id
        return cls(exc.status, headers, dumps(body))

    def buffered_body(self) -> str:
        """The whole body, joining a stream when the transport cannot stream (HTTP API)."""
        if self.stream is not None:
            self.body = "".join(self.stream)
            self.stream = None
        return self.body
