"""Anthropic adapter translation, without a network: request bodies, answers, streams, errors."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.outbound.client import OutboundClient
from llm_gateway.providers.anthropic import RESPONSE_TOOL, STRUCTURED_OUTPUTS_BETA, AnthropicAdapter, native_schema
from llm_gateway.providers.base import Deadline, ProviderCall, TokenUsage
from llm_gateway.registry.catalog import ModelSpec, ProviderSpec, cost_of

PRICING = {"input_per_mtok": 3.0, "output_per_mtok": 15.0, "cached_input_per_mtok": 0.30, "cache_write_per_mtok": 3.75}


def text(t: str) -> list[dict]:
    return [{"type": "text", "text": t}]


def msg(role: str, t: str) -> dict:
    return {"role": role, "content": text(t)}


def tool_call(cid: str, name: str, args: dict) -> dict:
    return {"type": "tool_call", "tool_call": {"id": cid, "name": name, "arguments": args}}


def tool_result(cid: str, content: str) -> dict:
    return {"type": "tool_result", "tool_result": {"tool_call_id": cid, "content": content}}


WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
def key_env(monkeypatch):
    from llm_gateway.outbound import credentials

    credentials.clear_cache()
    monkeypatch.setenv("UNIT_ANTHROPIC_KEY", "sk-ant-unit-key-0123456789")
    yield
    credentials.clear_cache()


def make(payload: dict, *, options: dict | None = None, limits: dict | None = None, tools: list | None = None,
         extra: dict | None = None, provider_options: dict | None = None) -> tuple[AnthropicAdapter, ProviderCall]:
    provider = ProviderSpec(id="anthropic", kind="anthropic", base_url="http://127.0.0.1:9",
                            credential={"env": "UNIT_ANTHROPIC_KEY"}, options=provider_options or {})
    model = ModelSpec(id="anthropic::claude-x", provider=provider, provider_model="claude-x",
                      capabilities=frozenset({"chat", "stream", "tools", "structured_output", "vision", "documents"}),
                      lifecycle="production", limits={"max_output_tokens": 64000} if limits is None else limits,
                      pricing=PRICING, options=options or {})
    request = ChatRequest.model_validate({"model": "anthropic::claude-x", **payload})
    call = ProviderCall(request=request, model=model, deadline=Deadline(10, 10), tools=tools or [], extra=extra or {})
    return AnthropicAdapter(provider, OutboundClient(httpx.Client())), call


def body_for(payload: dict, **kw) -> dict:
    adapter, call = make(payload, **kw)
    adapter.check(call)
    return adapter.build_body(call, stream=False)


# ------------------------------------------------------------------ messages


def test_system_messages_go_to_top_level_system():
    body = body_for({"messages": [msg("system", "Be terse."), msg("user", "hi"), msg("system", "Answer in French.")]})
    assert body["system"] == "Be terse.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": text("hi")}]
    assert body["model"] == "claude-x"


def test_no_system_key_without_system_messages():
    assert "system" not in body_for({"messages": [msg("user", "hi")]})


def test_consecutive_same_role_messages_are_merged():
    body = body_for({"messages": [msg("user", "one"), msg("user", "two"), msg("assistant", "a"), msg("assistant", "b"), msg("user", "three")]})
    assert body["messages"] == [
        {"role": "user", "content": text("one") + text("two")},
        {"role": "assistant", "content": text("a") + text("b")},
        {"role": "user", "content": text("three")},
    ]


def test_tool_round_trip_history_places_tool_results_first_in_a_user_turn():
    body = body_for({
        "messages": [
            msg("user", "Weather in Paris and Rome?"),
            {"role": "assistant", "content": text("Checking.") + [tool_call("toolu_1", "get_weather", {"city": "Paris"}),
                                                                  tool_call("toolu_2", "get_weather", {"city": "Rome"})]},
            msg("user", "(take your time)"),
            {"role": "tool", "content": [tool_result("toolu_1", "18C")]},
            {"role": "tool", "content": [tool_result("toolu_2", "24C")]},
        ]}, tools=[WEATHER])
    assert body["messages"][1] == {"role": "assistant", "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
    ]}
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "24C"},
        {"type": "text", "text": "(take your time)"},
    ]}
    assert len(body["messages"]) == 3


def test_empty_text_parts_are_skipped_and_empty_tool_results_have_no_content():
    body = body_for({"messages": [
        {"role": "user", "content": text("") + text("hi")},
        {"role": "assistant", "content": [tool_call("t1", "get_weather", {})]},
        {"role": "tool", "content": [tool_result("t1", "")]},
    ]}, tools=[WEATHER])
    assert body["messages"][0]["content"] == text("hi")
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "t1"}]


def test_system_only_conversation_is_a_validation_error():
    adapter, call = make({"messages": [msg("system", "Be terse.")]})
    with pytest.raises(GatewayError) as err:
        adapter.build_body(call, stream=False)
    assert err.value.code == "validation_error"


def test_final_assistant_prefill_loses_trailing_whitespace():
    body = body_for({"messages": [msg("user", "Say a JSON"), msg("assistant", "{\n  ")]})
    assert body["messages"][-1] == {"role": "assistant", "content": text("{")}


# ------------------------------------------------------------------ media


def test_image_url_and_inline_base64_sources():
    data = base64.b64encode(b"\x89PNG fake").decode()
    body = body_for(
        {"messages": [{"role": "user", "content": [
            {"type": "image", "url": "https://example.com/cat.jpg"},
            {"type": "image", "url": "s3://bucket/tenant/dog.png"},
            {"type": "image", "url": f"data:image/gif;base64,{data}"},
        ]}]},
        extra={"media": {"s3://bucket/tenant/dog.png": {"data": data, "media_type": "image/png"}}},
    )
    assert [b["source"] for b in body["messages"][0]["content"]] == [
        {"type": "url", "url": "https://example.com/cat.jpg"},
        {"type": "base64", "media_type": "image/png", "data": data},
        {"type": "base64", "media_type": "image/gif", "data": data},
    ]


def test_documents_pdf_url_base64_and_plain_text():
    pdf = base64.b64encode(b"%PDF-1.7 ...").decode()
    txt = base64.b64encode("plain notes".encode()).decode()
    body = body_for(
        {"messages": [{"role": "user", "content": [
            {"type": "document", "url": "https://example.com/a.pdf"},
            {"type": "document", "url": "s3://b/t/b.pdf"},
            {"type": "document", "url": "s3://b/t/c.txt"},
            {"type": "text", "text": "Summarize these."},
        ]}]},
        extra={"media": {"s3://b/t/b.pdf": {"data": pdf, "media_type": "application/pdf"},
                         "s3://b/t/c.txt": {"data": txt, "media_type": "text/plain"}}},
    )
    blocks = body["messages"][0]["content"]
    assert blocks[0] == {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    assert blocks[1] == {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}}
    assert blocks[2] == {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"}}


def test_presigned_url_replacement_string_is_used():
    body = body_for({"messages": [{"role": "user", "content": [{"type": "image", "url": "s3://b/t/x.png"}]}]},
                    extra={"media": {"s3://b/t/x.png": "https://bucket.s3.amazonaws.com/t/x.png?X-Amz-Signature=abc"}})
    assert body["messages"][0]["content"][0]["source"]["type"] == "url"


@pytest.mark.parametrize("part,extra", [
    ({"type": "image", "url": "s3://bucket/not-inlined.png"}, {}),
    ({"type": "image", "url": "s3://b/x.bmp"}, {"media": {"s3://b/x.bmp": {"data": "AAAA", "media_type": "image/bmp"}}}),
    ({"type": "document", "url": "s3://b/x.docx"}, {"media": {"s3://b/x.docx": {"data": "AAAA", "media_type": "application/msword"}}}),
])
def test_media_anthropic_cannot_take_is_refused(part, extra):
    adapter, call = make({"messages": [{"role": "user", "content": [part]}]}, extra=extra)
    with pytest.raises(GatewayError) as err:
        adapter.build_body(call, stream=False)
    assert err.value.code == "capability_not_supported"


@pytest.mark.parametrize("payload", [
    {"messages": [{"role": "user", "content": [{"type": "audio", "url": "https://x/a.wav"}]}]},
    {"messages": [{"role": "user", "content": [{"type": "video", "url": "https://x/a.mp4"}]}]},
    {"messages": [{"role": "system", "content": [{"type": "image", "url": "https://x/a.png"}]}, msg("user", "hi")]},
    {"messages": [msg("user", "hi"), {"role": "assistant", "content": [{"type": "image", "url": "https://x/a.png"}]}]},
])
def test_check_refuses_parts_before_any_call(payload):
    adapter, call = make(payload)
    with pytest.raises(GatewayError) as err:
        adapter.check(call)
    assert err.value.code == "capability_not_supported" and err.value.provider == "anthropic"


def test_temperature_above_one_is_a_validation_error():
    adapter, call = make({"messages": [msg("user", "hi")], "temperature": 1.5})
    with pytest.raises(GatewayError) as err:
        adapter.check(call)
    assert err.value.code == "validation_error" and err.value.errors[0]["path"] == "temperature"


# ------------------------------------------------------------------ parameters and tools


def test_generation_parameters():
    body = body_for({"messages": [msg("user", "hi")], "max_tokens": 300, "temperature": 0.2, "top_p": 0.9,
                     "stop": ["\n\nHuman:", "END"], "seed": 7})
    assert body["max_tokens"] == 300 and body["temperature"] == 0.2 and body["top_p"] == 0.9
    assert body["stop_sequences"] == ["\n\nHuman:", "END"]
    assert "seed" not in body and "stop" not in body and "stream" not in body


@pytest.mark.parametrize("limits,options,expected", [
    ({"max_output_tokens": 64000}, {}, 4096),
    ({"max_output_tokens": 1024}, {}, 1024),
    ({}, {}, 4096),
    ({"max_output_tokens": 64000}, {"default_max_tokens": 8192}, 8192),
])
def test_max_tokens_is_always_sent(limits, options, expected):
    assert body_for({"messages": [msg("user", "hi")]}, limits=limits, options=options)["max_tokens"] == expected


def test_tools_are_sent_with_input_schema():
    body = body_for({"messages": [msg("user", "hi")]}, tools=[WEATHER, {"name": "noop", "description": "", "parameters": {}}])
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER["parameters"]},
        {"name": "noop", "description": "", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize("choice,expected", [
    ("auto", {"type": "auto"}),
    ("required", {"type": "any"}),
    ("none", {"type": "none"}),
    ({"type": "tool", "name": "get_weather"}, {"type": "tool", "name": "get_weather"}),
])
def test_tool_choice_mapping(choice, expected):
    assert body_for({"messages": [msg("user", "hi")], "tool_choice": choice}, tools=[WEATHER])["tool_choice"] == expected


def test_tool_choice_without_tools_is_not_sent():
    assert "tool_choice" not in body_for({"messages": [msg("user", "hi")], "tool_choice": "auto"})


def test_headers_use_x_api_key_and_version(key_env):
    adapter, call = make({"messages": [msg("user", "hi")]})
    headers = adapter.headers(call)
    assert headers == {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "sk-ant-unit-key-0123456789"}


# ------------------------------------------------------------------ structured output

SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string", "minLength": 2},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "tags": {"type": "array", "items": {"type": "string", "format": "hostname"}, "minItems": 3},
    "address": {"type": "object", "properties": {"city": {"type": "string", "format": "postal-city"}}, "additionalProperties": True},
}, "required": ["name"]}


def test_native_structured_output_uses_output_config_format(key_env):
    adapter, call = make({"messages": [msg("user", "Extract")], "response_schema": {"json_schema": SCHEMA}})
    body = adapter.build_body(call, stream=False)
    fmt = body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    sent = fmt["schema"]
    assert sent["additionalProperties"] is False and sent["required"] == ["name"]
    assert sent["properties"]["address"]["additionalProperties"] is False
    assert sent["properties"]["age"] == {"type": "integer", "description": "Must be at least 0. Must be at most 150."}
    assert sent["properties"]["name"] == {"type": "string", "description": "Must be at least 2 characters long."}
    assert sent["properties"]["tags"]["minItems"] == 1 and "at least 3 items" in sent["properties"]["tags"]["description"]
    assert sent["properties"]["tags"]["items"]["format"] == "hostname"
    assert "format" not in sent["properties"]["address"]["properties"]["city"]
    assert "tools" not in body and "output_format" not in body
    assert "anthropic-beta" not in adapter.headers(call)
    assert SCHEMA["properties"]["age"]["minimum"] == 0  # the caller's schema is untouched


def test_native_schema_is_identity_for_compatible_schemas():
    ok = {"type": "object", "properties": {"a": {"type": "string", "enum": ["x", "y"]}}, "required": ["a"], "additionalProperties": False}
    assert native_schema(ok) == ok


def test_beta_structured_output_sends_output_format_and_the_beta_header(key_env):
    adapter, call = make({"messages": [msg("user", "Extract")], "response_schema": {"json_schema": SCHEMA}},
                         options={"structured_output": "beta"}, provider_options={"beta": ["prompt-caching-2024-07-31"]})
    body = adapter.build_body(call, stream=False)
    assert body["output_format"]["type"] == "json_schema" and "output_config" not in body
    assert adapter.headers(call)["anthropic-beta"] == f"prompt-caching-2024-07-31,{STRUCTURED_OUTPUTS_BETA}"


def test_tool_mode_structured_output_forces_the_answer_tool():
    body = body_for({"messages": [msg("user", "Extract")], "response_schema": {"json_schema": SCHEMA}},
                    options={"structured_output": "tool"})
    assert body["tools"] == [{"name": RESPONSE_TOOL, "description": "Give the final answer as JSON matching this schema.", "input_schema": SCHEMA}]
    assert body["tool_choice"] == {"type": "tool", "name": RESPONSE_TOOL}
    assert "output_config" not in body


@pytest.mark.parametrize("choice,expected", [
    (None, {"type": "any"}),
    ("auto", {"type": "any"}),
    ("required", {"type": "any"}),
    ("none", {"type": "tool", "name": RESPONSE_TOOL}),
    ({"type": "tool", "name": "get_weather"}, {"type": "tool", "name": "get_weather"}),
])
def test_tool_mode_with_user_tools_never_allows_free_text(choice, expected):
    payload = {"messages": [msg("user", "Extract")], "response_schema": {"json_schema": SCHEMA}}
    if choice is not None:
        payload["tool_choice"] = choice
    body = body_for(payload, options={"structured_output": "tool"}, tools=[WEATHER])
    assert [t["name"] for t in body["tools"]] == ["get_weather", RESPONSE_TOOL]
    assert body["tool_choice"] == expected


def test_tool_mode_answer_becomes_json_text():
    adapter, call = make({"messages": [msg("user", "Extract")], "response_schema": {"json_schema": SCHEMA}}, options={"structured_output": "tool"})
    result = adapter.parse_result({"id": "msg_1", "type": "message", "role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_9", "name": RESPONSE_TOOL, "input": {"name": "Ada", "age": 36}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 5}}, call)
    assert result.content == [{"type": "text", "text": '{"name":"Ada","age":36}'}]
    assert result.tool_calls == [] and result.finish_reason == "stop"


def test_tool_mode_wraps_non_object_schemas():
    schema = {"type": "array", "items": {"type": "integer"}}
    adapter, call = make({"messages": [msg("user", "Primes?")], "response_schema": {"json_schema": schema}}, options={"structured_output": "tool"})
    body = adapter.build_body(call, stream=False)
    assert body["tools"][0]["input_schema"] == {"type": "object", "properties": {"value": schema}, "required": ["value"]}
    result = adapter.parse_result({"content": [{"type": "tool_use", "id": "t", "name": RESPONSE_TOOL, "input": {"value": [2, 3, 5]}}],
                                   "stop_reason": "tool_use", "usage": {}}, call)
    assert result.content == [{"type": "text", "text": "[2,3,5]"}]
    streamed = list(adapter.parse_stream(sse_lines([
        {"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": RESPONSE_TOOL, "input": {}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"value": [2, '}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "3, 5]}"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]), call))
    assert "".join(d.text or "" for d in streamed) == "[2,3,5]"
    assert not any(d.tool_calls for d in streamed) and streamed[-1].finish_reason == "stop"


def test_tool_mode_reserved_name_clash_is_reported():
    adapter, call = make({"messages": [msg("user", "x")], "response_schema": {"json_schema": SCHEMA}},
                         options={"structured_output": "tool"}, tools=[{"name": RESPONSE_TOOL, "description": "", "parameters": {"type": "object"}}])
    with pytest.raises(GatewayError) as err:
        adapter.build_body(call, stream=False)
    assert err.value.code == "validation_error"


# ------------------------------------------------------------------ answers and usage


def test_parse_result_text_tool_calls_and_usage_with_cache_tokens():
    adapter, call = make({"messages": [msg("user", "hi")]}, tools=[WEATHER])
    result = adapter.parse_result({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "thinking", "thinking": "...", "signature": "s"},
                    {"type": "text", "text": "Let me check. "}, {"type": "text", "text": "One moment."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 100, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 300, "output_tokens": 40},
    }, call)
    assert result.content == [{"type": "text", "text": "Let me check. One moment."}]
    assert result.tool_calls == [{"id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}}]
    assert result.finish_reason == "tool_calls" and result.provider_response_id == "msg_01"
    u = result.usage
    assert (u.input_tokens, u.cached_input_tokens, u.cache_write_tokens, u.output_tokens) == (2400, 2000, 300, 40)
    # cost: 100 fresh at 3.00, 2000 cached at 0.30, 300 written at 3.75, 40 out at 15.00 per million
    assert cost_of(PRICING, u) == pytest.approx((100 * 3.0 + 2000 * 0.30 + 300 * 3.75 + 40 * 15.0) / 1e6)


@pytest.mark.parametrize("stop_reason,finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("pause_turn", "stop"), ("model_context_window_exceeded", "length"), (None, "stop"),
])
def test_stop_reason_mapping(stop_reason, finish):
    adapter, call = make({"messages": [msg("user", "hi")]})
    assert adapter.parse_result({"content": [], "stop_reason": stop_reason, "usage": {}}, call).finish_reason == finish


def test_usage_without_cache_fields():
    assert AnthropicAdapter.usage_from({"input_tokens": 12, "output_tokens": 3}) == TokenUsage(input_tokens=12, output_tokens=3)
    assert AnthropicAdapter.usage_from(None) == TokenUsage()


# ------------------------------------------------------------------ streaming


def sse_lines(events: list[dict]) -> list[str]:
    lines: list[str] = []
    for e in events:
        lines += [f"event: {e['type']}", f"data: {json.dumps(e)}", ""]
    return lines


def _stream_events(tool_args: str = '{"city": "Paris"}') -> list[dict]:
    return [
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-x",
                                              "stop_reason": None, "usage": {"input_tokens": 100, "cache_read_input_tokens": 2000,
                                                                             "cache_creation_input_tokens": 300, "output_tokens": 1}}},
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": tool_args[:9]}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": tool_args[9:]}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 42}},
        {"type": "message_stop"},
    ]


def test_stream_text_tool_fragments_and_exact_final_usage():
    adapter, call = make({"messages": [msg("user", "hi")], "stream": True}, tools=[WEATHER])
    deltas = list(adapter.parse_stream(sse_lines(_stream_events()), call))
    assert "".join(d.text or "" for d in deltas) == "Let me check."
    fragments = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert fragments[0] == {"index": 0, "id": "toolu_1", "function": {"name": "get_weather", "arguments": ""}}
    assert "".join(f["function"].get("arguments", "") for f in fragments if f["index"] == 0) == '{"city": "Paris"}'
    assert fragments[-2] == {"index": 1, "id": "toolu_2", "function": {"name": "now", "arguments": ""}}
    assert fragments[-1] == {"index": 1, "function": {"arguments": "{}"}}  # no-argument call is still an object
    last = deltas[-1]
    assert last.finish_reason == "tool_calls"
    assert last.usage == TokenUsage(input_tokens=2400, output_tokens=42, cached_input_tokens=2000, cache_write_tokens=300)
    assert all(d.finish_reason is None for d in deltas[:-1])


def test_message_delta_cumulative_usage_overrides_message_start():
    adapter, call = make({"messages": [msg("user", "hi")]})
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
         "usage": {"input_tokens": 7, "cache_read_input_tokens": 3, "output_tokens": 10}},
        {"type": "message_stop"},
    ]
    last = list(adapter.parse_stream(sse_lines(events), call))[-1]
    assert last.finish_reason == "length" and last.usage == TokenUsage(input_tokens=10, output_tokens=10, cached_input_tokens=3)


@pytest.mark.parametrize("etype,code", [("overloaded_error", "provider_error"), ("api_error", "provider_error"), ("rate_limit_error", "rate_limited")])
def test_error_event_mid_stream(etype, code):
    adapter, call = make({"messages": [msg("user", "hi")]})
    events = _stream_events()[:5] + [{"type": "error", "error": {"type": etype, "message": "Overloaded sk-ant-api03-secretsecretsecret"}}]
    seen: list = []
    with pytest.raises(GatewayError) as err:
        for d in adapter.parse_stream(sse_lines(events), call):
            seen.append(d)
    assert err.value.code == code and err.value.provider == "anthropic"
    assert "mid-stream" in err.value.detail and etype in err.value.detail and "Overloaded" in err.value.detail
    assert "".join(d.text or "" for d in seen) == "Let me "
    assert "secretsecret" not in err.value.detail


def test_stream_cut_before_message_stop_is_an_error():
    adapter, call = make({"messages": [msg("user", "hi")]})
    with pytest.raises(GatewayError) as err:
        list(adapter.parse_stream(sse_lines(_stream_events()[:-2]), call))
    assert err.value.code == "provider_error" and "before it was complete" in err.value.detail


def test_stream_past_the_total_deadline_is_a_timeout():
    adapter, call = make({"messages": [msg("user", "hi")]})
    call.deadline = Deadline(ttft_s=0.0, total_s=0.0)
    with pytest.raises(GatewayError) as err:
        list(adapter.parse_stream(sse_lines(_stream_events()), call))
    assert err.value.code == "provider_timeout"


@pytest.mark.parametrize("data", ["data: {not json", "data: [1, 2]", 'data: {"type": "ping"} trailing'])
def test_malformed_stream_event(data):
    adapter, call = make({"messages": [msg("user", "hi")]})
    with pytest.raises(GatewayError) as err:
        list(adapter.parse_stream(["event: message_start", data, ""], call))
    assert err.value.code == "provider_error" and "malformed" in err.value.detail


def test_data_field_without_space_is_accepted():
    adapter, call = make({"messages": [msg("user", "hi")]})
    lines = ['data:{"type":"message_start","message":{"usage":{"input_tokens":2,"output_tokens":1}}}',
             'data:{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}}',
             'data:{"type":"message_stop"}']
    deltas = list(adapter.parse_stream(lines, call))
    assert deltas[0].text == "ok" and deltas[-1].usage.input_tokens == 2


# ------------------------------------------------------------------ errors


def _resp(status: int, etype: str, message: str, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, json={"type": "error", "error": {"type": etype, "message": message}}, headers=headers or {})


@pytest.mark.parametrize("status,etype,message,code,retry", [
    (401, "authentication_error", "invalid x-api-key", "provider_error", None),
    (403, "permission_error", "Your API key does not have permission to use the specified resource.", "provider_error", None),
    (404, "not_found_error", "model: claude-nope", "provider_error", None),
    (429, "rate_limit_error", "Number of requests has exceeded your per-minute rate limit", "rate_limited", 7.0),
    (500, "api_error", "Internal server error", "provider_error", 7.0),
    (529, "overloaded_error", "Overloaded", "provider_error", 7.0),
    (400, "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum", "validation_error", None),
    (400, "invalid_request_error", "messages.0.content: Field required", "provider_error", None),
])
def test_error_mapping(status, etype, message, code, retry):
    adapter, _ = make({"messages": [msg("user", "hi")]})
    with pytest.raises(GatewayError) as err:
        adapter.raise_for_error(_resp(status, etype, message, {"retry-after": "7"}))
    e = err.value
    assert e.code == code and e.provider == "anthropic" and message in e.detail
    assert e.retry_after_s == retry
    assert e.extra.get("provider_status") == status


def test_error_messages_never_carry_credentials():
    adapter, _ = make({"messages": [msg("user", "hi")]})
    with pytest.raises(GatewayError) as err:
        adapter.raise_for_error(_resp(401, "authentication_error", "invalid x-api-key sk-ant-api03-secretsecretsecret"))
    assert "secretsecret" not in err.value.detail and "[redacted]" in err.value.detail


def test_non_json_error_body():
    adapter, _ = make({"messages": [msg("user", "hi")]})
    with pytest.raises(GatewayError) as err:
        adapter.raise_for_error(httpx.Response(502, text="<html>Bad gateway</html>"))
    assert err.value.code == "provider_error" and "502" in err.value.detail
