"""Bedrock adapter translation details: request shape, answers, stream events, usage, errors.

No network: `build_request`, `parse_result` and `parse_stream` are pure; errors are botocore's
own exception objects. The end-to-end path through botocore and a fake endpoint is in
tests/integration/test_bedrock.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.providers.base import Deadline, ProviderCall
from llm_gateway.providers.bedrock import ANSWER_TOOL, BedrockAdapter, _timeout_key
from llm_gateway.registry.catalog import Catalog
from tests.fakes.bedrock import decode_frames, encode_frame, event_frame, exception_frame

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


def _catalog(model_options: dict[str, Any] | None = None, provider_options: dict[str, Any] | None = None) -> Catalog:
    return Catalog({
        "providers": [{"id": "bedrock", "kind": "bedrock", "base_url": None, "region": "eu-west-1",
                       "credential": {"aws": True}, "options": provider_options or {}}],
        "models": [{"id": f"bedrock::{MODEL}", "capabilities": ["chat", "stream", "tools", "structured_output", "vision",
                                                                 "documents", "video_in", "audio_in"],
                    "options": model_options or {}}],
    })


def make(payload: dict[str, Any], *, tools: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None,
         model_options: dict[str, Any] | None = None, provider_options: dict[str, Any] | None = None
         ) -> tuple[BedrockAdapter, ProviderCall]:
    model = _catalog(model_options, provider_options).lookup(f"bedrock::{MODEL}")
    assert model is not None
    request = ChatRequest.model_validate({"model": model.id, **payload})
    call = ProviderCall(request=request, model=model, deadline=Deadline(ttft_s=5, total_s=10), tools=tools or [],
                        extra=extra or {})
    return BedrockAdapter(model.provider, None), call


def text(role: str, t: str) -> dict[str, Any]:
    return {"role": role, "content": [{"type": "text", "text": t}]}


WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


# ---------------------------------------------------------------- request translation


def test_system_roles_merge_and_inference_config():
    adapter, call = make({
        "messages": [text("system", "Be brief."), text("user", "Hi"), text("user", "there"), text("system", "Use English."),
                     text("assistant", "Hello!"), text("user", "Bye")],
        "max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "stop": ["\n\n", "END"], "seed": 7,
    })
    params = adapter.build_request(call)
    assert params["modelId"] == MODEL
    assert params["system"] == [{"text": "Be brief."}, {"text": "Use English."}]
    assert params["messages"] == [
        {"role": "user", "content": [{"text": "Hi"}, {"text": "there"}]},
        {"role": "assistant", "content": [{"text": "Hello!"}]},
        {"role": "user", "content": [{"text": "Bye"}]},
    ]
    assert params["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["\n\n", "END"]}
    assert "toolConfig" not in params and "outputConfig" not in params
    assert "seed" not in json.dumps(params)  # Converse has no seed field


def test_tool_round_trip_history_becomes_tool_use_and_tool_result_blocks():
    adapter, call = make({
        "messages": [
            text("user", "Weather in Paris?"),
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_call", "tool_call": {"id": "tooluse_1", "name": "get_weather", "arguments": {"city": "Paris"}}},
                {"type": "tool_call", "tool_call": {"id": "tooluse_2", "name": "get_weather", "arguments": {"city": "Lyon"}}},
            ]},
            {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "tooluse_1", "content": "18C"}}]},
            {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "tooluse_2", "content": "21C"}}]},
            text("user", "And tomorrow?"),
        ],
        "tool_choice": "auto",
    }, tools=[WEATHER])
    params = adapter.build_request(call)
    assert params["messages"][1] == {"role": "assistant", "content": [
        {"text": "Checking."},
        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
        {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {"city": "Lyon"}}},
    ]}
    # both results and the next question in ONE user message, results first
    assert params["messages"][2] == {"role": "user", "content": [
        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C"}]}},
        {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "21C"}]}},
        {"text": "And tomorrow?"},
    ]}
    assert params["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "Weather for a city",
                                "inputSchema": {"json": WEATHER["parameters"]}}}],
        "toolChoice": {"auto": {}},
    }


@pytest.mark.parametrize("choice,expected", [
    (None, None), ("auto", {"auto": {}}), ("required", {"any": {}}),
    ({"type": "tool", "name": "get_weather"}, {"tool": {"name": "get_weather"}}),
])
def test_tool_choice(choice, expected):
    payload: dict[str, Any] = {"messages": [text("user", "x")]}
    if choice is not None:
        payload["tool_choice"] = choice
    adapter, call = make(payload, tools=[WEATHER])
    cfg = adapter.build_request(call)["toolConfig"]
    assert cfg.get("toolChoice") == expected


def test_tool_choice_none_does_not_offer_tools_unless_history_needs_a_tool_config():
    adapter, call = make({"messages": [text("user", "x")], "tool_choice": "none"}, tools=[WEATHER])
    assert "toolConfig" not in adapter.build_request(call)
    history = [text("user", "x"),
               {"role": "assistant", "content": [{"type": "tool_call", "tool_call": {"id": "t1", "name": "get_weather", "arguments": {}}}]},
               {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "t1", "content": "ok"}}]}]
    adapter, call = make({"messages": history, "tool_choice": "none"}, tools=[WEATHER])
    cfg = adapter.build_request(call)["toolConfig"]
    assert [t["toolSpec"]["name"] for t in cfg["tools"]] == ["get_weather"] and "toolChoice" not in cfg
    # no tools in the request, but tool blocks in the history: Bedrock needs a toolConfig anyway
    adapter, call = make({"messages": history})
    cfg = adapter.build_request(call)["toolConfig"]
    assert cfg["tools"][0]["toolSpec"]["name"] == "get_weather"
    assert cfg["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object", "properties": {}}}


def test_media_inline_bytes_and_s3_locations():
    png = b"\x89PNG\r\n\x1a\nfake"
    pdf = b"%PDF-1.7 fake"
    adapter, call = make({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Describe"},
        {"type": "image", "url": "https://example.com/cat"},
        {"type": "image", "url": "s3://bucket/tenant/photo.JPG"},
        {"type": "document", "url": "https://example.com/files/Q3 report_final.pdf"},
        {"type": "document", "url": "s3://bucket/tenant/notes.md"},
        {"type": "video", "url": "s3://bucket/tenant/clip.mp4"},
        {"type": "image", "url": "data:image/webp;base64," + base64.b64encode(b"webp").decode()},
    ]}]}, extra={"media": {
        "https://example.com/cat": {"data": base64.b64encode(png).decode(), "media_type": "image/png"},
        "https://example.com/files/Q3 report_final.pdf": {"data": base64.b64encode(pdf).decode(), "media_type": "application/pdf"},
    }}, provider_options={"s3_bucket_owner": "123456789012"})
    blocks = adapter.build_request(call)["messages"][0]["content"]
    assert blocks[0] == {"text": "Describe"}
    assert blocks[1] == {"image": {"format": "png", "source": {"bytes": png}}}
    assert blocks[2] == {"image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/tenant/photo.JPG",
                                                                               "bucketOwner": "123456789012"}}}}
    assert blocks[3] == {"document": {"format": "pdf", "name": "Q3 report final", "source": {"bytes": pdf}}}
    assert blocks[4]["document"]["format"] == "md" and blocks[4]["document"]["name"] == "notes"
    assert blocks[5] == {"video": {"format": "mp4", "source": {"s3Location": {"uri": "s3://bucket/tenant/clip.mp4",
                                                                               "bucketOwner": "123456789012"}}}}
    assert blocks[6] == {"image": {"format": "webp", "source": {"bytes": b"webp"}}}


def test_document_names_are_unique_and_sanitized():
    adapter, call = make({"messages": [{"role": "user", "content": [
        {"type": "document", "url": "s3://b/a/report.pdf"}, {"type": "document", "url": "s3://b/c/report.pdf"},
        {"type": "document", "url": "s3://b/c/%E2%9C%93__weird!!name.txt"}]}]})
    names = [b["document"]["name"] for b in adapter.build_request(call)["messages"][0]["content"]]
    assert names == ["report", "report (2)", "weird name"]


def test_unfetched_url_and_unknown_format_are_capability_errors_before_any_call():
    adapter, call = make({"messages": [{"role": "user", "content": [{"type": "image", "url": "https://example.com/x.png"}]}]})
    with pytest.raises(GatewayError) as e:
        adapter.build_request(call)
    assert e.value.code == "capability_not_supported" and "s3://" in e.value.detail
    adapter, call = make({"messages": [{"role": "user", "content": [{"type": "image", "url": "s3://b/x.tiff"}]}]})
    with pytest.raises(GatewayError) as e:
        adapter.build_request(call)
    assert e.value.code == "capability_not_supported" and "png" in e.value.detail
    adapter, call = make({"messages": [{"role": "system", "content": [{"type": "image", "url": "s3://b/x.png"}]}, text("user", "x")]})
    with pytest.raises(GatewayError) as e:
        adapter.build_request(call)
    assert e.value.code == "capability_not_supported"


SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]}


def test_structured_output_default_is_a_forced_answer_tool():
    adapter, call = make({"messages": [text("user", "Who?")], "response_schema": {"json_schema": SCHEMA}})
    cfg = adapter.build_request(call)["toolConfig"]
    assert cfg["tools"] == [{"toolSpec": {"name": ANSWER_TOOL, "description": cfg["tools"][0]["toolSpec"]["description"],
                                          "inputSchema": {"json": SCHEMA}}}]
    assert cfg["toolChoice"] == {"tool": {"name": ANSWER_TOOL}}
    # with user tools on offer the model must call *a* tool: one of the user's, or the answer
    adapter, call = make({"messages": [text("user", "Who?")], "response_schema": {"json_schema": SCHEMA}}, tools=[WEATHER])
    cfg = adapter.build_request(call)["toolConfig"]
    assert [t["toolSpec"]["name"] for t in cfg["tools"]] == ["get_weather", ANSWER_TOOL] and cfg["toolChoice"] == {"any": {}}


def test_structured_output_non_object_schema_is_wrapped_and_unwrapped():
    schema = {"type": "array", "items": {"type": "string"}}
    adapter, call = make({"messages": [text("user", "List")], "response_schema": {"json_schema": schema}})
    spec = adapter.build_request(call)["toolConfig"]["tools"][0]["toolSpec"]
    assert spec["inputSchema"]["json"] == {"type": "object", "properties": {"value": schema}, "required": ["value"]}
    result = adapter.parse_result({"output": {"message": {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "t", "name": ANSWER_TOOL, "input": {"value": ["a", "b"]}}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 5, "outputTokens": 3}}, call)
    assert result.content == [{"type": "text", "text": '["a","b"]'}] and result.finish_reason == "stop" and not result.tool_calls


def test_structured_output_native_mode_uses_output_config():
    adapter, call = make({"messages": [text("user", "Who?")], "response_schema": {"json_schema": SCHEMA}},
                         model_options={"structured_output": "native"}, extra={"schema_name": "person"})
    params = adapter.build_request(call)
    assert "toolConfig" not in params
    fmt = params["outputConfig"]["textFormat"]
    assert fmt["type"] == "json_schema"
    assert json.loads(fmt["structure"]["jsonSchema"]["schema"]) == SCHEMA and fmt["structure"]["jsonSchema"]["name"] == "person"


def test_request_is_valid_for_botocore_param_validation():
    """The built parameters pass botocore's own validation against the bedrock-runtime model."""
    from botocore.session import get_session
    from botocore.validate import ParamValidator

    model = get_session().get_service_model("bedrock-runtime")
    adapter, call = make({
        "messages": [text("system", "s"), {"role": "user", "content": [{"type": "text", "text": "x"},
                                                                        {"type": "image", "url": "s3://b/i.png"}]},
                     {"role": "assistant", "content": [{"type": "tool_call", "tool_call": {"id": "t1", "name": "get_weather", "arguments": {"city": "P"}}}]},
                     {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "t1", "content": "ok"}}]}],
        "max_tokens": 10, "temperature": 0.5, "stop": "X", "response_schema": {"json_schema": SCHEMA},
    }, tools=[WEATHER], model_options={"additional_request_fields": {"top_k": 5},
                                       "guardrail": {"identifier": "gr-1", "version": 2}})
    params = adapter.build_request(call)
    for op in ("Converse", "ConverseStream"):
        report = ParamValidator().validate(params, model.operation_model(op).input_shape)
        assert not report.has_errors(), report.generate_report()
    assert params["guardrailConfig"] == {"guardrailIdentifier": "gr-1", "guardrailVersion": "2"}
    assert params["additionalModelRequestFields"] == {"top_k": 5}
    native = make({"messages": [text("user", "x")], "response_schema": {"json_schema": SCHEMA}},
                  model_options={"structured_output": "native"})
    report = ParamValidator().validate(native[0].build_request(native[1]), model.operation_model("Converse").input_shape)
    assert not report.has_errors(), report.generate_report()


# ---------------------------------------------------------------- answers


def test_parse_result_text_tools_and_usage():
    adapter, call = make({"messages": [text("user", "x")]}, tools=[WEATHER])
    result = adapter.parse_result({
        "output": {"message": {"role": "assistant", "content": [
            {"text": "Let me check. "}, {"reasoningContent": {"reasoningText": {"text": "hidden"}}},
            {"toolUse": {"toolUseId": "tooluse_abc", "name": "get_weather", "input": {"city": "Paris"}}},
            {"text": "One moment."}]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 100, "outputTokens": 20, "totalTokens": 1620, "cacheReadInputTokens": 1200,
                  "cacheWriteInputTokens": 300},
        "ResponseMetadata": {"RequestId": "rid-1"},
    }, call)
    assert result.content == [{"type": "text", "text": "Let me check. One moment."}]
    assert result.tool_calls == [{"id": "tooluse_abc", "name": "get_weather", "arguments": {"city": "Paris"}}]
    assert result.finish_reason == "tool_calls" and result.provider_response_id == "rid-1"
    u = result.usage
    assert (u.input_tokens, u.output_tokens, u.cached_input_tokens, u.cache_write_tokens) == (1600, 20, 1200, 300)


@pytest.mark.parametrize("raw,expected", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"), ("something_new", "stop"),
])
def test_stop_reasons(raw, expected):
    adapter, call = make({"messages": [text("user", "x")]})
    data = {"output": {"message": {"role": "assistant", "content": [{"text": "a"}]}}, "stopReason": raw, "usage": {}}
    assert adapter.parse_result(data, call).finish_reason == expected


def test_malformed_output_is_a_provider_error():
    adapter, call = make({"messages": [text("user", "x")]})
    with pytest.raises(GatewayError) as e:
        adapter.parse_result({"output": {"message": {"content": []}}, "stopReason": "malformed_tool_use"}, call)
    assert e.value.code == "provider_error" and "malformed_tool_use" in e.value.detail


def test_usage_is_normalized_to_include_the_cache_once():
    usage = BedrockAdapter.usage_from
    assert usage({"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}).input_tokens == 10
    exclusive = usage({"inputTokens": 10, "outputTokens": 5, "totalTokens": 45, "cacheReadInputTokens": 20, "cacheWriteInputTokens": 10})
    assert (exclusive.input_tokens, exclusive.cached_input_tokens, exclusive.cache_write_tokens) == (40, 20, 10)
    # a response whose inputTokens already includes the cache (total = input + output) is not double counted
    inclusive = usage({"inputTokens": 40, "outputTokens": 5, "totalTokens": 45, "cacheReadInputTokens": 20, "cacheWriteInputTokens": 10})
    assert inclusive.input_tokens == 40
    assert usage({"inputTokens": 10, "outputTokens": 5, "cacheReadInputTokens": 3}).input_tokens == 13  # no total: documented semantics
    assert usage(None).input_tokens == 0


# ---------------------------------------------------------------- streaming


def _events(*items: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{name: body} for name, body in items]


def test_stream_text_tool_fragments_finish_and_usage():
    adapter, call = make({"messages": [text("user", "x")]}, tools=[WEATHER])
    events = _events(
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Checking"}}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tu1", "name": "get_weather"}}}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city":'}}}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"Paris"}'}}}),
        ("contentBlockStop", {"contentBlockIndex": 1}),
        ("contentBlockStart", {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tu2", "name": "get_weather"}}}),
        ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{}"}}}),
        ("contentBlockStop", {"contentBlockIndex": 2}),
        ("messageStop", {"stopReason": "tool_use"}),
        ("metadata", {"usage": {"inputTokens": 30, "outputTokens": 12, "totalTokens": 50, "cacheReadInputTokens": 8},
                      "metrics": {"latencyMs": 5}}),
    )
    deltas = list(adapter.parse_stream(events, call))
    assert deltas[0].text == "Checking"
    assert [d.tool_calls for d in deltas[1:5]] == [
        [{"index": 0, "id": "tu1", "function": {"name": "get_weather", "arguments": ""}}],
        [{"index": 0, "function": {"arguments": '{"city":'}}],
        [{"index": 0, "function": {"arguments": '"Paris"}'}}],
        [{"index": 1, "id": "tu2", "function": {"name": "get_weather", "arguments": ""}}],
    ]
    last = deltas[-1]
    assert last.finish_reason == "tool_calls"
    assert (last.usage.input_tokens, last.usage.output_tokens, last.usage.cached_input_tokens) == (38, 12, 8)


def test_stream_structured_answer_is_one_text_delta_identical_to_buffered():
    adapter, call = make({"messages": [text("user", "x")], "response_schema": {"json_schema": SCHEMA}})
    events = _events(
        ("messageStart", {"role": "assistant"}),
        ("contentBlockStart", {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tu", "name": ANSWER_TOOL}}}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"name": "Ada", '}}}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '"age": 36}'}}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "tool_use"}),
        ("metadata", {"usage": {"inputTokens": 3, "outputTokens": 4}}),
    )
    deltas = list(adapter.parse_stream(events, call))
    assert [d.text for d in deltas if d.text] == ['{"name":"Ada","age":36}']
    assert deltas[-1].finish_reason == "stop" and not any(d.tool_calls for d in deltas)
    buffered = adapter.parse_result({"output": {"message": {"content": [
        {"toolUse": {"toolUseId": "tu", "name": ANSWER_TOOL, "input": {"name": "Ada", "age": 36}}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 3, "outputTokens": 4}}, call)
    assert buffered.content[0]["text"] == deltas[0].text


def test_stream_without_message_stop_is_a_provider_error():
    adapter, call = make({"messages": [text("user", "x")]})
    gen = adapter.parse_stream(_events(("messageStart", {"role": "assistant"}),
                                       ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})), call)
    assert next(gen).text == "Hi"
    with pytest.raises(GatewayError) as e:
        next(gen)
    assert e.value.code == "provider_error" and "before it was complete" in e.value.detail


def test_stream_past_total_deadline_is_a_timeout():
    adapter, call = make({"messages": [text("user", "x")]})
    call.deadline = Deadline(ttft_s=0.0, total_s=0.0)
    with pytest.raises(GatewayError) as e:
        list(adapter.parse_stream(_events(("messageStart", {"role": "assistant"})), call))
    assert e.value.code == "provider_timeout"


# ---------------------------------------------------------------- errors


def _client_error(code: str, message: str, status: int, headers: dict[str, str] | None = None):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}}, "Converse")


@pytest.mark.parametrize("code,status,message,expected", [
    ("ThrottlingException", 429, "Too many requests", "rate_limited"),
    ("ServiceQuotaExceededException", 400, "quota", "rate_limited"),
    ("AccessDeniedException", 403, "no access", "provider_error"),
    ("ValidationException", 400, "Input is too long for requested model.", "validation_error"),
    ("ValidationException", 400, "The model returned the following errors: prompt is too long: 210000 tokens > 200000 maximum",
     "validation_error"),
    ("ValidationException", 400, "Malformed input request", "provider_error"),
    ("ModelTimeoutException", 408, "Model has timed out", "provider_timeout"),
    ("ServiceUnavailableException", 503, "unavailable", "provider_error"),
    ("InternalServerException", 500, "boom", "provider_error"),
    ("ModelNotReadyException", 429, "Model is not ready", "provider_error"),
    ("ModelErrorException", 424, "model failed", "provider_error"),
    ("ResourceNotFoundException", 404, "no such model", "provider_error"),
])
def test_client_errors_map_to_design_codes(code, status, message, expected):
    adapter, _ = make({"messages": [text("user", "x")]})
    err = adapter.translate_exception(_client_error(code, message, status))
    assert err.code == expected and err.provider == "bedrock"
    assert code in err.detail and message[:20] in err.detail  # the provider's message is kept
    if expected == "rate_limited":
        assert err.retry_after_s == 1.0


def test_retry_after_header_is_carried_and_credentials_are_redacted():
    adapter, _ = make({"messages": [text("user", "x")]})
    err = adapter.translate_exception(_client_error("ThrottlingException", "slow down", 429, {"retry-after": "7"}))
    assert err.retry_after_s == 7.0
    err = adapter.translate_exception(_client_error("AccessDeniedException", "key AKIAABCDEFGHIJKLMNOP denied", 403))
    assert "AKIA" not in err.detail and "[redacted]" in err.detail


@pytest.mark.parametrize("name,expected", [
    ("throttlingException", "rate_limited"), ("modelStreamErrorException", "provider_error"),
    ("internalServerException", "provider_error"), ("serviceUnavailableException", "provider_error"),
    ("validationException", "provider_error"),
])
def test_stream_exception_events_map(name, expected):
    from botocore.exceptions import EventStreamError

    adapter, _ = make({"messages": [text("user", "x")]})
    err = adapter.translate_exception(EventStreamError({"Error": {"Code": name, "Message": "went wrong"}}, "ConverseStream"))
    assert err.code == expected and "went wrong" in err.detail


def test_transport_errors_map():
    from botocore import exceptions as bx

    adapter, _ = make({"messages": [text("user", "x")]})
    assert adapter.translate_exception(bx.ReadTimeoutError(endpoint_url="http://x")).code == "provider_timeout"
    assert adapter.translate_exception(bx.ConnectTimeoutError(endpoint_url="http://x")).code == "provider_timeout"
    assert adapter.translate_exception(bx.EndpointConnectionError(endpoint_url="http://x")).code == "provider_error"
    err = adapter.translate_exception(bx.NoCredentialsError())
    assert err.code == "provider_error" and "credentials" in err.detail


# ---------------------------------------------------------------- client and timeouts


def test_timeout_keys_share_clients():
    assert _timeout_key(29.9995) == 30.0 and _timeout_key(30.0) == 30.0
    assert _timeout_key(0.31) == 0.4 and _timeout_key(0.0) == 0.1
    assert _timeout_key(119.2) == 120.0


def test_client_is_created_once_per_timeout_and_configured_from_the_catalog(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # ignored: the catalog decides
    model = Catalog({"providers": [{"id": "bedrock", "kind": "bedrock", "base_url": "http://127.0.0.1:9", "region": "eu-west-1",
                                    "credential": {"aws": True}, "options": {"max_pool_connections": 7}}],
                     "models": [{"id": f"bedrock::{MODEL}"}]}).lookup(f"bedrock::{MODEL}")
    adapter = BedrockAdapter(model.provider, None)
    c1 = adapter.client(29.9)
    assert adapter.client(30.0) is c1
    assert adapter.client(10.0) is not c1
    assert c1.meta.region_name == "eu-west-1" and c1.meta.endpoint_url == "http://127.0.0.1:9"
    assert c1.meta.config.read_timeout == 30.0 and c1.meta.config.max_pool_connections == 7
    assert c1.meta.config.retries["total_max_attempts"] == 1


# ---------------------------------------------------------------- the fake's encoder


def test_event_stream_encoder_round_trips_and_botocore_decodes_it():
    from botocore.eventstream import EventStreamBuffer

    frames = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hé"}}) + \
        exception_frame("throttlingException", "slow") + encode_frame({":message-type": "event"}, b"")
    decoded = decode_frames(frames)
    assert decoded[0][0][":event-type"] == "contentBlockDelta"
    assert json.loads(decoded[0][1])["delta"] == {"text": "hé"}
    assert decoded[1][0][":exception-type"] == "throttlingException"
    buf = EventStreamBuffer()
    buf.add_data(frames)
    messages = list(buf)
    assert [m.headers[":message-type"] for m in messages] == ["event", "exception", "event"]
    assert json.loads(messages[1].payload) == {"message": "slow"}


def test_credential_sources_from_the_catalog(monkeypatch, tmp_path):
    """An explicit profile outranks the AWS_* env keys (local mode points those at its emulator);
    env-named keys work too; a missing source is a clear provider_error, never a crash."""
    creds = tmp_path / "credentials"
    creds.write_text("[bedrock-dev]\naws_access_key_id = AKIAPROFILEKEY000000\naws_secret_access_key = profile-secret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))

    def adapter_with(credential: dict[str, Any]) -> BedrockAdapter:
        model = Catalog({"providers": [{"id": "bedrock", "kind": "bedrock", "base_url": "http://127.0.0.1:9", "region": "us-east-1",
                                        "credential": credential}],
                         "models": [{"id": f"bedrock::{MODEL}"}]}).lookup(f"bedrock::{MODEL}")
        return BedrockAdapter(model.provider, None)

    c = adapter_with({"aws": True, "profile": "bedrock-dev"}).client(5)
    assert c._request_signer._credentials.access_key == "AKIAPROFILEKEY000000"  # not the env's "testing"
    monkeypatch.setenv("BEDROCK_KEY", "AKIAENVNAMEDKEY00000")
    monkeypatch.setenv("BEDROCK_SECRET", "s")
    c = adapter_with({"aws": True, "access_key_env": "BEDROCK_KEY", "secret_key_env": "BEDROCK_SECRET"}).client(5)
    assert c._request_signer._credentials.access_key == "AKIAENVNAMEDKEY00000"
    for bad in ({"aws": True, "profile": "nope"}, {"aws": True, "access_key_env": "UNSET_KEY", "secret_key_env": "UNSET_SECRET"}):
        with pytest.raises(GatewayError) as e:
            adapter_with(bad).client(5)
        assert e.value.code == "provider_error" and "AKIA" not in e.value.detail


def test_own_event_stream_decoder_matches_botocore():
    """The adapter decodes frames itself (faster than botocore's EventStream); same events out,
    CRCs checked, exception frames mapped, a truncated stream refused."""
    from botocore.eventstream import EventStream
    from botocore.parsers import EventStreamJSONParser
    from botocore.session import get_session

    from tests.fakes.bedrock import FakeBedrock

    adapter, call = make({"messages": [text("user", "x")]}, tools=[WEATHER])
    fake = FakeBedrock()  # not started: only its frame rendering is used
    from tests.fakes.script import Script

    fake.script(Script(text="Hello there", tool_calls=[{"id": "t1", "name": "get_weather", "arguments": {"city": "P"}}],
                       finish="tool_calls", cached_tokens=3))
    frames = fake.stream_frames({"messages": [{"role": "user", "content": [{"text": "x"}]}]})
    shape = get_session().get_service_model("bedrock-runtime").operation_model("ConverseStream").output_shape.members["stream"]

    class Raw:
        def stream(self):
            return iter(frames)

    ours = list(adapter.decode_events(iter(frames)))
    theirs = list(EventStream(Raw(), shape, EventStreamJSONParser(), "ConverseStream"))
    strip = lambda evs: [{k: {f: v for f, v in body.items() if f != "p"}} for e in evs for k, body in e.items()]  # noqa: E731
    assert strip(ours) == strip(theirs)
    # frames split at arbitrary byte boundaries decode the same
    blob = b"".join(frames)
    assert list(adapter.decode_events(iter([blob[i : i + 7] for i in range(0, len(blob), 7)]))) == ours

    with pytest.raises(GatewayError) as e:
        list(adapter.decode_events(iter([blob[:-3]])))
    assert e.value.code == "provider_error" and "middle of an event" in e.value.detail
    corrupt = bytearray(frames[1])
    corrupt[-6] ^= 0xFF
    with pytest.raises(GatewayError) as e:
        list(adapter.decode_events(iter([frames[0], bytes(corrupt)])))
    assert "corrupt" in e.value.detail
    fake.stream_exception = ("throttlingException", "Slow down.", 2)
    with pytest.raises(GatewayError) as e:
        list(adapter.decode_events(iter(fake.stream_frames({"messages": [{"role": "user", "content": [{"text": "x"}]}]}))))
    assert e.value.code == "rate_limited" and "Slow down." in e.value.detail


def test_non_json_event_payload_is_a_provider_error():
    adapter, _ = make({"messages": [text("user", "x")]})
    bad = encode_frame({":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"}, b"{nope")
    with pytest.raises(GatewayError) as e:
        list(adapter.decode_events(iter([bad])))
    assert e.value.code == "provider_error" and "not JSON" in e.value.detail
    uni = encode_frame({":event-type": "contentBlockDelta", ":message-type": "event"}, json.dumps({"delta": {"text": "é ✓"}}, ensure_ascii=False).encode())
    assert list(adapter.decode_events(iter([uni]))) == [{"contentBlockDelta": {"delta": {"text": "é ✓"}}}]
