"""Contract models accept exactly what the contract accepts, and name each failing path."""

import json

import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest, EmbeddingRequest
from llm_gateway.api.parse import parse_model
from tests.contract.schema_check import errors as schema_errors

TEXT = {"type": "text", "text": "hi"}

VALID = [
    {"model": "m", "messages": [{"role": "user", "content": [TEXT]}]},
    {"model": "m", "messages": [{"role": "system", "content": [TEXT]}, {"role": "user", "content": [TEXT]}], "stream": True},
    {"model": "m", "messages": [{"role": "user", "content": [TEXT, {"type": "image", "url": "https://x.test/a.png"},
                                                              {"type": "audio", "url": "s3://b/k.wav"},
                                                              {"type": "video", "url": "s3://b/v.mp4"},
                                                              {"type": "document", "url": "s3://b/d.pdf"}]}]},
    {"model": "m", "messages": [
        {"role": "assistant", "content": [{"type": "tool_call", "tool_call": {"id": "c1", "name": "f", "arguments": {"a": 1}}}]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "c1", "content": "42"}}]}]},
    {"model": "m", "messages": [{"role": "user", "content": [TEXT]}],
     "tools": [{"type": "reference", "schema_id": "gts.x.core.faas.func.v1~vendor.app.ns.get_weather.v1~"},
               {"type": "inline_gts", "schema": {"json_schema": {"$id": "gts://gts.a.b.c.d.v1~", "type": "object"}}},
               {"type": "unified", "name": "f", "description": "d", "parameters": {"json_schema": {"type": "object"}}}]},
    {"model": "m", "messages": [{"role": "user", "content": [TEXT]}], "async": True,
     "response_schema": {"json_schema": {"type": "object"}}, "fallback": {"models": ["a", "b"], "strategy": "parallel"}},
]

INVALID = [
    ({"messages": [{"role": "user", "content": [TEXT]}]}, "model"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "sticker"}]}]}, "messages[0].content[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
    ({"model": "m", "messages": [{"role": "robot", "content": [TEXT]}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "user", "content": []}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user", "content": [TEXT]}], "fallback": {"models": [], "strategy": "sequential"}}, "fallback.models"),
    ({"model": "m", "messages": [{"role": "user", "content": [TEXT]}], "fallback": {"models": ["a"], "strategy": "random"}}, "fallback.strategy"),
    ({"model": "m", "messages": [{"role": "user", "content": [TEXT]}], "stream": "yes"}, "stream"),
    ({"model": "m", "messages": [{"role": "user", "content": [TEXT]}], "unknown": 1}, "unknown"),
    ({"model": "m", "messages": [{"role": "user", "content": [TEXT]}], "tools": [{"type": "unified", "name": "f"}]}, "tools[0].description"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_call", "tool_call": {"id": "1", "name": "f", "arguments": "x"}}]}]},
     "messages[0].content[0].tool_call.arguments"),
]


@pytest.mark.parametrize("body", VALID)
def test_contract_valid_requests_are_accepted(body):
    assert schema_errors("request", body) == []  # valid under the contract itself
    parse_model(ChatRequest, json.dumps(body).encode())


@pytest.mark.parametrize("body,path", INVALID)
def test_invalid_requests_name_the_failing_path(body, path):
    with pytest.raises(GatewayError) as info:
        parse_model(ChatRequest, json.dumps(body).encode())
    err = info.value
    assert err.code == "validation_error"
    assert path in [e["path"] for e in err.errors], err.errors
    if path not in ("unknown",):  # extension-only strictness aside, the contract agrees it is invalid
        assert schema_errors("request", body), "contract schema should reject this too"


def test_every_failing_path_is_listed():
    body = {"model": 1, "messages": [{"role": "user", "content": [{"type": "text"}, {"type": "image"}]}]}
    with pytest.raises(GatewayError) as info:
        parse_model(ChatRequest, json.dumps(body).encode())
    paths = {e["path"] for e in info.value.errors}
    assert paths == {"model", "messages[0].content[0].text", "messages[0].content[1].url"}


def test_extensions_are_accepted_and_kept():
    body = {"model": "m", "messages": [{"role": "user", "content": [TEXT]}], "max_tokens": 5, "temperature": 0.2,
            "top_p": 0.9, "stop": "END", "seed": 7, "metadata": {"conversation_id": "conv-1", "team": "x"},
            "timeout": {"ttft_ms": 100, "total_ms": 1000}, "tool_choice": "required"}
    req = parse_model(ChatRequest, json.dumps(body).encode())
    assert (req.max_tokens, req.temperature, req.top_p, req.stop, req.seed) == (5, 0.2, 0.9, ["END"], 7)
    assert req.metadata.conversation_id == "conv-1"
    assert req.timeout.total_ms == 1000 and req.tool_choice == "required"


@pytest.mark.parametrize("raw,code", [(b"{bad", "invalid_json"), (b"[]", "validation_error"), (b"\xff\xfe", "invalid_json")])
def test_malformed_bodies(raw, code):
    with pytest.raises(GatewayError) as info:
        parse_model(ChatRequest, raw)
    assert info.value.code == code


def test_embedding_request():
    assert parse_model(EmbeddingRequest, b'{"model":"m","input":["a","b"],"dimensions":8}').dimensions == 8
    with pytest.raises(GatewayError) as info:
        parse_model(EmbeddingRequest, b'{"model":"m","input":[]}')
    assert info.value.errors[0]["path"] == "input"
