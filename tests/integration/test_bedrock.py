"""Bedrock end to end: the chat Lambda handler -> pipeline -> Bedrock adapter -> boto3 ->
a local fake Bedrock Runtime endpoint (tests/fakes/bedrock.py) speaking Converse JSON and the
binary event-stream encoding.

About moto: the `api` fixture runs inside `moto.mock_aws()`, which installs a botocore
`before-send` hook on every client, and moto *does* mock `bedrock-runtime` (its
`bedrockruntime` backend answers `https://bedrock-runtime.<region>.amazonaws.com/...`; it has
InvokeModel only). moto's hook matches requests by URL: a request whose URL matches no AWS
service pattern (and no `*.amazonaws.com` host) is passed through untouched to the real
network. The catalog entry points the adapter's client at the fake's `http://127.0.0.1:<port>`
(`base_url` -> `endpoint_url`), so moto lets it through, and every test asserts the fake really
saw the call. The request is still SigV4-signed with the credentials of the normal AWS chain
(here the test environment's), which the fake checks. Without a `base_url` under `mock_aws`,
Converse would be answered by moto, not by a fake — that is why these tests always set it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import user
from tests.contract.schema_check import assert_valid
from tests.fakes.bedrock import MODEL_ID, FakeBedrock
from tests.fakes.script import Script

MODEL = f"bedrock::{MODEL_ID}"
CAPS = ["chat", "stream", "tools", "structured_output", "vision", "documents"]

WEATHER_TOOL = {
    "type": "unified", "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"json_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
}


@pytest.fixture
def fake(api, use_catalog):
    server = FakeBedrock().start()
    provider, models = server.catalog(CAPS)
    use_catalog([provider], models)
    yield server
    server.stop()


@pytest.fixture
def bare_fake():
    """The fake alone, for tests that drive the adapter directly (no handler, no moto)."""
    server = FakeBedrock().start()
    yield server
    server.stop()


def sse_events(body: str) -> list[tuple[str | None, Any]]:
    """(event name, data) for each SSE frame; data is JSON or the raw string."""
    out: list[tuple[str | None, Any]] = []
    for frame in body.split("\n\n"):
        if not frame.strip():
            continue
        name, data = None, []
        for line in frame.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        raw = "\n".join(data)
        out.append((name, raw if raw == "[DONE]" else json.loads(raw)))
    return out


def test_buffered_chat_reaches_the_fake_signed_and_translated(api, fake):
    fake.script(Script(text="Bonjour !", input_tokens=1500, output_tokens=9, cached_tokens=1200, cache_write_tokens=100))
    resp = api.chat({"model": MODEL, "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Answer in French."}]}, user("Hello")],
        "max_tokens": 100, "temperature": 0.3, "stop": ["END"]})
    assert resp.status == 200, resp.body
    body = resp.json()
    assert_valid("response", body)
    assert body["content"] == [{"type": "text", "text": "Bonjour !"}]
    assert body["finish_reason"] == "stop" and body["model_used"] == MODEL and body["provider"] == "bedrock"
    usage = body["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["cached_input_tokens"], usage["cache_write_tokens"]) == (1500, 9, 1200, 100)
    assert usage["cost_estimate"] == pytest.approx((200 * 0.80 + 1200 * 0.08 + 100 * 1.00 + 9 * 4.00) / 1e6)

    (req,) = fake.calls  # moto did not intercept: the fake got exactly one call
    assert req.path == "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    assert req.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert "/us-east-1/bedrock/aws4_request" in req.headers["authorization"]
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {
        "system": [{"text": "Answer in French."}],
        "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.3, "stopSequences": ["END"]},
    }


def test_streamed_chat_matches_buffered_text_and_usage(api, fake):
    fake.script(Script(text="One two three four.", input_tokens=40, output_tokens=5, cached_tokens=10))
    buffered = api.chat({"model": MODEL, "messages": [user("count")]}).json()
    resp = api.chat({"model": MODEL, "stream": True, "messages": [user("count")]})
    assert resp.status == 200, resp.body
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.body)
    assert events[-1] == (None, "[DONE]")
    chunks = [data for _, data in events[:-1]]
    for chunk in chunks:
        assert_valid("stream_chunk", chunk)
    assert chunks[0]["delta"] == {"role": "assistant"}
    streamed_text = "".join(c["delta"].get("content", "") for c in chunks)
    assert streamed_text == buffered["content"][0]["text"] == "One two three four."
    assert len([c for c in chunks if c["delta"].get("content")]) == 4  # really incremental
    last = chunks[-1]
    assert last["finish_reason"] == "stop"
    assert last["usage"] == buffered["usage"]
    assert fake.calls[-1].path.endswith("/converse-stream")


def test_tools_round_trip_buffered_and_streamed(api, fake):
    call = {"id": "tooluse_Wx01", "name": "get_weather", "arguments": {"city": "Paris"}}
    fake.script(Script(text=None, tool_calls=[call], finish="tool_calls"))
    first = api.chat({"model": MODEL, "messages": [user("Weather in Paris?")], "tools": [WEATHER_TOOL], "tool_choice": "required"})
    assert first.status == 200, first.body
    body = first.json()
    assert body["finish_reason"] == "tool_calls" and body["tool_calls"] == [call] and body["content"] == []
    sent = fake.last_body()
    assert sent["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "Current weather for a city",
                                "inputSchema": {"json": WEATHER_TOOL["parameters"]["json_schema"]}}}],
        "toolChoice": {"any": {}},
    }

    # the same turn streamed: fragments reassemble to the same arguments
    resp = api.chat({"model": MODEL, "stream": True, "messages": [user("Weather in Paris?")], "tools": [WEATHER_TOOL]})
    chunks = [d for _, d in sse_events(resp.body)[:-1]]
    tcs = [tc for c in chunks for tc in c["delta"].get("tool_calls") or ()]
    assert tcs[0] == {"index": 0, "id": "tooluse_Wx01", "function": {"name": "get_weather", "arguments": ""}}
    assert json.loads("".join(tc["function"].get("arguments") or "" for tc in tcs)) == {"city": "Paris"}
    assert chunks[-1]["finish_reason"] == "tool_calls"

    # second turn: the assistant's tool call and the tool's result go back as toolUse / toolResult
    fake.script(Script(text="It is 18°C in Paris."))
    second = api.chat({"model": MODEL, "tools": [WEATHER_TOOL], "messages": [
        user("Weather in Paris?"),
        {"role": "assistant", "content": [{"type": "tool_call", "tool_call": call}]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "tooluse_Wx01", "content": "18C, sunny"}}]},
    ]})
    assert second.status == 200, second.body
    assert second.json()["content"] == [{"type": "text", "text": "It is 18°C in Paris."}]
    assert fake.last_body()["messages"] == [
        {"role": "user", "content": [{"text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_Wx01", "name": "get_weather", "input": {"city": "Paris"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_Wx01", "content": [{"text": "18C, sunny"}]}}]},
    ]


def test_structured_output_uses_a_forced_tool_and_returns_json_text(api, fake):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    fake.script(Script(text='{"name": "Ada", "age": 36}'))
    payload = {"model": MODEL, "messages": [user("Ada Lovelace, 36")], "response_schema": {"json_schema": schema}}
    resp = api.chat(payload)
    assert resp.status == 200, resp.body
    body = resp.json()
    assert body["content"] == [{"type": "text", "text": '{"name":"Ada","age":36}'}]
    assert body["finish_reason"] == "stop" and not body.get("tool_calls")
    if "parsed" in body:  # the pipeline's structured-output validation
        assert body["parsed"] == {"name": "Ada", "age": 36}
    sent = fake.last_body()["toolConfig"]
    assert sent["toolChoice"] == {"tool": {"name": "json_answer"}}
    assert sent["tools"][0]["toolSpec"]["inputSchema"]["json"] == schema

    streamed = api.chat({**payload, "stream": True})
    chunks = [d for _, d in sse_events(streamed.body)[:-1]]
    assert "".join(c["delta"].get("content", "") for c in chunks) == body["content"][0]["text"]
    assert chunks[-1]["finish_reason"] == "stop" and chunks[-1]["usage"] == {k: v for k, v in body["usage"].items()}


def test_throttling_is_rate_limited_with_retry_after(api, fake):
    fake.script(Script(error="rate_limit", retry_after=7))
    resp = api.chat({"model": MODEL, "messages": [user("hi")]})
    assert resp.status == 429, resp.body
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["retry-after"] == "7"
    problem = resp.json()
    assert problem["code"] == "rate_limited" and problem["provider"] == "bedrock" and problem["retry_after_s"] == 7
    assert "ThrottlingException" in problem["detail"] and "Too many requests" in problem["detail"]
    # without the header the client still gets a hint
    fake.script(Script(error="rate_limit"))
    resp = api.chat({"model": MODEL, "stream": True, "messages": [user("hi")]})
    assert resp.status == 429 and resp.headers["retry-after"] == "1"


@pytest.mark.parametrize("error,status,code", [
    ("auth", 502, "provider_error"), ("server", 502, "provider_error"), ("overloaded", 502, "provider_error"),
    ("context_length", 400, "validation_error"),
])
def test_error_classes(api, fake, error, status, code):
    fake.script(Script(error=error))
    resp = api.chat({"model": MODEL, "messages": [user("hi")]})
    assert resp.status == status, resp.body
    problem = resp.json()
    assert problem["code"] == code and problem["provider"] == "bedrock"
    assert "testing" not in problem["detail"]  # never the credentials


def test_mid_stream_exception_event_ends_the_stream_with_an_error_event(api, fake):
    fake.script(Script(text="Partial answer that breaks"))
    fake.stream_exception = ("modelStreamErrorException", "The model stopped unexpectedly.", 3)  # after 2 text deltas
    resp = api.chat({"model": MODEL, "stream": True, "messages": [user("hi")]})
    assert resp.status == 200, resp.body
    events = sse_events(resp.body)
    texts = [d["delta"].get("content") for name, d in events if name is None and isinstance(d, dict) and d["delta"].get("content")]
    assert texts == ["Partial ", "answer "]
    name, problem = events[-1]
    assert name == "error" and (None, "[DONE]") not in events
    assert problem["code"] == "provider_error" and "modelStreamErrorException" in problem["detail"]
    assert "The model stopped unexpectedly." in problem["detail"]

    fake.stream_exception = ("throttlingException", "Slow down.", 2)
    events = sse_events(api.chat({"model": MODEL, "stream": True, "messages": [user("hi")]}).body)
    assert events[-1][0] == "error" and events[-1][1]["code"] == "rate_limited"


def _timeout_problem(resp) -> dict:
    """The problem of a timed-out stream: a 504 before any content, else the `event: error`."""
    if resp.status != 200:
        assert resp.status == 504, resp.body
        return resp.json()
    events = sse_events(resp.body)
    assert events[-1][0] == "error", resp.body
    return events[-1][1]


@pytest.mark.parametrize("stall_after,timeout,bound_s", [
    (1, {"ttft_ms": 400, "total_ms": 20000}, 8.0),  # messageStart only: no token within the TTFT budget
    (3, {"ttft_ms": 20000, "total_ms": 1500}, 8.0),  # tokens flowed, then silence: the total budget ends it
])
def test_stalled_stream_times_out_on_its_budget(api, fake, stall_after, timeout, bound_s):
    import time

    fake.script(Script(text="a b c d e f", stall_after_chunks=stall_after))
    started = time.monotonic()
    resp = api.chat({"model": MODEL, "stream": True, "messages": [user("hi")], "timeout": timeout})
    elapsed = time.monotonic() - started
    problem = _timeout_problem(resp)
    assert problem["code"] == "provider_timeout" and problem["provider"] == "bedrock", problem
    assert problem.get("timeout") == ("ttft" if "ttft_ms" in timeout and timeout["ttft_ms"] < 1000 else "total"), problem
    assert elapsed < bound_s, elapsed  # the fake stalls for 30 s: only the budget can end it this early


def test_cut_connection_mid_stream_is_a_provider_error(api, fake):
    fake.script(Script(text="a b c d e f", cut_after_chunks=3))
    resp = api.chat({"model": MODEL, "stream": True, "messages": [user("hi")]})
    events = sse_events(resp.body)
    assert events[-1][0] == "error", resp.body
    assert events[-1][1]["code"] == "provider_error"


def test_unreachable_endpoint_is_a_provider_error(api, use_catalog):
    server = FakeBedrock().start()
    provider, models = server.catalog(CAPS)
    server.stop()  # nothing listens there any more
    use_catalog([provider], models)
    resp = api.chat({"model": MODEL, "messages": [user("hi")]})
    assert resp.status == 502, resp.body
    assert resp.json()["code"] == "provider_error" and "EndpointConnectionError" in resp.json()["detail"]


class _RecordingBreakers:
    """Stands in for the outbound client's breakers: records what the adapter reports."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[str, str]] = []

    def acquire(self, provider_id: str, url: str):
        outcomes = self.outcomes

        class Permit:
            def success(self) -> None:
                outcomes.append((url, "success"))

            def failure(self) -> None:
                outcomes.append((url, "failure"))

            def neutral(self) -> None:
                outcomes.append((url, "neutral"))

        return Permit()


def _direct_adapter(fake: FakeBedrock):
    """The adapter on its own (no handler), with breakers it reports to."""
    from types import SimpleNamespace

    from llm_gateway.api.models import ChatRequest
    from llm_gateway.providers.base import Deadline, ProviderCall
    from llm_gateway.providers.bedrock import BedrockAdapter
    from llm_gateway.registry.catalog import Catalog

    provider, models = fake.catalog(CAPS)
    model = Catalog({"providers": [provider], "models": models}).lookup(MODEL)
    breakers = _RecordingBreakers()
    adapter = BedrockAdapter(model.provider, SimpleNamespace(breakers=breakers))

    def call() -> ProviderCall:
        return ProviderCall(request=ChatRequest.model_validate({"model": MODEL, "messages": [user("hi")]}), model=model,
                            deadline=Deadline(ttft_s=5, total_s=10))

    return adapter, call, breakers


@pytest.mark.parametrize("script,outcome", [
    (Script(), "success"),
    (Script(error="rate_limit"), "neutral"),  # a quota signal, not an outage
    (Script(error="server"), "failure"),
    (Script(error="overloaded"), "failure"),
    (Script(error="context_length"), "success"),  # the upstream answered; the request was the problem
    (Script(error="auth"), "success"),
    (Script(cut_after_chunks=3), "failure"),  # streamed only
])
def test_every_call_reports_to_the_upstream_circuit_breaker(bare_fake, script, outcome):
    """botocore bypasses the outbound client, so the adapter asks the breaker itself."""
    from llm_gateway.api.errors import GatewayError

    adapter, call, breakers = _direct_adapter(bare_fake)
    bare_fake.script(script)
    modes = ("stream",) if script.cut_after_chunks else ("chat", "stream")
    for mode in modes:
        breakers.outcomes.clear()
        try:
            result = adapter.chat(call()) if mode == "chat" else list(adapter.stream(call()))
            assert result
        except GatewayError:
            pass
        assert breakers.outcomes == [(bare_fake.url, outcome)], mode


def test_the_watchdog_abort_wakes_a_blocked_stream_read(bare_fake):
    """A `CallControl` bound by the invoker can abort the stream by shutting its socket down."""
    control_mod = pytest.importorskip("llm_gateway.outbound.control")
    import threading
    import time

    from llm_gateway.api.errors import GatewayError

    adapter, call, breakers = _direct_adapter(bare_fake)
    bare_fake.script(Script(text="a b c d", stall_after_chunks=3))
    control = control_mod.CallControl(ttft_s=30, total_s=30, provider_id="bedrock", model_id=MODEL)
    token = control_mod.bind(control)
    try:
        deltas = adapter.stream(call())
        assert next(deltas).text == "a "
        threading.Timer(0.3, lambda: control.abort(control_mod.CANCELLED)).start()
        started = time.monotonic()
        with pytest.raises(GatewayError) as e:
            list(deltas)
        assert time.monotonic() - started < 3
    finally:
        control_mod.unbind(token)
    assert e.value.extra.get("cancelled") is True
    assert breakers.outcomes == [(bare_fake.url, "neutral")]
