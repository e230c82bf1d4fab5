"""Fixtures for the conformance suite: one in-process AWS for the module, one started fake per
provider, and a `Gateway` that points the real chat handler at a fake and normalizes its answers
(buffered JSON or SSE) into one comparable shape."""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conformance.scenarios import ALL_CAPABILITIES, PRICING
from tests.contract.schema_check import assert_valid
from tests.fakes.registry import FAKE_PROVIDERS


def load_fake(name: str) -> type:
    module, _, cls = FAKE_PROVIDERS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def fake_classes() -> dict[str, type | Exception]:
    """Registered fakes; one that fails to import is reported by its own tests, not at collection."""
    out: dict[str, type | Exception] = {}
    for name in FAKE_PROVIDERS:
        try:
            out[name] = load_fake(name)
        except Exception as exc:  # noqa: BLE001 - surfaced as a test failure
            out[name] = exc
    return out


# ---------------------------------------------------------------- normalized answers


@dataclass
class Result:
    status: int
    headers: dict[str, str]
    raw: str
    body: Any = None  # buffered JSON body (answer or problem)
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish: str | None = None
    usage: dict[str, Any] | None = None
    parsed: Any = None
    chunks: list[dict[str, Any]] = field(default_factory=list)
    error_event: dict[str, Any] | None = None
    done: bool = False

    def normalized(self) -> dict[str, Any]:
        """What must be identical between a streamed and a buffered answer."""
        return {"text": self.text, "tool_calls": [{"name": t["name"], "arguments": t["arguments"]} for t in self.tool_calls],
                "finish": self.finish, "usage": self.usage}


def parse_buffered(resp: Any) -> Result:
    res = Result(resp.status, resp.headers, resp.body)
    res.body = json.loads(resp.body) if resp.body else None
    if resp.status != 200:
        return res
    assert_valid("response", res.body)
    content = res.body.get("content") or []
    res.text = "".join(p["text"] for p in content if p.get("type") == "text")
    res.tool_calls = [dict(t) for t in res.body.get("tool_calls") or []]
    res.finish = res.body.get("finish_reason")
    res.usage = res.body.get("usage")
    res.parsed = res.body.get("parsed")
    return res


def parse_stream(resp: Any) -> Result:
    res = Result(resp.status, resp.headers, resp.body)
    if resp.status != 200:
        res.body = json.loads(resp.body) if resp.body else None
        return res
    assert resp.headers.get("content-type", "").startswith("text/event-stream"), resp.headers
    calls: dict[int, dict[str, Any]] = {}
    args: dict[int, list[str]] = {}
    for frame in resp.body.split("\n\n"):
        if not frame.strip():
            continue
        lines = frame.split("\n")
        if lines[0] == "event: error":
            res.error_event = json.loads(lines[1].removeprefix("data: "))
            continue
        assert not res.done, f"data after [DONE]: {frame!r}"
        assert res.error_event is None, f"data after an error event: {frame!r}"
        data = frame.removeprefix("data: ")
        if data == "[DONE]":
            res.done = True
            continue
        chunk = json.loads(data)
        assert_valid("stream_chunk", chunk)
        res.chunks.append(chunk)
        delta = chunk["delta"]
        res.text += delta.get("content") or ""
        for tc in delta.get("tool_calls") or ():
            slot = calls.setdefault(tc["index"], {"id": None, "name": ""})
            if tc.get("id"):
                assert slot["id"] in (None, tc["id"]), "a tool call's id changed mid-stream"
                slot["id"] = tc["id"]
            fn = tc.get("function") or {}
            if fn.get("name"):
                slot["name"] += fn["name"]
            args.setdefault(tc["index"], []).append(fn.get("arguments") or "")
        if chunk.get("finish_reason"):
            res.finish = chunk["finish_reason"]
        if chunk.get("usage"):
            res.usage = chunk["usage"]
    for index in sorted(calls):
        joined = "".join(args.get(index, []))
        res.tool_calls.append({**calls[index], "arguments": json.loads(joined) if joined else {}})
    return res


# ---------------------------------------------------------------- the gateway under test


class Gateway:
    """The real chat handler (as API Gateway calls it) with a catalog pointing at one fake."""

    def __init__(self, fake: Any, use_catalog: Any) -> None:
        from tests.conftest import ApiClient

        self.fake = fake
        self._use_catalog = use_catalog
        self.api = ApiClient()
        self.model_id = ""
        self.provider_id = ""
        self.secrets: list[str] = []

    def configure(self, caps: list[str] | None = None) -> "Gateway":
        provider, models = self.fake.catalog(list(caps or ALL_CAPABILITIES))
        model = {**models[0], "pricing": dict(PRICING)}
        self._use_catalog([provider], [model])
        self.model_id = model["id"]
        self.provider_id = getattr(self.fake, "provider_id", None) or provider["id"]
        cred = provider.get("credential") or {}
        self.secrets = [os.environ[cred["env"]]] if cred.get("env") and os.environ.get(cred["env"]) else []
        if hasattr(self.fake, "violations"):
            self.fake.violations.clear()
        return self

    def chat(self, body: dict[str, Any]) -> Result:
        resp = self.api.chat({"model": self.model_id, **body})
        return parse_stream(resp) if body.get("stream") else parse_buffered(resp)


def expected_cost(usage: dict[str, Any]) -> float:
    from llm_gateway.registry.catalog import cost_of

    ns = SimpleNamespace(input_tokens=usage.get("input_tokens", 0), output_tokens=usage.get("output_tokens", 0),
                         cached_input_tokens=usage.get("cached_input_tokens", 0),
                         cache_write_tokens=usage.get("cache_write_tokens", 0))
    return cost_of(PRICING, ns)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def conformance_aws():
    """One in-process AWS (tables, bucket, dev key) for the whole module: the suite makes hundreds
    of calls, and per-test provisioning would dominate its run time."""
    from moto import mock_aws

    from tests.conftest import reset_process_state

    with mock_aws():
        reset_process_state()
        from llm_gateway.local.aws import provision_and_seed

        provision_and_seed()
        yield
    reset_process_state()


@pytest.fixture(scope="session")
def fakes():
    started: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in started:
            started[name] = load_fake(name)().start()
        return started[name]

    yield get
    for server in started.values():
        server.stop()


def light_reset() -> None:
    """`tests.conftest.reset_process_state` minus the boto3 clients: they keep talking to the same
    module-wide moto, and re-creating them (≈0.2–0.5 s each) would dominate every cell."""
    from llm_gateway.config import reset_settings
    from llm_gateway.outbound import credentials
    from llm_gateway.outbound.client import set_outbound
    from llm_gateway.providers import reset_adapters
    from llm_gateway.registry import catalog
    from llm_gateway.service.chat import reset_chat_service

    reset_settings()
    reset_adapters()
    reset_chat_service()
    credentials.clear_cache()
    set_outbound(None)  # fresh pool and circuit breakers: an error cell must not open the next cell's breaker
    catalog._CATALOG = None
    try:
        from llm_gateway import resets

        resets.reset_all()
    except ImportError:
        pass


@pytest.fixture
def conformance_catalog(tmp_path, monkeypatch):
    """Like `tests.conftest.use_catalog`, with `light_reset`."""

    def use(providers: list[dict[str, Any]], models: list[dict[str, Any]]) -> str:
        path = tmp_path / "catalog.json"
        path.write_text(json.dumps({"providers": providers, "models": models}))
        monkeypatch.setenv("LLMGW_CATALOG", str(path))
        light_reset()
        return str(path)

    return use


@pytest.fixture
def gateway(conformance_aws, fakes, conformance_catalog):
    """`gateway(provider_name, caps=None)` -> a configured `Gateway`."""

    def make(name: str, caps: list[str] | None = None) -> Gateway:
        return Gateway(fakes(name), conformance_catalog).configure(caps)

    return make
