"""The Anthropic adapter through the real chat handler, against a fake Anthropic Messages API."""

from __future__ import annotations

import base64
import json

import pytest

from llm_gateway.media import samples

from tests.conftest import user
from tests.contract.schema_check import assert_valid
from tests.fakes.anthropic import API_KEY, MODEL, FakeAnthropic
from tests.fakes.script import ERROR_CLASSES, Script

MODEL_ID = f"anthropic::{MODEL}"
WEATHER_TOOL = {"type": "unified", "name": "get_weather", "description": "Current weather for a city",
                "parameters": {"json_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CACHED = Script(text="Paris is sunny today.", input_tokens=2400, cached_tokens=2000, cache_write_tokens=300, output_tokens=42)
# pricing of the fake's catalog entry, per million tokens
EXPECTED_COST = (100 * 3.0 + 2000 * 0.30 + 300 * 3.75 + 42 * 15.0) / 1e6


@pytest.fixture
def fake(use_catalog):
    with FakeAnthropic() as server:
        provider, models = server.catalog()
        use_catalog([provider], models)
        yield server


def with_options(fake: FakeAnthropic, use_catalog, **options) -> None:
    provider, models = fake.catalog(options=options)
    use_catalog([provider], models)


def sse_chunks(body: str) -> tuple[list[dict], list[str]]:
    frames = [f for f in body.split("\n\n") if f]
    chunks = [json.loads(f.removeprefix("data: ")) for f in frames if f.startswith("data: {")]
    return chunks, frames


def streamed_tool_calls(chunks: list[dict]) -> list[dict]:
    calls: dict[int, dict] = {}
    for c in chunks:
        for tc in c["delta"].get("tool_calls") or []:
            slot = calls.setdefault(tc["index"], {"id": None, "name": "", "arguments": ""})
            slot["id"] = tc.get("id") or slot["id"]
            fn = tc.get("function") or {}
            slot["name"] += fn.get("name") or ""
            slot["arguments"] += fn.get("arguments") or ""
    return [{"id": v["id"], "name": v["name"], "arguments": json.loads(v["arguments"])} for _, v in sorted(calls.items())]


# ------------------------------------------------------------------ buffered and streamed


def test_buffered_answer_usage_with_cache_tokens_and_cost(api, fake):
    fake.script(CACHED)
    resp = api.chat({"model": MODEL_ID, "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}, user("Weather in Paris?")]})
    assert resp.status == 200, resp.body
    body = resp.json()
    assert_valid("response", body)
    assert body["content"] == [{"type": "text", "text": "Paris is sunny today."}]
    assert body["finish_reason"] == "stop" and body["model_used"] == MODEL_ID and body["provider"] == "anthropic"
    usage = body["usage"]
    assert (usage["input_tokens"], usage["cached_input_tokens"], usage["cache_write_tokens"], usage["output_tokens"]) == (2400, 2000, 300, 42)
    assert usage["cost_estimate"] == pytest.approx(EXPECTED_COST)
    assert resp.headers["x-llmgw-provider"] == "anthropic"

    sent = fake.requests[-1]
    assert sent.method == "POST" and sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == API_KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"].startswith("application/json") and "authorization" not in sent.headers
    wire = sent.json()
    assert wire == {"model": MODEL, "max_tokens": 4096, "system": "Be brief.",
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}]}
    assert fake.violations == []


def test_streamed_answer_matches_buffered_text_and_usage(api, fake):
    fake.script(CACHED)
    buffered = api.chat({"model": MODEL_ID, "messages": [user("Weather in Paris?")]}).json()
    resp = api.chat({"model": MODEL_ID, "stream": True, "messages": [user("Weather in Paris?")], "max_tokens": 256, "temperature": 0.3})
    assert resp.status == 200, resp.body
    assert resp.headers["content-type"].startswith("text/event-stream")
    chunks, frames = sse_chunks(resp.body)
    assert frames[-1] == "data: [DONE]"
    for chunk in chunks:
        assert_valid("stream_chunk", chunk)
    assert chunks[0]["delta"] == {"role": "assistant"}
    assert len(chunks) > 4  # word by word, not one replayed block
    assert "".join(c["delta"].get("content", "") for c in chunks) == buffered["content"][0]["text"]
    last = chunks[-1]
    assert last["finish_reason"] == "stop"
    assert last["usage"] == buffered["usage"]
    wire = fake.requests[-1].json()
    assert wire["stream"] is True and wire["max_tokens"] == 256 and wire["temperature"] == 0.3
    assert fake.violations == []


def test_length_finish_and_stop_sequences(api, fake):
    fake.script(Script(text="One two", finish="length", output_tokens=2))
    body = api.chat({"model": MODEL_ID, "messages": [user("Count")], "max_tokens": 2, "stop": ["END"]}).json()
    assert body["finish_reason"] == "length"
    assert fake.requests[-1].json()["stop_sequences"] == ["END"]


# ------------------------------------------------------------------ tools


def test_tools_round_trip_buffered(api, fake):
    fake.script(Script(text=None, tool_calls=[{"id": "toolu_01A", "name": "get_weather", "arguments": {"city": "Paris"}}], finish="tool_calls"))
    first = api.chat({"model": MODEL_ID, "messages": [user("Weather in Paris?")], "tools": [WEATHER_TOOL], "tool_choice": "required"})
    assert first.status == 200, first.body
    body = first.json()
    assert_valid("response", body)
    assert body["finish_reason"] == "tool_calls"
    assert body["tool_calls"] == [{"id": "toolu_01A", "name": "get_weather", "arguments": {"city": "Paris"}}]
    wire = fake.requests[-1].json()
    assert wire["tools"] == [{"name": "get_weather", "description": "Current weather for a city",
                              "input_schema": WEATHER_TOOL["parameters"]["json_schema"]}]
    assert wire["tool_choice"] == {"type": "any"}

    fake.script(Script(text="It is 18°C in Paris."))
    second = api.chat({"model": MODEL_ID, "tools": [WEATHER_TOOL], "messages": [
        user("Weather in Paris?"),
        {"role": "assistant", "content": [{"type": "tool_call", "tool_call": body["tool_calls"][0]}]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "toolu_01A", "content": "18C"}}]},
    ]})
    assert second.status == 200, second.body
    assert second.json()["content"][0]["text"] == "It is 18°C in Paris."
    wire = fake.requests[-1].json()
    assert wire["messages"][1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}]}
    assert wire["messages"][2] == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C"}]}
    assert fake.violations == []


def test_streamed_tool_calls_assemble_to_the_buffered_ones(api, fake):
    calls = [{"id": "toolu_01A", "name": "get_weather", "arguments": {"city": "Paris"}},
             {"id": "toolu_01B", "name": "get_weather", "arguments": {"city": "Rome, Lazio, Italia"}}]
    fake.script(Script(text="Checking both.", tool_calls=calls, finish="tool_calls"))
    buffered = api.chat({"model": MODEL_ID, "messages": [user("Paris and Rome?")], "tools": [WEATHER_TOOL]}).json()
    resp = api.chat({"model": MODEL_ID, "stream": True, "messages": [user("Paris and Rome?")], "tools": [WEATHER_TOOL]})
    chunks, _ = sse_chunks(resp.body)
    assert streamed_tool_calls(chunks) == buffered["tool_calls"] == calls
    assert "".join(c["delta"].get("content", "") for c in chunks) == "Checking both."
    assert chunks[-1]["finish_reason"] == "tool_calls" and chunks[-1]["usage"] == buffered["usage"]
    indexes = {tc["index"] for c in chunks for tc in c["delta"].get("tool_calls") or []}
    assert indexes == {0, 1}  # tool ordinals, not Anthropic content-block indexes


# ------------------------------------------------------------------ structured output

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}, "required": ["name", "age"]}


def test_structured_output_native(api, fake):
    fake.script(Script(text='{"name":"Ada","age":36}'))
    resp = api.chat({"model": MODEL_ID, "messages": [user("Ada Lovelace, 36")], "response_schema": {"json_schema": PERSON}})
    assert resp.status == 200, resp.body
    body = resp.json()
    assert json.loads(body["content"][0]["text"]) == {"name": "Ada", "age": 36}
    if "parsed" in body:
        assert body["parsed"] == {"name": "Ada", "age": 36}
    wire = fake.requests[-1].json()
    assert wire["output_config"]["format"]["type"] == "json_schema"
    assert wire["output_config"]["format"]["schema"]["additionalProperties"] is False
    assert "tools" not in wire and fake.violations == []


def test_structured_output_forced_tool_buffered_and_streamed(api, fake, use_catalog):
    with_options(fake, use_catalog, structured_output="tool")
    fake.script(Script(text='{"name": "Ada", "age": 36}', finish="tool_calls"))
    payload = {"model": MODEL_ID, "messages": [user("Ada Lovelace, 36")], "response_schema": {"json_schema": PERSON}}
    body = api.chat(payload).json()
    assert body["content"] == [{"type": "text", "text": '{"name":"Ada","age":36}'}]
    assert body["finish_reason"] == "stop" and "tool_calls" not in body
    wire = fake.requests[-1].json()
    assert wire["tool_choice"] == {"type": "tool", "name": "json_response"} and "output_config" not in wire
    chunks, _ = sse_chunks(api.chat({**payload, "stream": True}).body)
    assert "".join(c["delta"].get("content", "") for c in chunks) == '{"name":"Ada","age":36}'
    assert chunks[-1]["finish_reason"] == "stop"
    assert fake.violations == []


# ------------------------------------------------------------------ errors

EXPECTED = {
    "auth": (502, "provider_error", "invalid x-api-key"),
    "rate_limit": (429, "rate_limited", "rate limit"),
    "server": (502, "provider_error", "Internal server error"),
    "overloaded": (502, "provider_error", "Overloaded"),
    "context_length": (400, "validation_error", "prompt is too long"),
    "bad_request": (502, "provider_error", "Field required"),
}


@pytest.mark.parametrize("kind", ERROR_CLASSES)
@pytest.mark.parametrize("stream", [False, True])
def test_each_error_class(api, fake, kind, stream):
    fake.script(Script(error=kind, retry_after=7))
    resp = api.chat({"model": MODEL_ID, "stream": stream, "messages": [user("hi")]})
    status, code, text = EXPECTED[kind]
    assert resp.status == status, resp.body
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["code"] == code and body["provider"] == "anthropic" and text in body["detail"]
    assert API_KEY not in resp.body
    if kind == "rate_limit":
        assert resp.headers["retry-after"] == "7" and body["retry_after_s"] == 7


def test_overloaded_529_carries_retry_after(api, fake):
    fake.script(Script(error="overloaded", retry_after=3))
    resp = api.chat({"model": MODEL_ID, "messages": [user("hi")]})
    body = resp.json()
    assert (resp.status, body["code"]) == (502, "provider_error")
    assert "529" in body["detail"] and "Overloaded" in body["detail"]
    assert body["retry_after_s"] == 3 and resp.headers["retry-after"] == "3"


def test_mid_stream_error_event_ends_the_stream_with_a_problem(api, fake):
    fake.script(Script(text="one two three four five six"), stream_error="overloaded", stream_error_after=3)
    resp = api.chat({"model": MODEL_ID, "stream": True, "messages": [user("count")]})
    assert resp.status == 200
    chunks, frames = sse_chunks(resp.body)
    assert "".join(c["delta"].get("content", "") for c in chunks) == "one two three "
    assert frames[-1].startswith("event: error\n")
    problem = json.loads(frames[-1].split("data: ", 1)[1])
    assert problem["code"] == "provider_error" and problem["provider"] == "anthropic"
    assert "overloaded_error" in problem["detail"] and "mid-stream" in problem["detail"]
    assert "data: [DONE]" not in frames


def test_wrong_key_is_rejected_by_the_fake_and_not_leaked(api, fake, monkeypatch, use_catalog):
    provider, models = fake.catalog()
    monkeypatch.setenv("WRONG_ANTHROPIC_KEY", "sk-ant-api03-wrong-wrong-wrong-123")
    use_catalog([{**provider, "credential": {"env": "WRONG_ANTHROPIC_KEY"}}], models)
    resp = api.chat({"model": MODEL_ID, "messages": [user("hi")]})
    assert (resp.status, resp.json()["code"]) == (502, "provider_error")
    assert "rejected the gateway's credentials" in resp.json()["detail"]
    assert "wrong-wrong" not in resp.body


def test_temperature_out_of_range_fails_before_any_call(api, fake):
    resp = api.chat({"model": MODEL_ID, "messages": [user("hi")], "temperature": 1.7})
    assert (resp.status, resp.json()["code"]) == (400, "validation_error")
    assert fake.requests == []


def test_audio_is_refused_before_any_call(api, fake, use_catalog):
    provider, models = fake.catalog(["chat", "audio_in"])
    use_catalog([provider], models)
    wav = "data:audio/wav;base64," + base64.b64encode(samples.wav(0.05)).decode()
    resp = api.chat({"model": MODEL_ID, "messages": [{"role": "user", "content": [{"type": "audio", "url": wav}]}]})
    assert (resp.status, resp.json()["code"]) == (422, "capability_not_supported")
    assert fake.requests == []


def test_inline_image_and_pdf_become_base64_sources(api, fake):
    png, pdf = samples.png(8, 8), samples.pdf("Quarterly report")
    fake.script(Script(text="A tiny image and a report."))
    resp = api.chat({"model": MODEL_ID, "messages": [{"role": "user", "content": [
        {"type": "image", "url": "data:image/png;base64," + base64.b64encode(png).decode()},
        {"type": "document", "url": "data:application/pdf;base64," + base64.b64encode(pdf).decode()},
        {"type": "text", "text": "Describe both."},
    ]}]})
    assert resp.status == 200, resp.body
    blocks = fake.requests[-1].json()["messages"][0]["content"]
    assert blocks[0] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png).decode()}}
    assert blocks[1] == {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(pdf).decode()}}
    assert blocks[2] == {"type": "text", "text": "Describe both."}
    assert fake.violations == []
