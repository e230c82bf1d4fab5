"""The front doors' pure translation functions (`llm_gateway/compat`): requests, responses,
stream frames, errors, extension headers and multipart bodies."""

from __future__ import annotations

import json

import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.api.render import SSE_DONE, sse_data, sse_error
from llm_gateway.compat import anthropic as an
from llm_gateway.compat import openai as oa
from llm_gateway.compat.common import apply_extensions, frame_events, parse_multipart


def native_frames(*, tool: bool = False, error: bool = False) -> list[str]:
    frames = [sse_data({"id": "gen_1", "model": "mock::echo", "delta": {"role": "assistant"}})]
    if tool:
        frames.append(sse_data({"id": "gen_1", "model": "mock::echo", "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": ""}}]}}))
        frames.append(sse_data({"id": "gen_1", "model": "mock::echo", "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": '{"city":'}}]}}))
        frames.append(sse_data({"id": "gen_1", "model": "mock::echo", "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": '"Paris"}'}}]}}))
    else:
        frames += [sse_data({"id": "gen_1", "model": "mock::echo", "delta": {"content": w}}) for w in ("Hello ", "world")]
    if error:
        frames.append(sse_error({"code": "provider_error", "status": 502, "detail": "upstream broke", "instance": "req_1"}))
        return frames
    frames.append(sse_data({"id": "gen_1", "model": "mock::echo", "delta": {}, "finish_reason": "tool_calls" if tool else "stop",
                            "usage": {"input_tokens": 12, "output_tokens": 4, "cached_input_tokens": 2, "reasoning_tokens": 1,
                                      "cost_estimate": 0.0}}))
    frames.append(SSE_DONE)
    return frames


def events(frames) -> list[tuple[str | None, str]]:
    return [e for f in frames for e in frame_events(f)]


# ---------------------------------------------------------------- OpenAI requests


def test_openai_request_maps_every_supported_field_into_a_valid_native_request():
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                                         {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "mp3"}},
                                         {"type": "file", "file": {"file_data": "JVBERi0=", "filename": "a.pdf"}}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                   "function": {"name": "f", "arguments": '{"a": 1}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "two"}]},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "Answer", "schema": {"type": "object"}, "strict": True}},
        "max_tokens": 10, "max_completion_tokens": 20, "temperature": 0.5, "top_p": 0.9, "stop": "END", "seed": 3,
        "user": "u1", "metadata": {"team": "a"}, "stream": True, "stream_options": {"include_usage": True},
        "n": 1, "frequency_penalty": 0, "parallel_tool_calls": False,
    }
    native, stream, include_usage = oa.chat_request(body, {"x-llmgw-conversation-id": "conv-1"})
    assert stream and include_usage
    request = ChatRequest.model_validate(native)  # the native contract accepts it
    assert request.max_tokens == 20 and request.stop == ["END"] and request.seed == 3
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool"]
    user = request.messages[1].content
    assert [p.type for p in user] == ["text", "image", "audio", "document"]
    assert user[2].url == "data:audio/mpeg;base64,UklGRg==" and user[3].url == "data:application/pdf;base64,JVBERi0="
    assert request.messages[2].content[0].tool_call.arguments == {"a": 1}
    assert [p.tool_result.tool_call_id for p in request.messages[3].content] == ["c1", "c2"]  # consecutive tool messages merged
    assert request.tool_choice.name == "f" and request.tools[0].description == ""
    assert request.response_schema.json_schema == {"type": "object", "title": "Answer"}
    assert request.metadata.conversation_id == "conv-1" and request.metadata.model_extra == {"team": "a", "user": "u1"}


@pytest.mark.parametrize("body, param", [
    ({"n": 2}, "n"),
    ({"bogus": True}, "bogus"),
    ({"messages": [{"role": "function", "content": "x", "name": "f"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": "x"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"tool_choice": {"type": "allowed_tools"}}, "tool_choice"),
    ({"model": ""}, "model"),
])
def test_openai_request_refusals_name_the_parameter(body, param):
    full = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    with pytest.raises(GatewayError) as err:
        oa.chat_request(full, {})
    status, obj = oa.error_object(err.value.to_problem())
    assert status == 400 and obj["error"]["param"] == param and obj["error"]["type"] == "invalid_request_error"


def test_openai_json_object_and_text_response_formats():
    native, _, _ = oa.chat_request({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}, {})
    assert native["response_schema"] == {"json_schema": {"type": "object"}}
    native, _, _ = oa.chat_request({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}}, {})
    assert "response_schema" not in native


def test_extension_headers_and_body_extensions():
    native = {"model": "m", "timeout": {"total_ms": 5000}}
    apply_extensions(native, {"x-llmgw-fallback": "a, b ,", "x-llmgw-fallback-strategy": "Parallel", "x-llmgw-timeout-ttft-ms": "700",
                              "x-llmgw-conversation-id": "c9"})
    assert native["fallback"] == {"models": ["a", "b"], "strategy": "parallel"}
    assert native["timeout"] == {"total_ms": 5000, "ttft_ms": 700} and native["metadata"] == {"conversation_id": "c9"}
    for headers in ({"x-llmgw-fallback": " , "}, {"x-llmgw-fallback-strategy": "parallel"}, {"x-llmgw-timeout-total-ms": "0"}):
        with pytest.raises(GatewayError):
            apply_extensions({"model": "m"}, headers)
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "fallback": {"models": ["b"], "strategy": "sequential"}}
    native, _, _ = oa.chat_request(body, {})
    assert native["fallback"] == {"models": ["b"], "strategy": "sequential"}


# ---------------------------------------------------------------- OpenAI responses and streams


def test_openai_response_and_usage():
    native = {"id": "gen_1", "created": 5, "model_used": "mock::echo", "finish_reason": "tool_calls", "content": [],
              "tool_calls": [{"id": "c1", "name": "f", "arguments": {"a": 1}}],
              "usage": {"input_tokens": 10, "output_tokens": 3, "cached_input_tokens": 4, "reasoning_tokens": 2, "cost_estimate": 0.1}}
    body = oa.chat_response(native)
    assert body["object"] == "chat.completion" and body["model"] == "mock::echo" and body["created"] == 5
    message = body["choices"][0]["message"]
    assert message["content"] is None and message["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a":1}'}
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["usage"]["total_tokens"] == 13 and body["usage"]["prompt_tokens_details"]["cached_tokens"] == 4
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 2


def test_openai_stream_frames():
    out = events(oa.chat_stream(iter(native_frames()), include_usage=True))
    assert out[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in out[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "gen_1" and c["model"] == "mock::echo" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello world"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-2]["usage"] is None
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 12 and chunks[-1]["usage"]["completion_tokens"] == 4
    plain = [json.loads(d) for _, d in events(oa.chat_stream(iter(native_frames()), include_usage=False)) if d != "[DONE]"]
    assert all("usage" not in c for c in plain) and plain[-1]["choices"][0]["finish_reason"] == "stop"


def test_openai_stream_tool_calls_and_mid_stream_error():
    chunks = [json.loads(d) for _, d in events(oa.chat_stream(iter(native_frames(tool=True)), False)) if d != "[DONE]"]
    first = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert first == {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": ""}, "type": "function"}
    assert "type" not in chunks[2]["choices"][0]["delta"]["tool_calls"][0]
    out = events(oa.chat_stream(iter(native_frames(error=True)), True))
    assert out[-1][0] == "error" and json.loads(out[-1][1]) == {
        "error": {"message": "upstream broke", "type": "server_error", "param": None, "code": "provider_error"}}
    assert all(d != "[DONE]" for _, d in out)


def test_openai_stream_closes_the_native_generator():
    closed = []

    def frames():
        try:
            yield from native_frames()
        finally:
            closed.append(True)

    stream = oa.chat_stream(frames(), False)
    next(stream)
    stream.close()
    assert closed == [True]


@pytest.mark.parametrize("code, status, etype, ocode", [
    ("unauthorized", 401, "invalid_request_error", "invalid_api_key"),
    ("model_not_found", 404, "invalid_request_error", "model_not_found"),
    ("rate_limited", 429, "requests", "rate_limit_exceeded"),
    ("budget_exceeded", 429, "insufficient_quota", "insufficient_quota"),
    ("request_blocked", 400, "invalid_request_error", "content_policy_violation"),
    ("provider_timeout", 504, "server_error", "timeout"),
    ("internal_error", 500, "server_error", "internal_error"),
])
def test_openai_error_statuses(code, status, etype, ocode):
    got, body = oa.error_object({"code": code, "detail": "why"})
    assert got == status and body == {"error": {"message": "why", "type": etype, "param": "model" if code == "model_not_found" else None, "code": ocode}}


def test_openai_rate_limit_on_tokens():
    _, body = oa.error_object({"code": "rate_limited", "detail": "x", "limit": {"kind": "tokens"}})
    assert body["error"]["type"] == "tokens"


def test_openai_embeddings_images_speech_transcription_translation():
    assert oa.embeddings_request({"model": "e", "input": ["a"], "encoding_format": "base64", "user": "u"}, {}) == {
        "model": "e", "input": ["a"], "encoding_format": "base64"}
    with pytest.raises(GatewayError):
        oa.embeddings_request({"model": "e", "input": [[1, 2]]}, {})
    native, fmt = oa.images_request({"model": "i", "prompt": "cat", "n": 2, "size": "auto", "quality": "hd", "output_format": "png",
                                     "response_format": "b64_json"}, {})
    assert fmt == "b64_json" and native["media"] == {"n": 2, "quality": "hd", "format": "png"}
    speech = oa.speech_request({"model": "t", "input": "hi", "voice": "alloy", "response_format": "wav", "speed": 1.5}, {})
    assert speech["media"] == {"voice": "alloy", "format": "wav", "speed": 1.5}
    tr = oa.transcription_request({"model": "s", "language": "en", "temperature": "0.2"}, "s3://b/k.wav", {})
    assert tr["messages"][0]["content"] == [{"type": "audio", "url": "s3://b/k.wav"}] and tr["media"] == {"language": "en", "temperature": 0.2}
    ctype, body = oa.transcription_response({"content": [{"type": "text", "text": "hi"}], "usage": {"seconds": 1.2}}, "json", None)
    assert ctype == "application/json" and body == {"text": "hi", "usage": {"type": "duration", "seconds": 2}}
    assert oa.transcription_response({"content": [{"type": "text", "text": "hi"}], "usage": {"seconds": 1.5}}, "srt", None)[1] == \
        "1\n00:00:00,000 --> 00:00:01,500\nhi\n\n"


# ---------------------------------------------------------------- Anthropic


def test_anthropic_request_maps_blocks_into_a_valid_native_request():
    body = {
        "model": "claude-sonnet", "max_tokens": 64, "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                {"type": "document", "title": "T", "source": {"type": "text", "media_type": "text/plain", "data": "body"}},
            ]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                                              {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "r"}], "is_error": True},
                                         {"type": "text", "text": "and then?"}]},
        ],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"}, "stop_sequences": ["X"], "temperature": 0.1, "top_k": 5,
        "metadata": {"user_id": "u"}, "stream": True, "thinking": {"type": "disabled"},
    }
    native = an.messages_request(body, {})
    request = ChatRequest.model_validate(native)
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool", "user"]
    assert request.messages[0].content[0].text == "A\n\nB"
    assert [p.type for p in request.messages[1].content] == ["text", "image", "image", "text"]
    assert request.messages[1].content[1].url == "data:image/png;base64,iVBORw==" and request.messages[1].content[3].text == "T\n\nbody"
    assert request.messages[2].content[0].tool_call.arguments == {"a": 1}
    assert request.messages[3].content[0].tool_result.content == "Error: r"
    assert request.tool_choice == "required" and request.stop == ["X"] and request.max_tokens == 64 and request.stream
    assert native["metadata"] == {"user_id": "u"}


@pytest.mark.parametrize("body, fragment", [
    ({"max_tokens": None}, "max_tokens: Field required"),
    ({"bogus": 1}, "bogus: Extra inputs are not permitted"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "server tools"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}, "Files API"),
])
def test_anthropic_request_refusals(body, fragment):
    full = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **body}
    full = {k: v for k, v in full.items() if v is not None}
    with pytest.raises(GatewayError) as err:
        an.messages_request(full, {})
    status, obj = an.error_object(err.value.to_problem())
    assert status == 400 and obj["type"] == "error" and obj["error"]["type"] == "invalid_request_error" and fragment in obj["error"]["message"]


def test_anthropic_response_and_usage_excludes_cache():
    native = {"id": "gen_1", "model_used": "m", "finish_reason": "length", "content": [{"type": "text", "text": "hi"}],
              "tool_calls": [{"id": "t", "name": "f", "arguments": {}}],
              "usage": {"input_tokens": 100, "output_tokens": 5, "cached_input_tokens": 60, "cache_write_tokens": 10}}
    body = an.message_response(native)
    assert body["content"] == [{"type": "text", "text": "hi"}, {"type": "tool_use", "id": "t", "name": "f", "input": {}}]
    assert body["stop_reason"] == "max_tokens"
    assert body["usage"] == {"input_tokens": 30, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 60, "output_tokens": 5}


def test_anthropic_stream_event_sequence_for_text_and_tools():
    out = events(an.message_stream(iter(native_frames())))
    names = [e for e, _ in out]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]
    datas = [json.loads(d) for _, d in out]
    assert all(d["type"] == n for d, (n, _) in zip(datas, out))
    assert datas[3]["delta"] == {"type": "text_delta", "text": "Hello "}
    assert datas[6]["delta"]["stop_reason"] == "end_turn" and datas[6]["usage"]["input_tokens"] == 10
    tool = events(an.message_stream(iter(native_frames(tool=True))))
    assert [e for e, _ in tool] == ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
                                    "content_block_stop", "message_delta", "message_stop"]
    start = json.loads(tool[1][1])
    assert start["content_block"] == {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}
    assert "".join(json.loads(d)["delta"]["partial_json"] for e, d in tool if e == "content_block_delta") == '{"city":"Paris"}'
    assert json.loads(tool[-2][1])["delta"]["stop_reason"] == "tool_use"


def test_anthropic_stream_text_then_tool_opens_a_second_block_and_errors_end_it():
    frames = native_frames()[:2] + native_frames(tool=True)[1:]
    names = [e for e, _ in events(an.message_stream(iter(frames)))]
    assert names.count("content_block_start") == 2 and names.count("content_block_stop") == 2 and names.count("ping") == 1
    out = events(an.message_stream(iter(native_frames(error=True))))
    assert out[-1][0] == "error" and json.loads(out[-1][1]) == {"type": "error", "error": {"type": "api_error", "message": "upstream broke"}}


@pytest.mark.parametrize("code, status, etype", [
    ("unauthorized", 401, "authentication_error"), ("model_not_approved", 403, "permission_error"),
    ("model_not_found", 404, "not_found_error"), ("payload_too_large", 413, "request_too_large"),
    ("rate_limited", 429, "rate_limit_error"), ("budget_exceeded", 402, "billing_error"),
    ("provider_error", 502, "api_error"), ("provider_timeout", 504, "timeout_error"), ("internal_error", 500, "api_error"),
])
def test_anthropic_error_statuses(code, status, etype):
    got, body = an.error_object({"code": code, "detail": "why", "instance": "req_9"})
    assert got == status and body == {"type": "error", "error": {"type": etype, "message": "why"}, "request_id": "req_9"}


# ---------------------------------------------------------------- multipart


def test_multipart_reader():
    boundary = "XyZ"
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n\x00\xff\r\n"
            b"--XyZ--\r\n")
    fields = parse_multipart(body, f"multipart/form-data; boundary={boundary}")
    assert fields["model"][0].text == "whisper-1" and fields["model"][0].filename is None
    upload = fields["file"][0]
    assert upload.filename == "a b.wav" and upload.content_type == "audio/wav" and upload.data == b"RIFF\r\n\x00\xff"
    with pytest.raises(GatewayError) as err:
        parse_multipart(body, "application/json")
    assert err.value.code == "unsupported_media_type"


# ---------------------------------------------------------------- OpenAI files and batches


def test_file_ids_name_only_the_callers_tenant_uploads():
    fid = oa.file_id("2026/01/02/abc.jsonl")
    assert oa.file_key(fid, "t1") == "tenants/t1/2026/01/02/abc.jsonl"
    assert oa.file_key(fid, "t2") == "tenants/t2/2026/01/02/abc.jsonl"  # another tenant reads its own prefix: not found
    assert oa.file_key(oa.file_id("../t2/x.jsonl"), "t1") is None and oa.file_key("file-batchout-batch_x", "t1") is None
    assert oa.file_key("nope", "t1") is None


def test_batch_input_lines_and_batch_objects():
    data = (json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                        "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}) + "\n\n").encode()
    assert oa.batch_requests(data, {}) == [{"custom_id": "a", "request": {"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}]}}]
    for bad in (b"{oops\n", json.dumps({"custom_id": "a", "url": "/v1/embeddings", "body": {}}).encode(), b""):
        with pytest.raises(GatewayError):
            oa.batch_requests(bad, {})
    native = {"id": "batch_1", "status": "completed", "created_at": "2026-01-01T00:00:00+00:00", "expires_at": "2026-01-02T00:00:00+00:00",
              "request_counts": {"total": 2, "completed": 1, "failed": 1, "pending": 0},
              "metadata": {"job": "x", oa.INPUT_FILE_KEY: "file-abc"},
              "requests": [{"custom_id": "a", "result": {"id": "gen_1", "model_used": "m", "content": [{"type": "text", "text": "ok"}],
                                                         "finish_reason": "stop", "usage": {"input_tokens": 1, "output_tokens": 1}}},
                           {"custom_id": "b", "error": {"code": "provider_error", "message": "boom"}}]}
    obj = oa.batch_object(native)
    assert obj["status"] == "completed" and obj["input_file_id"] == "file-abc" and obj["metadata"] == {"job": "x"}
    assert obj["output_file_id"] == "file-batchout-batch_1" and obj["error_file_id"] == "file-batcherr-batch_1"
    assert obj["created_at"] == 1767225600 and obj["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    out = [json.loads(x) for x in oa.batch_file(native, errors=False).splitlines()]
    assert out[0]["custom_id"] == "a" and out[0]["response"]["body"]["choices"][0]["message"]["content"] == "ok"
    err = [json.loads(x) for x in oa.batch_file(native, errors=True).splitlines()]
    assert err[0]["custom_id"] == "b" and err[0]["response"]["status_code"] == 502
    assert oa.batch_object({**native, "status": "pending"})["status"] == "validating"
