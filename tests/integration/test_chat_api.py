"""`POST /chat/completions` and `GET /models` through the Lambda handler, as the HTTP API calls it."""

import json

import pytest

from tests.conftest import user
from tests.contract.schema_check import assert_valid
from tests.fakes.server import FakeServer, Reply


def test_mock_chat_returns_a_contract_response_with_usage_and_cost(api):
    resp = api.chat({"model": "mock::echo", "messages": [user("Hello there, gateway!")]})
    assert resp.status == 200, resp.body
    body = resp.json()
    assert_valid("response", body)
    assert body["content"] == [{"type": "text", "text": "You said: Hello there, gateway!"}]
    assert body["model_used"] == "mock::echo" and body["fallback_used"] is False
    usage = body["usage"]
    assert usage["input_tokens"] == 3 + 5 and usage["output_tokens"] == 8  # Hello there , gateway !
    assert usage["cost_estimate"] == pytest.approx((8 * 0.10 + 8 * 0.40) / 1e6)
    assert resp.headers["x-llmgw-provider"] == "mock"


def test_alias_resolves_and_token_counts_follow_the_text(api):
    short = api.chat({"model": "mock", "messages": [user("hi")]}).json()
    long = api.chat({"model": "mock", "messages": [user("hi " * 50)]}).json()
    assert short["model_used"] == "mock::echo"
    assert long["usage"]["input_tokens"] - short["usage"]["input_tokens"] == 49


def test_stream_over_http_api_is_buffered_sse(api):
    resp = api.chat({"model": "mock::echo", "stream": True, "messages": [user("one two three")]})
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in resp.body.split("\n\n") if f]
    assert frames[-1] == "data: [DONE]"
    chunks = [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]
    for chunk in chunks:
        assert_valid("stream_chunk", chunk)
    assert chunks[0]["delta"] == {"role": "assistant"}
    assert "".join(c["delta"].get("content", "") for c in chunks) == "You said: one two three"
    assert chunks[-1]["finish_reason"] == "stop" and chunks[-1]["usage"]["output_tokens"] == 6


def test_models_lists_capabilities_and_prices(api):
    resp = api.call("GET", "/models")
    assert resp.status == 200
    models = {m["id"]: m for m in resp.json()["data"]}
    assert "openai::gpt-4o-mini" in models
    assert "tools" in models["mock::echo"]["capabilities"]
    assert models["openai::gpt-4o-mini"]["pricing"]["input_per_mtok"] == 0.15
    assert "base_url" not in json.dumps(models)  # no provider internals


@pytest.mark.parametrize(
    "payload,status,code,path",
    [
        ({"messages": [user("x")]}, 400, "validation_error", "model"),
        ({"model": "mock::echo", "messages": []}, 400, "validation_error", "messages"),
        ({"model": "mock::echo", "messages": [{"role": "user", "content": "x"}]}, 400, "validation_error", "messages[0].content"),
        ({"model": "mock::echo", "messages": [{"role": "user", "content": [{"type": "gif", "url": "x"}]}]}, 400, "validation_error", "messages[0].content[0]"),
        ({"model": "nope::nothing", "messages": [user("x")]}, 404, "model_not_found", None),
        ({"model": "mock::old", "messages": [user("x")]}, 410, "model_deprecated", None),
        ({"model": "mock::text-only", "messages": [user("x")], "tools": [{"type": "unified", "name": "f", "description": "d", "parameters": {"json_schema": {"type": "object"}}}]},
         422, "capability_not_supported", None),
    ],
)
def test_bad_requests_get_their_code_and_status(api, payload, status, code, path):
    resp = api.chat(payload)
    assert resp.status == status, resp.body
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["code"] == code and body["status"] == status and body["detail"]
    if path:
        assert path in [e["path"] for e in body["errors"]]
    assert "Traceback" not in resp.body


def test_malformed_json_wrong_type_and_huge_body(api):
    bad = api.call("POST", "/chat/completions", body="{not json")
    assert (bad.status, bad.json()["code"]) == (400, "invalid_json")
    wrong = api.call("POST", "/chat/completions", body="model=x", headers={"content-type": "application/x-www-form-urlencoded"})
    assert (wrong.status, wrong.json()["code"]) == (415, "unsupported_media_type")
    huge = api.call("POST", "/chat/completions", body=b'{"model":"' + b"x" * (10 * 1024 * 1024) + b'"}')
    assert (huge.status, huge.json()["code"]) == (413, "payload_too_large")


def test_missing_and_wrong_key(api):
    none = api.chat({"model": "mock::echo", "messages": [user("x")]}, key=None)
    assert (none.status, none.json()["code"]) == (401, "unauthorized")
    assert "www-authenticate" in none.headers
    wrong = api.chat({"model": "mock::echo", "messages": [user("x")]}, key="llmgw_nope_nope")
    assert (wrong.status, wrong.json()["code"]) == (401, "unauthorized")


def test_unknown_route_and_method(api):
    assert api.call("GET", "/chat/completions").json()["code"] == "method_not_allowed"
    assert api.call("GET", "/models/x/y").status == 404


def test_usage_record_written_without_content(api):
    from llm_gateway.stores.usage import UsageStore

    api.chat({"model": "mock::echo", "messages": [user("secret words")], "metadata": {"conversation_id": "conv-9"}})
    records = UsageStore().list_for_tenant("dev-tenant")
    assert len(records) == 1
    rec = records[0]
    assert rec["conversation_id"] == "conv-9" and rec["model"] == "mock::echo" and rec["user_id"] == "dev-user"
    assert int(rec["input_tokens"]) > 0 and float(rec["cost_usd"]) > 0
    assert "secret" not in json.dumps(rec)


# ------------------------------------------------------------------ openai adapter, fake server


def _openai_completion(req):
    body = req.json()
    return Reply(200, json={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi from fake OpenAI"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                  "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 0}},
    })


@pytest.fixture
def fake_openai(use_catalog, monkeypatch):
    with FakeServer() as server:
        server.route("POST", "/v1/chat/completions", _openai_completion)
        monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-test-fake-key-123456")
        use_catalog(
            [{"id": "openai", "kind": "openai", "base_url": server.url + "/v1", "credential": {"env": "FAKE_OPENAI_KEY"}}],
            [{"id": "openai::gpt-4o-mini", "capabilities": ["chat", "stream"],
              "pricing": {"input_per_mtok": 0.15, "output_per_mtok": 0.60, "cached_input_per_mtok": 0.075}}],
        )
        yield server


def test_openai_adapter_normalizes_answer_and_usage(api, fake_openai):
    resp = api.chat({"model": "openai::gpt-4o-mini", "messages": [user("hello")], "max_tokens": 20, "temperature": 0.5})
    assert resp.status == 200, resp.body
    body = resp.json()
    assert_valid("response", body)
    assert body["content"][0]["text"] == "Hi from fake OpenAI"
    assert body["usage"]["input_tokens"] == 12 and body["usage"]["cached_input_tokens"] == 4
    assert body["usage"]["cost_estimate"] == pytest.approx((8 * 0.15 + 4 * 0.075 + 5 * 0.60) / 1e6)
    sent = fake_openai.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test-fake-key-123456"
    wire = sent.json()
    assert wire["model"] == "gpt-4o-mini" and wire["max_completion_tokens"] == 20 and wire["temperature"] == 0.5
    assert wire["messages"] == [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    "status,error,code,gw_status",
    [
        (401, {"message": "Incorrect API key provided: sk-test-***", "type": "invalid_request_error", "code": "invalid_api_key"}, "provider_error", 502),
        (429, {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}, "rate_limited", 429),
        (500, {"message": "The server had an error", "type": "server_error"}, "provider_error", 502),
    ],
)
def test_openai_errors_are_normalized(api, fake_openai, status, error, code, gw_status):
    fake_openai.enqueue("POST", "/v1/chat/completions", Reply(status, json={"error": error}, headers={"retry-after": "7"}))
    resp = api.chat({"model": "openai::gpt-4o-mini", "messages": [user("hello")]})
    assert resp.status == gw_status
    body = resp.json()
    assert body["code"] == code and body["provider"] == "openai"
    assert error["message"].split(":")[0] in body["detail"]
    assert "sk-test-fake-key" not in resp.body
    if status == 429:
        assert resp.headers["retry-after"] == "7" and body["retry_after_s"] == 7


def test_unreachable_provider_is_a_provider_error(api, use_catalog, monkeypatch):
    from llm_gateway.local.aws import free_port

    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-x")
    use_catalog([{"id": "openai", "kind": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "credential": {"env": "FAKE_OPENAI_KEY"}}],
                [{"id": "openai::gpt-4o-mini", "capabilities": ["chat"]}])
    resp = api.chat({"model": "openai::gpt-4o-mini", "messages": [user("hello")]})
    assert (resp.status, resp.json()["code"], resp.json()["provider"]) == (502, "provider_error", "openai")


def test_missing_provider_credential_is_named_not_leaked(api, use_catalog, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    use_catalog([{"id": "openai", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "credential": {"env": "NO_SUCH_KEY"}}],
                [{"id": "openai::gpt-4o-mini", "capabilities": ["chat"]}])
    body = api.chat({"model": "openai::gpt-4o-mini", "messages": [user("hello")]}).json()
    assert body["code"] == "provider_error" and "NO_SUCH_KEY" in body["detail"]
