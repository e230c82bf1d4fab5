"""OpenAI / OpenAI-compatible adapter: request translation, answer and stream parsing, error mapping.

In-process: the adapter is given an `httpx.MockTransport`, so every test is exact about the wire
without a socket. End-to-end behaviour through the handler is in tests/conformance.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.outbound.client import OutboundClient
from llm_gateway.pipeline.tools import resolve_tools
from llm_gateway.providers.base import Deadline, ProviderCall
from llm_gateway.providers.openai import OpenAIAdapter, _reset_seconds, inline_media, strict_compatible
from llm_gateway.providers.openai_compatible import OpenAICompatibleAdapter
from llm_gateway.registry.catalog import ModelSpec, ProviderSpec
from tests.fakes.openai import render_completion, render_stream
from tests.fakes.script import Script

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
WAV = base64.b64encode(b"RIFF\x00\x00\x00\x00WAVEfmt ").decode()
PDF = base64.b64encode(b"%PDF-1.4 fake").decode()


def tool(name: str = "get_weather", description: str = "Weather.", schema: dict | None = None) -> dict[str, Any]:
    return {"type": "unified", "name": name, "description": description,
            "parameters": {"json_schema": schema or {"type": "object", "properties": {"city": {"type": "string"}}}}}


def user(*parts: Any) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": p} if isinstance(p, str) else p for p in parts]}


class Recorder:
    """A MockTransport handler that records requests and answers from a queue."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self.responses = list(responses)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0) if self.responses else httpx.Response(200, json=render_completion(Script()))


def make(body: dict[str, Any], *, kind: str = "openai", model_options: dict | None = None, provider_options: dict | None = None,
         extra: dict | None = None, recorder: Recorder | None = None, deadline: Deadline | None = None):
    req = ChatRequest.model_validate({"model": "openai::gpt-4o-mini", **body})
    provider = ProviderSpec(id="openai", kind=kind, base_url="https://api.openai.test/v1", credential=None,
                            options=provider_options or {})
    model = ModelSpec(id="openai::gpt-4o-mini", provider=provider, provider_model="gpt-4o-mini",
                      capabilities=frozenset({"chat"}), lifecycle="production", options=model_options or {})
    call = ProviderCall(request=req, model=model, deadline=deadline or Deadline(ttft_s=30, total_s=60),
                        tools=resolve_tools(req), extra=extra or {})
    http = OutboundClient(httpx.Client(transport=httpx.MockTransport(recorder or Recorder())))
    cls = OpenAICompatibleAdapter if kind == "openai_compatible" else OpenAIAdapter
    return cls(provider, http), call


def wire(body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    adapter, call = make(body, **kw)
    adapter.check(call)
    return adapter.build_body(call, stream=False)


def refused(body: dict[str, Any], code: str = "capability_not_supported", **kw: Any) -> GatewayError:
    adapter, call = make(body, **kw)
    with pytest.raises(GatewayError) as info:
        adapter.check(call)
    assert info.value.code == code, info.value.detail
    return info.value


# ---------------------------------------------------------------- messages and roles


def test_roles_and_text_only_content_is_a_string():
    body = wire({"messages": [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        user("Hi ", "there"),
        {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
        user("Bye"),
    ]})
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
    ]
    assert "stream" not in body and "tools" not in body and "response_format" not in body


def test_system_role_option_sends_developer_messages():
    body = wire({"messages": [{"role": "system", "content": [{"type": "text", "text": "x"}]}, user("y")]},
                model_options={"system_role": "developer"})
    assert body["messages"][0] == {"role": "developer", "content": "x"}


def test_media_in_a_system_or_assistant_message_is_refused():
    refused({"messages": [{"role": "system", "content": [{"type": "image", "url": "https://x.test/a.png"}]}, user("hi")]})
    refused({"messages": [user("hi"), {"role": "assistant", "content": [{"type": "image", "url": "https://x.test/a.png"}]}]})


# ---------------------------------------------------------------- media


def test_image_urls_pass_through_and_inline_bytes_become_data_urls():
    body = wire({"messages": [user("What is this?", {"type": "image", "url": "https://img.test/cat.png"},
                                   {"type": "image", "url": f"data:image/png;base64,{PNG}"},
                                   {"type": "image", "url": "s3://bucket/t/dog.jpg"})]},
                extra={"media": {"s3://bucket/t/dog.jpg": {"data": PNG, "media_type": "image/jpg"}}})
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://img.test/cat.png"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{PNG}"}},
    ]


def test_fetched_media_wins_over_the_url():
    body = wire({"messages": [user({"type": "image", "url": "https://img.test/cat.png"})]},
                extra={"media": {"https://img.test/cat.png": {"data": PNG, "media_type": "image/png", "size": 12}}})
    assert body["messages"][0]["content"][0]["image_url"]["url"] == f"data:image/png;base64,{PNG}"


def test_image_that_cannot_reach_the_provider_is_refused_before_any_call():
    rec = Recorder()
    err = refused({"messages": [user({"type": "image", "url": "s3://bucket/x.png"})]}, recorder=rec)
    assert "s3" in err.detail and not rec.requests
    refused({"messages": [user({"type": "image", "url": f"data:image/bmp;base64,{PNG}"})]})


def test_audio_needs_inline_wav_or_mp3():
    body = wire({"messages": [user("Transcribe", {"type": "audio", "url": f"data:audio/wav;base64,{WAV}"},
                                   {"type": "audio", "url": "https://a.test/x.mp3"})]},
                extra={"media": {"https://a.test/x.mp3": {"data": WAV, "media_type": "audio/mpeg"}}})
    assert body["messages"][0]["content"][1:] == [
        {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}},
        {"type": "input_audio", "input_audio": {"data": WAV, "format": "mp3"}},
    ]
    err = refused({"messages": [user({"type": "audio", "url": "https://a.test/x.mp3"})]})
    assert "inline" in err.detail
    err = refused({"messages": [user({"type": "audio", "url": f"data:audio/flac;base64,{WAV}"})]})
    assert "WAV or MP3" in err.detail


def test_documents_are_pdf_file_parts_or_text():
    text_doc = base64.b64encode("line one\nline two".encode()).decode()
    body = wire({"messages": [user("Summarize", {"type": "document", "url": f"data:application/pdf;base64,{PDF}"},
                                   {"type": "document", "url": "https://d.test/files/report.pdf"},
                                   {"type": "document", "url": f"data:text/plain;base64,{text_doc}"})]},
                extra={"media": {"https://d.test/files/report.pdf": {"data": PDF, "media_type": "application/pdf"}}})
    parts = body["messages"][0]["content"]
    assert parts[1] == {"type": "file", "file": {"filename": "document.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}}
    assert parts[2]["file"]["filename"] == "report.pdf"
    assert parts[3] == {"type": "text", "text": "line one\nline two"}
    refused({"messages": [user({"type": "document", "url": "https://d.test/report.pdf"})]})
    refused({"messages": [user({"type": "document", "url": f"data:application/msword;base64,{PDF}"})]})


def test_video_is_not_accepted():
    err = refused({"messages": [user({"type": "video", "url": "https://v.test/a.mp4"})]})
    assert "video" in err.detail


def test_compatible_servers_take_only_the_parts_their_catalog_entry_lists():
    audio = {"messages": [user({"type": "audio", "url": f"data:audio/wav;base64,{WAV}"})]}
    refused(audio, kind="openai_compatible")
    body = wire(audio, kind="openai_compatible", provider_options={"accepted_parts": ["text", "image", "audio"]})
    assert body["messages"][0]["content"][0]["type"] == "input_audio"


def test_inline_media_decodes_data_urls():
    call = make({"messages": [user("x")]})[1]
    assert inline_media(call, f"data:image/png;base64,{PNG}") == ("image/png", PNG)
    assert inline_media(call, "data:text/plain,hello%20world") == ("text/plain", base64.b64encode(b"hello world").decode())
    assert inline_media(call, "https://x.test/a.png") is None


# ---------------------------------------------------------------- tools


def test_tool_history_round_trip():
    body = wire({"messages": [
        user("Weather in Paris?"),
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."},
                                          {"type": "tool_call", "tool_call": {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}},
                                          {"type": "tool_call", "tool_call": {"id": "call_2", "name": "get_weather", "arguments": {"city": "Lyon"}}}]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "call_1", "content": "18C"}},
                                     {"type": "tool_result", "tool_result": {"tool_call_id": "call_2", "content": "20C"}}]},
    ], "tools": [tool()]})
    assert body["messages"][1] == {"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Lyon"}'}},
    ]}
    assert body["messages"][2:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "20C"},
    ]


def test_tool_results_in_a_user_message_come_before_its_text():
    body = wire({"messages": [
        user("Weather?"),
        {"role": "assistant", "content": [{"type": "tool_call", "tool_call": {"id": "c1", "name": "get_weather", "arguments": {}}}]},
        {"role": "user", "content": [{"type": "text", "text": "Also, thanks."},
                                     {"type": "tool_result", "tool_result": {"tool_call_id": "c1", "content": "sunny"}}]},
    ], "tools": [tool()]})
    assert body["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}
    assert body["messages"][2:] == [{"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                                    {"role": "user", "content": "Also, thanks."}]


def test_tool_call_outside_an_assistant_message_is_invalid():
    refused({"messages": [{"role": "user", "content": [
        {"type": "tool_call", "tool_call": {"id": "c1", "name": "f", "arguments": {}}}]}]}, code="validation_error")


def test_tool_definitions_and_choices():
    body = wire({"messages": [user("x")], "tools": [tool(), tool("noop", "")], "tool_choice": {"type": "tool", "name": "noop"}})
    assert body["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                                          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "noop", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "noop"}}
    for choice in ("auto", "none", "required"):
        assert wire({"messages": [user("x")], "tools": [tool()], "tool_choice": choice})["tool_choice"] == choice
    assert "tool_choice" not in wire({"messages": [user("x")], "tool_choice": "none"})
    refused({"messages": [user("x")], "tool_choice": "required"}, code="validation_error")
    err = refused({"messages": [user("x")], "tools": [tool()], "tool_choice": {"type": "tool", "name": "nope"}}, code="validation_error")
    assert err.errors[0]["path"] == "tool_choice.name"


# ---------------------------------------------------------------- structured output

CLOSED = {"title": "City weather", "type": "object", "properties": {"city": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
          "required": ["city", "tags"], "additionalProperties": False}
OPEN = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_response_schema_is_sent_as_json_schema_strict_when_it_can_be():
    body = wire({"messages": [user("x")], "response_schema": {"json_schema": CLOSED}})
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "City_weather", "schema": CLOSED, "strict": True}}
    loose = wire({"messages": [user("x")], "response_schema": {"json_schema": OPEN}})["response_format"]
    assert loose == {"type": "json_schema", "json_schema": {"name": "response", "schema": OPEN, "strict": False}}
    forced = wire({"messages": [user("x")], "response_schema": {"json_schema": CLOSED}}, model_options={"strict_schema": False})
    assert forced["response_format"]["json_schema"]["strict"] is False


def test_strict_compatibility_rules():
    assert strict_compatible(CLOSED)
    assert not strict_compatible(OPEN)
    assert not strict_compatible({**CLOSED, "required": ["city"]})
    assert not strict_compatible({**CLOSED, "properties": {**CLOSED["properties"], "nested": {"type": "object", "properties": {}}},
                                  "required": ["city", "tags", "nested"]})
    assert not strict_compatible({"allOf": [CLOSED]})
    assert strict_compatible({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                              "required": ["a"], "additionalProperties": False})


def test_json_object_mode_for_servers_without_json_schema():
    body = wire({"messages": [user("x")], "response_schema": {"json_schema": OPEN}}, kind="openai_compatible",
                provider_options={"structured_output": "json_object"})
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["role"] == "system" and json.dumps(OPEN, separators=(",", ":")) in body["messages"][0]["content"]


# ---------------------------------------------------------------- generation parameters


def test_generation_parameters():
    body = wire({"messages": [user("x")], "max_tokens": 64, "temperature": 0.3, "top_p": 0.9, "seed": 7, "stop": "END"})
    assert {k: body[k] for k in ("max_completion_tokens", "temperature", "top_p", "seed", "stop")} == {
        "max_completion_tokens": 64, "temperature": 0.3, "top_p": 0.9, "seed": 7, "stop": ["END"]}
    compat = wire({"messages": [user("x")], "max_tokens": 64, "stop": [str(i) for i in range(6)]}, kind="openai_compatible")
    assert compat["max_tokens"] == 64 and "max_completion_tokens" not in compat and len(compat["stop"]) == 6
    err = refused({"messages": [user("x")], "stop": [str(i) for i in range(5)]}, code="validation_error")
    assert "at most 4" in err.detail


def test_parameters_a_model_rejects_are_refused_up_front():
    err = refused({"messages": [user("x")], "temperature": 0.2}, model_options={"unsupported_params": ["temperature", "stop"]})
    assert "temperature" in err.detail
    assert wire({"messages": [user("x")]}, model_options={"unsupported_params": ["temperature"]})


def test_stream_body_always_asks_for_usage():
    adapter, call = make({"messages": [user("x")]})
    body = adapter.build_body(call, stream=True)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


# ---------------------------------------------------------------- calls: one translation, headers


def test_check_translates_once_and_the_call_sends_that_body():
    rec = Recorder()
    adapter, call = make({"messages": [user("hello")]}, recorder=rec,
                         provider_options={"organization": "org-1", "project": "proj-1", "headers": {"X-Trace": "t"}})
    adapter.check(call)
    kept = call.extra["_openai_wire"][2]
    result = adapter.chat(call)
    sent = rec.requests[0]
    assert sent.url == "https://api.openai.test/v1/chat/completions"
    assert json.loads(sent.content) == kept
    assert sent.headers["openai-organization"] == "org-1" and sent.headers["openai-project"] == "proj-1"
    assert sent.headers["x-trace"] == "t" and "authorization" not in sent.headers  # no credential configured
    assert result.content == [{"type": "text", "text": "Hello from the fake provider."}]


def test_bearer_key_from_the_credential_source(monkeypatch):
    from llm_gateway.outbound import credentials

    credentials.clear_cache()
    monkeypatch.setenv("UNIT_OPENAI_KEY", "sk-unit-0123456789")
    rec = Recorder()
    adapter, call = make({"messages": [user("hello")]}, recorder=rec)
    adapter.provider = ProviderSpec(id="openai-unit", kind="openai", base_url="https://api.openai.test/v1",
                                    credential={"env": "UNIT_OPENAI_KEY"})
    adapter.chat(call)
    assert rec.requests[0].headers["authorization"] == "Bearer sk-unit-0123456789"
    credentials.clear_cache()


# ---------------------------------------------------------------- answers


def parse(data: dict[str, Any]):
    adapter, _ = make({"messages": [user("x")]})
    return adapter.parse_result(data)


def test_answer_text_tool_calls_and_usage_detail():
    s = Script(text="Checking.", tool_calls=[{"id": "call_9", "name": "get_weather", "arguments": {"city": "Oslo"}}],
               finish="tool_calls", input_tokens=2000, cached_tokens=1024, output_tokens=300, reasoning_tokens=256)
    r = parse(render_completion(s))
    assert r.content == [{"type": "text", "text": "Checking."}]
    assert r.tool_calls == [{"id": "call_9", "name": "get_weather", "arguments": {"city": "Oslo"}}]
    assert r.finish_reason == "tool_calls" and r.provider_response_id == "chatcmpl-fake0001"
    u = r.usage
    assert (u.input_tokens, u.output_tokens, u.cached_input_tokens, u.reasoning_tokens, u.cache_write_tokens) == (2000, 300, 1024, 256, 0)


def test_forced_tool_answers_finish_stop_but_are_tool_calls():
    data = render_completion(Script(text=None, tool_calls=[{"id": "c", "name": "f", "arguments": {}}], finish="stop"))
    assert parse(data).finish_reason == "tool_calls"


def test_refusal_is_text_with_content_filter():
    data = render_completion(Script(text=None))
    data["choices"][0]["message"]["refusal"] = "I can't help with that."
    r = parse(data)
    assert r.content == [{"type": "text", "text": "I can't help with that."}] and r.finish_reason == "content_filter"


@pytest.mark.parametrize("raw,expected", [("stop", "stop"), ("length", "length"), ("tool_calls", "tool_calls"),
                                          ("function_call", "tool_calls"), ("content_filter", "content_filter"),
                                          (None, "stop"), ("something_new", "stop")])
def test_finish_reasons(raw, expected):
    data = render_completion(Script(text="x"))
    data["choices"][0]["finish_reason"] = raw
    assert parse(data).finish_reason == expected


def test_compatible_server_variants_are_understood():
    data = render_completion(Script(text=None))
    data["choices"][0]["message"]["content"] = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    data["usage"] = {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": None, "prompt_cache_hit_tokens": 6}
    r = parse(data)
    assert r.content == [{"type": "text", "text": "ab"}] and r.usage.cached_input_tokens == 6


def test_malformed_answers_are_provider_errors():
    with pytest.raises(GatewayError) as info:
        parse({"id": "x", "choices": []})
    assert info.value.code == "provider_error"
    bad = render_completion(Script(text=None, tool_calls=[{"id": "c", "name": "f", "arguments": {}}]))
    bad["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"city": '
    with pytest.raises(GatewayError) as info:
        parse(bad)
    assert "not JSON" in info.value.detail


# ---------------------------------------------------------------- streams


def lines_of(frames: list[bytes]) -> list[str]:
    return b"".join(frames).decode().split("\n")


def collect(lines: list[str], deadline: Deadline | None = None):
    adapter, _ = make({"messages": [user("x")]})
    return list(adapter.parse_stream(lines, deadline))


def test_stream_text_and_exact_usage_last():
    s = Script(text="one two three four five six seven", input_tokens=20, cached_tokens=8, output_tokens=7, reasoning_tokens=2)
    deltas = collect(lines_of(render_stream(s)))
    assert "".join(d.text or "" for d in deltas) == s.text
    assert all(d.usage is None for d in deltas[:-1])
    last = deltas[-1]
    assert last.finish_reason == "stop"
    assert (last.usage.input_tokens, last.usage.output_tokens, last.usage.cached_input_tokens, last.usage.reasoning_tokens) == (20, 7, 8, 2)


def test_stream_tool_call_fragments():
    s = Script(text=None, tool_calls=[{"id": "c1", "name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}},
                                      {"id": "c2", "name": "get_time", "arguments": {"city": "Paris"}}], finish="tool_calls")
    deltas = collect(lines_of(render_stream(s)))
    calls: dict[int, dict[str, Any]] = {}
    for d in deltas:
        for tc in d.tool_calls or ():
            slot = calls.setdefault(tc["index"], {"id": None, "name": "", "args": ""})
            slot["id"] = tc.get("id", slot["id"])
            slot["name"] += (tc.get("function") or {}).get("name", "")
            slot["args"] += (tc.get("function") or {}).get("arguments", "")
    assert [(c["id"], c["name"], json.loads(c["args"])) for c in calls.values()] == [
        ("c1", "get_weather", {"city": "Paris", "unit": "c"}), ("c2", "get_time", {"city": "Paris"})]
    assert deltas[-1].finish_reason == "tool_calls"


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> str:
    body: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []}
    if usage is not None:
        body["usage"] = usage
    return "data: " + json.dumps(body)


USAGE = {"prompt_tokens": 3, "completion_tokens": 2}


def test_stream_repeated_tool_names_and_missing_index_are_normalized():
    lines = [
        _chunk({"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":'}}]}), "",
        _chunk({"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "1}"}}]}), "",
        _chunk(finish="stop"), "", _chunk(usage=USAGE, choices=False), "", "data: [DONE]", "",
    ]
    deltas = collect(lines)
    assert deltas[0].tool_calls == [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a":'}}]
    assert deltas[1].tool_calls == [{"index": 0, "function": {"arguments": "1}"}}]
    assert deltas[-1].finish_reason == "tool_calls"  # a stop that came with tool calls


def test_stream_refusal_is_content_filter():
    lines = [_chunk({"refusal": "No."}), "", _chunk(finish="stop"), "", _chunk(usage=USAGE, choices=False), "", "data: [DONE]", ""]
    deltas = collect(lines)
    assert deltas[0].text == "No." and deltas[-1].finish_reason == "content_filter"


def test_stream_without_done_is_complete_only_when_usage_arrived():
    ok = collect([_chunk({"content": "hi"}), "", _chunk(finish="stop"), "", _chunk(usage=USAGE, choices=False), ""])
    assert ok[-1].usage.output_tokens == 2
    for lines in ([_chunk({"content": "hi"}), ""], [_chunk({"content": "hi"}), "", _chunk(finish="stop"), ""]):
        with pytest.raises(GatewayError) as info:
            collect(lines)
        assert info.value.code == "provider_error" and "before it was complete" in info.value.detail


def test_stream_malformed_chunk_and_error_object():
    with pytest.raises(GatewayError) as info:
        collect([_chunk({"content": "hi"}), "", "data: {not json", ""])
    assert "malformed" in info.value.detail
    with pytest.raises(GatewayError) as info:
        collect([_chunk({"content": "hi"}), "", 'data: {"error": {"message": "The server had an error", "type": "server_error"}}', ""])
    assert info.value.code == "provider_error" and "The server had an error" in info.value.detail
    with pytest.raises(GatewayError):
        collect(["event: error", 'data: {"message": "boom"}', ""])


def test_stream_past_the_total_deadline_is_a_timeout():
    spent = Deadline(ttft_s=1, total_s=1, started=0.0)
    with pytest.raises(GatewayError) as info:
        collect([_chunk({"content": "hi"}), ""], spent)
    assert info.value.code == "provider_timeout"


def test_stream_through_the_transport():
    rec = Recorder(httpx.Response(200, content=b"".join(render_stream(Script(text="a b c d"))),
                                  headers={"content-type": "text/event-stream"}))
    adapter, call = make({"messages": [user("x")], "stream": True}, recorder=rec)
    adapter.check(call)
    deltas = list(adapter.stream(call))
    assert "".join(d.text or "" for d in deltas) == "a b c d"
    sent = json.loads(rec.requests[0].content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


# ---------------------------------------------------------------- errors


def error_of(response: httpx.Response, kind: str = "openai") -> GatewayError:
    adapter, call = make({"messages": [user("x")]}, recorder=Recorder(response), kind=kind)
    with pytest.raises(GatewayError) as info:
        adapter.chat(call)
    return info.value


def test_rate_limit_uses_retry_after_then_openai_reset_headers():
    body = {"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
    e = error_of(httpx.Response(429, json=body, headers={"retry-after": "3"}))
    assert (e.code, e.retry_after_s) == ("rate_limited", 3.0)
    e = error_of(httpx.Response(429, json=body, headers={"x-ratelimit-reset-requests": "6m0s", "x-ratelimit-reset-tokens": "1s"}))
    assert (e.code, e.retry_after_s) == ("rate_limited", 360.0)
    assert e.response_headers()["Retry-After"] == "360"


def test_insufficient_quota_is_not_a_rate_limit():
    e = error_of(httpx.Response(429, json={"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                                                     "param": None, "code": "insufficient_quota"}}))
    assert e.code == "provider_error" and "quota" in e.detail


def test_context_length_and_bad_request():
    e = error_of(httpx.Response(400, json={"error": {"message": "Please reduce the length of the messages.", "type": "invalid_request_error",
                                                     "param": "messages", "code": "context_length_exceeded"}}))
    assert e.code == "validation_error" and e.status == 400
    e = error_of(httpx.Response(400, json={"error": {"message": "Invalid value.", "type": "invalid_request_error",
                                                     "param": "temperature", "code": "invalid_value"}}))
    assert e.code == "provider_error" and "(param: temperature)" in e.detail


@pytest.mark.parametrize("status,code", [(401, "provider_error"), (403, "provider_error"), (500, "provider_error"),
                                         (503, "provider_error"), (504, "provider_timeout")])
def test_status_mapping(status, code):
    e = error_of(httpx.Response(status, json={"error": {"message": "nope", "type": "server_error", "param": None, "code": None}}))
    assert e.code == code and e.provider == "openai" and "nope" in e.detail


def test_compatible_server_error_shapes():
    e = error_of(httpx.Response(400, json={"object": "error", "message": "This model's maximum context length is 8192 tokens.",
                                           "type": "BadRequestError", "code": 400}), kind="openai_compatible")
    assert e.code == "validation_error"
    e = error_of(httpx.Response(500, json={"error": "model not loaded"}), kind="openai_compatible")
    assert "model not loaded" in e.detail
    e = error_of(httpx.Response(502, text="<html>Bad Gateway</html>"), kind="openai_compatible")
    assert e.code == "provider_error" and "Bad Gateway" in e.detail


def test_error_messages_never_carry_keys():
    e = error_of(httpx.Response(401, json={"error": {"message": "Incorrect API key provided: sk-abcdefghijklmnop1234.",
                                                     "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}))
    assert "sk-abcdefghijklmnop1234" not in e.detail


def test_reset_durations():
    assert _reset_seconds("1s") == 1 and _reset_seconds("6m0s") == 360 and _reset_seconds("20ms") == 0.02
    assert _reset_seconds("1h2m3.5s") == 3723.5 and _reset_seconds(None) is None and _reset_seconds("soon") is None


def test_stream_sse_framing_comments_no_space_and_multiline_data():
    chunk = json.loads(_chunk({"content": "hi"})[6:])
    pretty = json.dumps(chunk, indent=1).split("\n")  # one event spread over several data: lines
    lines = [": keep-alive", "", *[f"data: {p}" for p in pretty], "", "data:" + _chunk(finish="stop")[6:], "",
             _chunk(usage=USAGE, choices=False), "", "data: [DONE]"]  # no trailing blank line
    deltas = collect(lines)
    assert [d.text for d in deltas[:-1]] == ["hi"] and deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage.input_tokens == 3
