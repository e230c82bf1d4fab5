"""The compat Lambda (`functions/compat`) as the HTTP API calls it: door routes, buffered SSE,
door-shaped errors for unknown routes and wrong methods, binary audio, governance applied."""

from __future__ import annotations

import base64
import json

from tests.conftest import DEV_API_KEY


def frames(body: str) -> list[tuple[str | None, str]]:
    out = []
    for block in body.split("\n\n"):
        if not block:
            continue
        event = None
        data = ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        out.append((event, data))
    return out


def test_openai_stream_is_the_same_sse_body_buffered(api):
    r = api.call("POST", "/openai/v1/chat/completions", json_body={
        "model": "mock::echo", "stream": True, "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": "a b"}]})
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
    out = frames(r.body)
    assert out[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in out[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "You said: a b"
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_anthropic_stream_is_the_same_sse_body_buffered_and_x_api_key_works(api):
    r = api.call("POST", "/anthropic/v1/messages", key=None, headers={"x-api-key": DEV_API_KEY}, json_body={
        "model": "mock::echo", "max_tokens": 20, "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 200 and r.headers["request-id"] == r.headers["x-request-id"]
    names = [e for e, _ in frames(r.body)]
    assert names[0] == "message_start" and names[-1] == "message_stop"


def test_unknown_route_and_wrong_method_are_door_shaped(api):
    r = api.call("POST", "/openai/v1/responses", json_body={})
    assert r.status == 404 and r.json()["error"]["code"] == "unknown_url"
    r = api.call("GET", "/openai/v1/chat/completions")
    assert r.status == 405 and r.headers["allow"] == "POST" and r.json()["error"]["type"] == "invalid_request_error"
    r = api.call("GET", "/anthropic/v1/nothing")
    assert r.status == 404 and r.json() == {"type": "error", "error": {"type": "not_found_error", "message": "There is no route GET /anthropic/v1/nothing."},
                                           "request_id": "req_test"}


def test_missing_key_is_a_door_error_with_the_challenge(api):
    r = api.call("POST", "/openai/v1/chat/completions", key=None, json_body={"model": "mock::echo", "messages": [{"role": "user", "content": "x"}]})
    assert r.status == 401 and r.json()["error"]["code"] == "invalid_api_key" and r.headers["www-authenticate"].startswith("Bearer")
    r = api.call("POST", "/anthropic/v1/messages", key=None, json_body={"model": "mock::echo", "max_tokens": 5, "messages": []})
    assert r.status == 401 and r.json()["error"]["type"] == "authentication_error"


def test_malformed_json_is_a_door_error(api):
    r = api.call("POST", "/openai/v1/chat/completions", body="{nope")
    assert r.status == 400 and r.json()["error"]["code"] == "invalid_json"


def test_speech_is_binary_through_the_http_api(api):
    from functions.compat.handler import lambda_handler
    from llm_gateway.local.server import LambdaContext, apigw_v2_event

    event = apigw_v2_event("POST", "/openai/v1/audio/speech", "", {"content-type": "application/json", "authorization": f"Bearer {DEV_API_KEY}"},
                           json.dumps({"model": "mock::tts", "input": "hi there", "voice": "alloy"}).encode(), "req_x", "127.0.0.1")
    result = lambda_handler(event, LambdaContext(function_name="compat", aws_request_id="req_x"))
    assert result["statusCode"] == 200 and result["isBase64Encoded"] is True
    assert base64.b64decode(result["body"])[:4] == b"RIFF"


def test_cost_header_and_model_retrieve_by_alias(api):
    r = api.call("POST", "/openai/v1/chat/completions", json_body={"model": "mock", "messages": [{"role": "user", "content": "x"}]})
    assert r.status == 200 and float(r.headers["x-llmgw-cost-usd"]) >= 0 and r.json()["model"] == "mock::echo"
    r = api.call("GET", "/openai/v1/models/mock-chat")
    assert r.status == 200 and r.json() == {"id": "mock::echo", "object": "model", "created": 0, "owned_by": "mock"}
    r = api.call("GET", "/openai/v1/models/local-vllm::meta-llama/Llama-3.1-8B-Instruct")  # an id with a '/' in it
    assert r.status == 200 and r.json()["owned_by"] == "local-vllm"
    r = api.call("GET", "/anthropic/v1/models")
    assert r.status == 200 and r.json()["data"][0]["type"] == "model"


def test_door_requests_are_governed_like_native_ones(api, monkeypatch):
    """A tenant that may not use a model is refused on both doors with the native decision."""
    from llm_gateway.stores.tenants import TenantConfig, TenantStore

    TenantStore().put(TenantConfig.from_dict("dev-tenant", {"name": "t", "approved_models": ["mock::embed"]}))
    from tests.conftest import reset_process_state

    reset_process_state()
    r = api.call("POST", "/openai/v1/chat/completions", json_body={"model": "mock::echo", "messages": [{"role": "user", "content": "x"}]})
    assert r.status == 403 and r.json()["error"]["code"] == "model_not_approved" and r.headers["x-llmgw-error-code"] == "model_not_approved"
    r = api.call("POST", "/anthropic/v1/messages", json_body={"model": "mock::echo", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
    assert r.status == 403 and r.json()["error"]["type"] == "permission_error"
    r = api.call("GET", "/openai/v1/models")
    assert [m["id"] for m in r.json()["data"]] == ["mock::embed"]
