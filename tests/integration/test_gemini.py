"""The Gemini adapter through the real chat handler, against the fake Gemini API (tests/fakes/gemini.py)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import user
from tests.contract.schema_check import assert_valid
from tests.fakes.gemini import API_KEY, MODEL, FakeGemini
from tests.fakes.script import Script

MODEL_ID = f"gemini::{MODEL}"
WEATHER = {"type": "unified", "name": "get_weather", "description": "Current weather for a city",
           "parameters": {"json_schema": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                                          "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                                          "required": ["city"], "additionalProperties": False}}}


@pytest.fixture
def gemini(use_catalog):
    with FakeGemini() as fake:
        provider, models = fake.catalog()
        use_catalog([provider], models)
        yield fake


def _frames(body: str) -> list[dict]:
    frames = [f for f in body.split("\n\n") if f]
    assert frames[-1] == "data: [DONE]", frames[-1]
    chunks = [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]
    for chunk in chunks:
        assert_valid("stream_chunk", chunk)
    return chunks


def test_buffered_text_usage_cost_and_wire_request(api, gemini):
    gemini.script(Script(text="Hello from Gemini.", input_tokens=120, output_tokens=30, cached_tokens=100, reasoning_tokens=18))
    resp = api.chat({"model": MODEL_ID, "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}, user("hi")],
        "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "stop": ["END"], "seed": 7})
    assert resp.status == 200, resp.body
    body = resp.json()
    assert_valid("response", body)
    assert body["content"] == [{"type": "text", "text": "Hello from Gemini."}]
    assert body["finish_reason"] == "stop" and body["provider"] == "gemini" and body["model_used"] == MODEL_ID
    usage = body["usage"]
    assert (usage["input_tokens"], usage["cached_input_tokens"], usage["output_tokens"], usage["reasoning_tokens"]) == (120, 100, 30, 18)
    assert usage["cost_estimate"] == pytest.approx((20 * 0.30 + 100 * 0.075 + 30 * 2.50) / 1e6)
    assert gemini.violations == []
    sent = gemini.requests[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent" and sent.query == ""
    assert sent.headers["x-goog-api-key"] == API_KEY and "authorization" not in sent.headers
    wire = sent.json()
    assert wire["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert wire["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert wire["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.2, "topP": 0.9, "seed": 7, "stopSequences": ["END"]}


def test_streamed_answer_matches_buffered(api, gemini):
    script = Script(text="one two three four", input_tokens=9, output_tokens=12, reasoning_tokens=5)
    gemini.script(script)
    buffered = api.chat({"model": MODEL_ID, "messages": [user("count")]}).json()
    resp = api.chat({"model": MODEL_ID, "stream": True, "messages": [user("count")]})
    assert resp.status == 200, resp.body
    assert resp.headers["content-type"].startswith("text/event-stream")
    chunks = _frames(resp.body)
    assert len(chunks) >= 5  # role, four text pieces, final
    assert "".join(c["delta"].get("content", "") for c in chunks) == buffered["content"][0]["text"] == "one two three four"
    last = chunks[-1]
    assert last["finish_reason"] == "stop"
    assert {k: last["usage"][k] for k in ("input_tokens", "output_tokens", "reasoning_tokens")} == \
           {k: buffered["usage"][k] for k in ("input_tokens", "output_tokens", "reasoning_tokens")} == \
           {"input_tokens": 9, "output_tokens": 12, "reasoning_tokens": 5}
    sent = gemini.requests[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:streamGenerateContent" and sent.query == "alt=sse"
    assert gemini.violations == []


def test_tools_round_trip(api, gemini):
    gemini.script(Script(text=None, tool_calls=[{"id": "call_w1", "name": "get_weather", "arguments": {"city": "Paris"}}],
                         finish="tool_calls"))
    first = api.chat({"model": MODEL_ID, "messages": [user("weather in Paris?")], "tools": [WEATHER],
                      "tool_choice": {"type": "tool", "name": "get_weather"}})
    assert first.status == 200, first.body
    answer = first.json()
    assert answer["finish_reason"] == "tool_calls"
    assert answer["tool_calls"] == [{"id": "call_w1", "name": "get_weather", "arguments": {"city": "Paris"}}]
    wire = gemini.requests[-1].json()
    decl = wire["tools"][0]["functionDeclarations"][0]
    assert decl == {"name": "get_weather", "description": "Current weather for a city", "parameters": {
        "type": "OBJECT", "properties": {"city": {"type": "STRING"}, "unit": {"type": "STRING", "enum": ["c", "f"]}},
        "propertyOrdering": ["city", "unit"], "required": ["city"]}}
    assert wire["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}

    gemini.script(Script(text="It is 18°C in Paris.", input_tokens=40, output_tokens=9))
    second = api.chat({"model": MODEL_ID, "tools": [WEATHER], "messages": [
        user("weather in Paris?"),
        {"role": "assistant", "content": [{"type": "tool_call", "tool_call": answer["tool_calls"][0]}]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "call_w1", "content": '{"temp_c": 18}'}}]},
    ]})
    assert second.status == 200, second.body
    assert second.json()["content"][0]["text"] == "It is 18°C in Paris."
    contents = gemini.requests[-1].json()["contents"]
    assert contents[1] == {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]}
    assert contents[2] == {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}}]}
    assert gemini.violations == []


def test_streamed_tool_call_carries_id_name_and_whole_arguments(api, gemini):
    gemini.send_call_ids = False
    gemini.thought_signature = "c2lnbmF0dXJlLWJ5dGVz"
    gemini.script(Script(text=None, tool_calls=[{"id": "x", "name": "get_weather", "arguments": {"city": "Oslo"}}], finish="tool_calls"))
    resp = api.chat({"model": MODEL_ID, "stream": True, "messages": [user("weather?")], "tools": [WEATHER]})
    chunks = _frames(resp.body)
    calls = [tc for c in chunks for tc in c["delta"].get("tool_calls", [])]
    assert len(calls) == 1
    call = calls[0]
    assert call["index"] == 0 and call["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert call["id"].startswith("call_") and call["id"].endswith("~sig~c2lnbmF0dXJlLWJ5dGVz")
    assert chunks[-1]["finish_reason"] == "tool_calls"

    # the signature rides back to Gemini on the functionCall part
    gemini.script(Script(text="Cold."))
    follow = api.chat({"model": MODEL_ID, "tools": [WEATHER], "messages": [
        user("weather?"),
        {"role": "assistant", "content": [{"type": "tool_call", "tool_call": {"id": call["id"], "name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": call["id"], "content": "-3C"}}]},
    ]})
    assert follow.status == 200, follow.body
    contents = gemini.requests[-1].json()["contents"]
    assert contents[1]["parts"][0]["thoughtSignature"] == "c2lnbmF0dXJlLWJ5dGVz"
    assert contents[2]["parts"][0]["functionResponse"] == {"name": "get_weather", "response": {"result": "-3C"}}


def test_structured_output(api, gemini):
    gemini.script(Script(text='{"name":"Ada","age":36}'))
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
              "required": ["name", "age"], "additionalProperties": False}
    resp = api.chat({"model": MODEL_ID, "messages": [user("who?")], "response_schema": {"json_schema": schema}})
    assert resp.status == 200, resp.body
    assert json.loads(resp.json()["content"][0]["text"]) == {"name": "Ada", "age": 36}
    gc = gemini.requests[-1].json()["generationConfig"]
    assert gc["responseMimeType"] == "application/json"
    assert gc["responseSchema"] == {"type": "OBJECT", "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER", "minimum": 0}},
                                    "propertyOrdering": ["name", "age"], "required": ["name", "age"]}
    assert gemini.violations == []


def test_structured_output_native_json_schema_mode(api, gemini, use_catalog):
    provider, models = gemini.catalog(options={"schema_mode": "json_schema"})
    use_catalog([provider], models)
    gemini.script(Script(text='{"ok":true}'))
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "additionalProperties": False}
    resp = api.chat({"model": MODEL_ID, "messages": [user("ok?")], "response_schema": {"json_schema": schema}})
    assert resp.status == 200, resp.body
    gc = gemini.requests[-1].json()["generationConfig"]
    assert gc == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_unexpressible_schema_is_a_validation_error_before_any_call(api, gemini):
    schema = {"type": "object", "properties": {"anything": {}}}
    resp = api.chat({"model": MODEL_ID, "messages": [user("x")], "response_schema": {"json_schema": schema}})
    assert resp.status == 400, resp.body
    body = resp.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["path"] == "response_schema.json_schema.properties.anything"
    assert gemini.requests == []


def test_resource_exhausted_carries_retry_after(api, gemini):
    gemini.script(Script(error="rate_limit", retry_after=7))
    resp = api.chat({"model": MODEL_ID, "messages": [user("hi")]})
    assert resp.status == 429
    body = resp.json()
    assert body["code"] == "rate_limited" and body["provider"] == "gemini" and body["retry_after_s"] == 7
    assert resp.headers["retry-after"] == "7"
    assert "RESOURCE_EXHAUSTED" in body["detail"] and "exceeded your current quota" in body["detail"]
    assert API_KEY not in resp.body


@pytest.mark.parametrize("kind,status,code", [
    ("auth", 502, "provider_error"),
    ("server", 502, "provider_error"),
    ("overloaded", 502, "provider_error"),
    ("context_length", 400, "validation_error"),
    ("bad_request", 502, "provider_error"),
])
def test_error_classes(api, gemini, kind, status, code):
    gemini.script(Script(error=kind))
    resp = api.chat({"model": MODEL_ID, "messages": [user("hi")]})
    assert resp.status == status, resp.body
    body = resp.json()
    assert body["code"] == code and body["provider"] == "gemini"
    assert API_KEY not in resp.body
    if kind == "auth":
        assert "credentials" in body["detail"] and "API key not valid" in body["detail"]
    if kind == "context_length":
        assert "exceeds the maximum number of tokens" in body["detail"]


def test_error_before_stream_is_a_problem_and_midstream_error_an_event(api, gemini):
    gemini.script(Script(error="overloaded"))
    before = api.chat({"model": MODEL_ID, "stream": True, "messages": [user("hi")]})
    assert before.status == 502 and before.json()["code"] == "provider_error"

    gemini.script(Script(text="a b c d e f"), stream_error="overloaded", stream_error_after=2)
    during = api.chat({"model": MODEL_ID, "stream": True, "messages": [user("hi")]})
    assert during.status == 200
    assert "event: error" in during.body and "UNAVAILABLE" in during.body
    assert "data: [DONE]" not in during.body


def test_safety_blocks(api, gemini):
    gemini.script(Script(text="", input_tokens=8), prompt_blocked="SAFETY")
    prompt = api.chat({"model": MODEL_ID, "messages": [user("something bad")]})
    assert prompt.status == 200, prompt.body
    body = prompt.json()
    assert body["finish_reason"] == "content_filter" and body["usage"]["input_tokens"] == 8
    assert not body.get("content")

    streamed = _frames(api.chat({"model": MODEL_ID, "stream": True, "messages": [user("something bad")]}).body)
    assert streamed[-1]["finish_reason"] == "content_filter"

    gemini.script(Script(text="Partial", finish="content_filter"))
    answer = api.chat({"model": MODEL_ID, "messages": [user("hmm")]}).json()
    assert answer["finish_reason"] == "content_filter" and answer["content"][0]["text"] == "Partial"


def test_media_inline_data_url_and_unfetched_url(api, gemini):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    gemini.script(Script(text="A tiny image."))
    ok = api.chat({"model": MODEL_ID, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe"}, {"type": "image", "url": f"data:image/png;base64,{png}"},
        {"type": "document", "url": "gs://bucket/report.pdf"}]}]})
    assert ok.status == 200, ok.body
    parts = gemini.requests[-1].json()["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": png}}
    assert parts[2] == {"fileData": {"fileUri": "gs://bucket/report.pdf", "mimeType": "application/pdf"}}

    n = len(gemini.requests)  # https URLs are fetched by the gateway (SSRF-guarded) before the call: a refusal reaches no provider
    bad = api.chat({"model": MODEL_ID, "messages": [{"role": "user", "content": [
        {"type": "image", "url": "https://10.0.0.1/cat.png"}]}]})
    assert bad.status == 400 and bad.json()["code"] == "validation_error" and "private address" in bad.json()["detail"]
    assert len(gemini.requests) == n


def test_unknown_tool_result_id_is_a_validation_error(api, gemini):
    resp = api.chat({"model": MODEL_ID, "tools": [WEATHER], "messages": [
        user("x"),
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "nope", "content": "1"}}]},
    ]})
    assert resp.status == 400
    body = resp.json()
    assert body["code"] == "validation_error" and body["errors"][0]["path"] == "messages[1].content[0].tool_result.tool_call_id"
    assert gemini.requests == []
