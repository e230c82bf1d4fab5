"""Gemini adapter translation, without a network: request bodies, schema subset, answers, streams, usage, errors."""

from __future__ import annotations

import json

import httpx
import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.outbound.client import OutboundClient
from llm_gateway.providers.base import Deadline, ProviderCall
from llm_gateway.providers.gemini import GeminiAdapter, split_tool_call_id, to_gemini_schema, usage_from
from llm_gateway.registry.catalog import ModelSpec, ProviderSpec, cost_of

PRICING = {"input_per_mtok": 0.30, "output_per_mtok": 2.50, "cached_input_per_mtok": 0.075}
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}}


def text(t: str) -> list[dict]:
    return [{"type": "text", "text": t}]


def msg(role: str, t: str) -> dict:
    return {"role": role, "content": text(t)}


def tool_call(cid: str, name: str, args: dict) -> dict:
    return {"type": "tool_call", "tool_call": {"id": cid, "name": name, "arguments": args}}


def tool_result(cid: str, content: str) -> dict:
    return {"type": "tool_result", "tool_result": {"tool_call_id": cid, "content": content}}


def make(payload: dict, *, tools: list | None = None, options: dict | None = None, extra: dict | None = None,
         request_id: str = "req_unit") -> tuple[GeminiAdapter, ProviderCall]:
    provider = ProviderSpec(id="gemini", kind="gemini", base_url="http://127.0.0.1:9/v1beta", credential={"env": "UNIT_GEMINI_KEY"})
    model = ModelSpec(id="gemini::gemini-x", provider=provider, provider_model="gemini-x",
                      capabilities=frozenset({"chat", "stream", "tools", "structured_output", "vision", "documents"}),
                      lifecycle="production", pricing=PRICING, options=options or {})
    request = ChatRequest.model_validate({"model": "gemini::gemini-x", **payload})
    call = ProviderCall(request=request, model=model, deadline=Deadline(10, 10), tools=tools or [], extra=extra or {},
                        request_id=request_id)
    return GeminiAdapter(provider, OutboundClient(httpx.Client())), call


def body_for(payload: dict, **kw) -> dict:
    adapter, call = make(payload, **kw)
    adapter.check(call)
    return adapter.build_body(call)


def raises(code: str, fn, *args, **kw) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        fn(*args, **kw)
    assert info.value.code == code, info.value.detail
    return info.value


# ---------------------------------------------------------------- request: roles, system, parts


def test_system_instruction_roles_and_merged_turns():
    body = body_for({"messages": [
        msg("system", "Be brief."), msg("user", "Hi"), msg("assistant", "Hello"), msg("system", "No emojis."),
        msg("user", "One"), msg("user", "Two"),
    ]})
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "No emojis."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello"}]},
        {"role": "user", "parts": [{"text": "One"}, {"text": "Two"}]},
    ]
    assert "generationConfig" not in body and "tools" not in body


def test_only_system_messages_is_a_validation_error():
    adapter, call = make({"messages": [msg("system", "x")]})
    err = raises("validation_error", adapter.build_body, call)
    assert err.errors[0]["path"] == "messages"


def test_generation_parameters():
    body = body_for({"messages": [msg("user", "x")], "max_tokens": 64, "temperature": 0.0, "top_p": 0.5, "seed": 3, "stop": "END"})
    assert body["generationConfig"] == {"maxOutputTokens": 64, "temperature": 0.0, "topP": 0.5, "seed": 3, "stopSequences": ["END"]}
    adapter, call = make({"messages": [msg("user", "x")], "stop": ["a", "b", "c", "d", "e", "f"]})
    assert raises("validation_error", adapter.build_body, call).errors[0]["path"] == "stop"


def test_media_parts_inline_file_and_refused():
    extra = {"media": {"https://example.com/cat": {"data": "aGVsbG8=", "media_type": "image/jpeg", "size": 5}}}
    body = body_for({"messages": [{"role": "user", "content": [
        {"type": "image", "url": "https://example.com/cat"},
        {"type": "audio", "url": "data:audio/wav;base64,UklGRg=="},
        {"type": "document", "url": "gs://bucket/a.pdf"},
        {"type": "video", "url": "https://generativelanguage.googleapis.com/v1beta/files/abc-123"},
        {"type": "video", "url": "https://www.youtube.com/watch?v=9hE5-98ZeCg"},
    ]}]}, extra=extra)
    assert body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/jpeg", "data": "aGVsbG8="}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"fileData": {"fileUri": "gs://bucket/a.pdf", "mimeType": "application/pdf"}},
        {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc-123"}},
        {"fileData": {"fileUri": "https://www.youtube.com/watch?v=9hE5-98ZeCg"}},
    ]
    adapter, call = make({"messages": [{"role": "user", "content": [{"type": "image", "url": "https://example.com/cat.png"}]}]})
    err = raises("capability_not_supported", adapter.check, call)
    assert "inline bytes" in err.detail and err.provider == "gemini"


# ---------------------------------------------------------------- request: tools


def test_function_call_and_response_pairing_by_name():
    body = body_for({"messages": [
        msg("user", "Weather in Paris and Rome?"),
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, tool_call("c1", "get_weather", {"city": "Paris"}),
                                          tool_call("c2", "get_weather", {"city": "Rome"})]},
        {"role": "tool", "content": [tool_result("c2", "rainy"), tool_result("c1", '{"temp": 20}')]},
        msg("user", "Thanks, and?"),
    ]}, tools=[WEATHER])
    assert body["contents"][1] == {"role": "model", "parts": [
        {"text": "Checking."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
    ]}
    assert body["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"result": "rainy"}}},
        {"functionResponse": {"name": "get_weather", "response": {"temp": 20}}},
        {"text": "Thanks, and?"},
    ]}


def test_tool_result_for_unknown_call_is_a_validation_error():
    adapter, call = make({"messages": [msg("user", "x"), {"role": "tool", "content": [tool_result("ghost", "1")]}]})
    err = raises("validation_error", adapter.build_body, call)
    assert err.errors == [{"path": "messages[1].content[0].tool_result.tool_call_id", "message": err.errors[0]["message"]}]
    assert "ghost" in err.detail


def test_thought_signature_rides_in_the_tool_call_id():
    assert split_tool_call_id("call_abc~sig~U0lH+/==") == ("call_abc", "U0lH+/==")
    assert split_tool_call_id("toolu_01") == ("toolu_01", None)
    body = body_for({"messages": [msg("user", "x"), {"role": "assistant", "content": [tool_call("call_abc~sig~U0lH", "f", {})]},
                                  {"role": "tool", "content": [tool_result("call_abc~sig~U0lH", "ok")]}]})
    assert body["contents"][1]["parts"] == [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "U0lH"}]
    assert body["contents"][2]["parts"] == [{"functionResponse": {"name": "f", "response": {"result": "ok"}}}]


@pytest.mark.parametrize("choice,config", [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ({"type": "tool", "name": "get_weather"}, {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
])
def test_tools_and_tool_choice(choice, config):
    body = body_for({"messages": [msg("user", "x")], "tool_choice": choice}, tools=[WEATHER, {"name": "ping", "description": "", "parameters": {"type": "object"}}])
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather for a city",
         "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}},
        {"name": "ping"},  # no properties: no parameters (Gemini rejects an empty OBJECT)
    ]}]
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_named_tool_choice_must_be_offered_and_tool_schema_must_be_object():
    adapter, call = make({"messages": [msg("user", "x")], "tool_choice": {"type": "tool", "name": "nope"}}, tools=[WEATHER])
    assert raises("validation_error", adapter.build_body, call).errors[0]["path"] == "tool_choice.name"
    adapter, call = make({"messages": [msg("user", "x")]}, tools=[{"name": "f", "description": "", "parameters": {"type": "string"}}])
    assert raises("validation_error", adapter.build_body, call).errors[0]["path"] == "tools[0].parameters"


def test_tool_schema_errors_name_the_tool_path():
    bad = {"name": "f", "description": "", "parameters": {"type": "object", "properties": {"x": {"$ref": "#/$defs/X"}}}}
    adapter, call = make({"messages": [msg("user", "x")]}, tools=[WEATHER, bad])
    err = raises("validation_error", adapter.build_body, call)
    assert err.errors[0]["path"] == "tools[1].parameters.properties.x.$ref" and "resolved" in err.detail


def test_structured_output_and_native_json_schema_mode():
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "properties": {"b": {"type": "string"}, "a": {"type": "integer"}}, "required": ["a"], "additionalProperties": False}
    body = body_for({"messages": [msg("user", "x")], "response_schema": {"json_schema": schema}})
    assert body["generationConfig"] == {"responseMimeType": "application/json", "responseSchema": {
        "type": "OBJECT", "properties": {"b": {"type": "STRING"}, "a": {"type": "INTEGER"}}, "propertyOrdering": ["b", "a"], "required": ["a"]}}
    native = body_for({"messages": [msg("user", "x")], "response_schema": {"json_schema": schema}}, tools=[WEATHER],
                      options={"schema_mode": "json_schema", "tools_with_structured_output": True})
    assert native["generationConfig"]["responseJsonSchema"] == {k: v for k, v in schema.items() if k != "$schema"}
    assert native["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == WEATHER["parameters"]
    adapter, call = make({"messages": [msg("user", "x")], "response_schema": {"json_schema": schema}}, tools=[WEATHER])
    assert "tools with response_schema" in raises("capability_not_supported", adapter.build_body, call).detail


# ---------------------------------------------------------------- schema subset


def test_schema_conversion_rules():
    schema = {
        "$schema": "x", "$id": "y", "$defs": {"unused": {"type": "string"}}, "title": "T", "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": ["string", "null"], "format": "email", "minLength": 1},
            "kind": {"const": "a"},
            "color": {"enum": ["red", None]},
            "when": {"type": "string", "format": "date-time"},
            "n": {"anyOf": [{"type": "integer", "exclusiveMinimum": 0}, {"type": "null"}]},
            "x": {"oneOf": [{"type": "string"}, {"type": "number", "format": "double", "multipleOf": 2}]},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "maxItems": 3},
            "both": {"type": ["string", "integer"], "description": "either"},
            "merged": {"allOf": [{"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]},
                                 {"properties": {"b": {"type": "number"}}, "required": ["b"]}]},
            "ex": {"type": "number", "examples": [1.5], "exclusiveMaximum": 9.5},
        },
    }
    out = to_gemini_schema(schema)
    p = out["properties"]
    assert out["type"] == "OBJECT" and out["title"] == "T" and "additionalProperties" not in out and "$defs" not in out
    assert p["name"] == {"type": "STRING", "minLength": 1, "nullable": True}
    assert p["kind"] == {"type": "STRING", "enum": ["a"]}
    assert p["color"] == {"type": "STRING", "enum": ["red"], "nullable": True}
    assert p["when"] == {"type": "STRING", "format": "date-time"}
    assert p["n"] == {"type": "INTEGER", "minimum": 1, "nullable": True}
    assert p["x"] == {"anyOf": [{"type": "STRING"}, {"type": "NUMBER", "format": "double"}]}
    assert p["tags"] == {"type": "ARRAY", "maxItems": 3, "items": {"type": "STRING"}}
    assert p["both"] == {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}], "description": "either"}
    assert p["merged"] == {"type": "OBJECT", "properties": {"a": {"type": "BOOLEAN"}, "b": {"type": "NUMBER"}},
                           "propertyOrdering": ["a", "b"], "required": ["a", "b"]}
    assert p["ex"] == {"type": "NUMBER", "example": 1.5, "maximum": 9.5}
    assert out["propertyOrdering"] == list(schema["properties"])


@pytest.mark.parametrize("schema,path,needle", [
    ({"$ref": "#/$defs/A"}, "$.$ref", "resolved"),
    ({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}, "$.properties.a.not", "'not'"),
    ({"type": "object", "if": {}, "then": {}}, "$.if", "if/then/else"),
    ({"type": "object", "patternProperties": {"^x": {"type": "string"}}}, "$.patternProperties", "patternProperties"),
    ({"type": "array", "prefixItems": [{"type": "string"}]}, "$.prefixItems", "tuple"),
    ({"type": "array", "items": [{"type": "string"}]}, "$.items", "tuple"),
    ({"type": "integer", "enum": [1, 2]}, "$.enum", "string"),
    ({"const": 3}, "$.const", "string"),
    ({"type": "object", "properties": {"any": {}}}, "$.properties.any", "any value"),
    ({"type": "array", "items": True}, "$.items", "any value"),
    ({"description": "no type"}, "$", "without a type"),
    ({"type": "date"}, "$.type", "unknown type"),
    ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "$.allOf[1].type", "conflicts"),
])
def test_schema_the_subset_cannot_express_is_a_validation_error(schema, path, needle):
    err = raises("validation_error", to_gemini_schema, schema)
    assert err.errors[0]["path"] == path and needle in err.detail


# ---------------------------------------------------------------- responses


def test_parse_text_skips_thoughts_and_maps_usage_and_cost():
    adapter, call = make({"messages": [msg("user", "x")]})
    result = adapter.parse_result({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "plan...", "thought": True}, {"text": "Hello "}, {"text": "there."}]},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 1000, "cachedContentTokenCount": 800, "candidatesTokenCount": 20,
                          "thoughtsTokenCount": 30, "totalTokenCount": 1050},
        "responseId": "r1",
    }, call)
    assert result.content == [{"type": "text", "text": "Hello there."}] and result.tool_calls == []
    assert result.finish_reason == "stop" and result.provider_response_id == "r1"
    u = result.usage
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens, u.reasoning_tokens) == (1000, 800, 50, 30)
    assert cost_of(PRICING, u) == pytest.approx((200 * 0.30 + 800 * 0.075 + 50 * 2.50) / 1e6)


def test_usage_mapping_edge_cases():
    assert usage_from(None).input_tokens == 0
    u = usage_from({"promptTokenCount": 10, "toolUsePromptTokenCount": 5, "totalTokenCount": 15})
    assert (u.input_tokens, u.output_tokens, u.cached_input_tokens, u.reasoning_tokens) == (15, 0, 0, 0)


def test_parse_function_calls_ids_and_signature():
    adapter, call = make({"messages": [msg("user", "x")]}, tools=[WEATHER])
    data = {"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "U0lH"},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}, "id": "fc-2"}},
    ]}, "finishReason": "STOP"}]}
    result = adapter.parse_result(data, call)
    assert result.finish_reason == "tool_calls"
    first, second = result.tool_calls
    assert first["id"].startswith("call_") and first["id"].endswith("~sig~U0lH") and first["arguments"] == {"city": "Paris"}
    assert second == {"id": "fc-2", "name": "get_weather", "arguments": {"city": "Rome"}}
    assert adapter.parse_result(data, call).tool_calls == result.tool_calls  # deterministic per request


@pytest.mark.parametrize("reason,finish", [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("OTHER", "stop"), (None, "stop"),
])
def test_finish_reasons(reason, finish):
    adapter, call = make({"messages": [msg("user", "x")]})
    cand = {"content": {"parts": [{"text": "t"}]}}
    if reason:
        cand["finishReason"] = reason
    assert adapter.parse_result({"candidates": [cand]}, call).finish_reason == finish


def test_prompt_block_malformed_call_and_empty_answers():
    adapter, call = make({"messages": [msg("user", "x")]})
    blocked = adapter.parse_result({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}}, call)
    assert (blocked.finish_reason, blocked.content, blocked.usage.input_tokens) == ("content_filter", [], 4)
    err = raises("provider_error", adapter.parse_result,
                 {"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "finishMessage": "bad call"}]}, call)
    assert "MALFORMED_FUNCTION_CALL" in err.detail and "bad call" in err.detail
    raises("provider_error", adapter.parse_result, {"candidates": []}, call)


# ---------------------------------------------------------------- streams


def sse(*chunks: dict) -> list[str]:
    lines: list[str] = []
    for c in chunks:
        lines += [f"data: {json.dumps(c)}", ""]
    return lines


def test_stream_text_tool_calls_and_exact_final_usage():
    adapter, call = make({"messages": [msg("user", "x")]}, tools=[WEATHER])
    deltas = list(adapter.parse_stream(sse(
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "hmm", "thought": True}]}}], "usageMetadata": {"promptTokenCount": 9}},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me "}]}}], "usageMetadata": {"promptTokenCount": 9}},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "check."}]}}], "usageMetadata": {"promptTokenCount": 9}},
        {"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]}, "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 14, "thoughtsTokenCount": 6, "cachedContentTokenCount": 4}},
    ), call))
    assert [d.text for d in deltas[:2]] == ["Let me ", "check."]
    calls = deltas[2].tool_calls
    assert [c["index"] for c in calls] == [0, 1]
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'} and calls[0]["id"].startswith("call_")
    last = deltas[-1]
    assert last.finish_reason == "tool_calls"
    u = last.usage
    assert (u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cached_input_tokens) == (9, 20, 6, 4)
    # the streamed ids are the buffered ones for the same request
    buffered = adapter.parse_result({"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]}, "finishReason": "STOP"}]}, call)
    assert buffered.tool_calls[0]["id"] == calls[0]["id"]


def test_stream_without_finish_error_line_and_malformed_chunk():
    adapter, call = make({"messages": [msg("user", "x")]})
    cut = adapter.parse_stream(sse({"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]}), call)
    assert next(cut).text == "Hi"
    assert "before it was complete" in raises("provider_error", next, cut).detail
    err = raises("rate_limited", list, adapter.parse_stream(
        sse({"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}), call))
    assert err.retry_after_s == 1.0
    raises("provider_error", list, adapter.parse_stream(["data: {not json", ""], call))
    blocked = list(adapter.parse_stream(sse({"promptFeedback": {"blockReason": "OTHER"}, "usageMetadata": {"promptTokenCount": 3}}), call))
    assert blocked[-1].finish_reason == "content_filter" and blocked[-1].usage.input_tokens == 3


# ---------------------------------------------------------------- errors


def gerr(code: int, status: str, message: str, details: list | None = None) -> str:
    e = {"code": code, "message": message, "status": status}
    if details:
        e["details"] = details
    return json.dumps({"error": e})


@pytest.mark.parametrize("status,body,code,needle", [
    (429, gerr(429, "RESOURCE_EXHAUSTED", "quota", [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]),
     "rate_limited", "RESOURCE_EXHAUSTED: quota"),
    (400, gerr(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
               [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]), "provider_error", "credentials"),
    (401, gerr(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."), "provider_error", "credentials"),
    (403, gerr(403, "PERMISSION_DENIED", "The caller does not have permission"), "provider_error", "credentials"),
    (400, gerr(400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."),
     "validation_error", "exceeds model context"),
    (400, gerr(400, "INVALID_ARGUMENT", "Request contains an invalid argument."), "provider_error", "HTTP 400"),
    (500, gerr(500, "INTERNAL", "An internal error has occurred."), "provider_error", "INTERNAL"),
    (503, gerr(503, "UNAVAILABLE", "The model is overloaded. Please try again later."), "provider_error", "overloaded"),
    (504, gerr(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."), "provider_timeout", "DEADLINE_EXCEEDED"),
    (502, "<html>Bad Gateway</html>", "provider_error", "Bad Gateway"),
])
def test_error_mapping(status, body, code, needle):
    adapter, _ = make({"messages": [msg("user", "x")]})
    err = adapter.error_from(status, body, httpx.Headers())
    assert err.code == code and needle in err.detail and err.provider == "gemini"
    if code == "rate_limited":
        assert err.retry_after_s == 37


def test_error_array_body_header_retry_after_and_key_redaction():
    adapter, _ = make({"messages": [msg("user", "x")]})
    body = json.dumps([{"error": {"code": 429, "message": "slow down, key AIzaSyA1234567890abcdefghijklmnop", "status": "RESOURCE_EXHAUSTED"}}])
    err = adapter.error_from(429, body, httpx.Headers({"retry-after": "3"}))
    assert err.retry_after_s == 3 and "AIzaSy" not in err.detail and "[redacted]" in err.detail


def test_key_goes_in_x_goog_api_key(monkeypatch):
    from llm_gateway.outbound import credentials

    credentials.clear_cache()
    monkeypatch.setenv("UNIT_GEMINI_KEY", "AIza-unit-key")
    adapter, call = make({"messages": [msg("user", "x")]})
    assert adapter.headers() == {"Content-Type": "application/json", "x-goog-api-key": "AIza-unit-key"}
    assert adapter._url(call, stream=False) == "http://127.0.0.1:9/v1beta/models/gemini-x:generateContent"
    assert adapter._url(call, stream=True) == "http://127.0.0.1:9/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    credentials.clear_cache()
