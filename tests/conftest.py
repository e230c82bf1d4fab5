"""Shared fixtures: an in-process AWS (moto), the seeded dev key, and a way to call handlers
exactly as API Gateway would (v2 events)."""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from typing import Any

import pytest

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    LLMGW_LOCAL="1",
    POWERTOOLS_METRICS_DISABLED="true",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_LOG_LEVEL="WARNING",
)
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("LLMGW_AWS_ENDPOINT_URL", None)
os.environ.pop("LLMGW_CONNECTIONS_ENDPOINT_URL", None)

from llm_gateway.local.aws import DEV_API_KEY, DEV_TENANT, DEV_USER  # noqa: E402


def reset_process_state() -> None:
    """Forget every per-process cache, as a fresh Lambda environment would."""
    from llm_gateway.config import reset_settings
    from llm_gateway.outbound import credentials
    from llm_gateway.outbound.client import set_outbound
    from llm_gateway.providers import reset_adapters
    from llm_gateway.registry import catalog
    from llm_gateway.service.chat import reset_chat_service
    from llm_gateway.stores.aws import reset_clients

    reset_settings()
    reset_clients()
    reset_adapters()
    reset_chat_service()
    credentials.clear_cache()
    set_outbound(None)
    catalog._CATALOG = None
    try:
        from llm_gateway import resets

        resets.reset_all()
    except ImportError:
        pass


@pytest.fixture
def aws(monkeypatch):
    """In-process AWS with the gateway's tables and bucket, and the dev key seeded."""
    from moto import mock_aws

    monkeypatch.delenv("LLMGW_AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("LLMGW_CONNECTIONS_ENDPOINT_URL", raising=False)  # a local server's, from an earlier test
    with mock_aws():
        reset_process_state()
        from llm_gateway.local.aws import provision_and_seed

        provision_and_seed()
        yield
    reset_process_state()


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


class ApiClient:
    """Calls the Lambda handlers with API Gateway v2 events, like the deployed HTTP API."""

    def __init__(self) -> None:
        from llm_gateway.local.server import LambdaContext, apigw_v2_event

        self._event = apigw_v2_event
        self._context = LambdaContext

    def call(self, method: str, path: str, *, json_body: Any = None, body: bytes | str | None = None,
             headers: dict[str, str] | None = None, key: str | None = DEV_API_KEY) -> ApiResponse:
        from llm_gateway.local.routes import handler_module_for

        hdrs = {"content-type": "application/json"}
        if key is not None:
            hdrs["authorization"] = f"Bearer {key}"
        hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
        if json_body is not None:
            raw = json.dumps(json_body).encode()
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = body or b""
        path_only, _, query = path.partition("?")
        module = handler_module_for(path_only)
        assert module, f"no handler for {path}"
        handler = importlib.import_module(module).lambda_handler
        event = self._event(method, path_only, query, hdrs, raw, "req_test", "127.0.0.1")
        result = handler(event, self._context(function_name="test", aws_request_id="req_test"))
        headers_out = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        for k, values in (result.get("multiValueHeaders") or {}).items():
            headers_out[k.lower()] = ", ".join(values)
        return ApiResponse(result["statusCode"], headers_out, result.get("body") or "")

    def chat(self, payload: dict[str, Any], **kw: Any) -> ApiResponse:
        return self.call("POST", "/chat/completions", json_body=payload, **kw)


@pytest.fixture
def api(aws) -> ApiClient:
    return ApiClient()


@pytest.fixture
def use_catalog(tmp_path, monkeypatch):
    """Write a catalog file and point `LLMGW_CATALOG` at it."""

    def _use(providers: list[dict[str, Any]], models: list[dict[str, Any]]) -> str:
        path = tmp_path / "catalog.json"
        path.write_text(json.dumps({"providers": providers, "models": models}))
        monkeypatch.setenv("LLMGW_CATALOG", str(path))
        reset_process_state()
        return str(path)

    return _use


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


__all__ = ["DEV_API_KEY", "DEV_TENANT", "DEV_USER", "user", "ApiClient", "ApiResponse"]
