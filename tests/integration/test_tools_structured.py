"""Tool loops with each tool form, and structured output validated by the gateway."""

import json

import pytest

from tests.conftest import user
from tests.contract.schema_check import assert_valid
from tests.fakes.server import FakeServer, Reply, sse

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
          "required": ["name", "age"], "additionalProperties": False}

TOOLS = [
    {"type": "reference", "schema_id": "gts.x.core.faas.func.v1~x.demo.weather.get_weather.v1~"},
    {"type": "inline_gts", "schema": {"json_schema": {"$id": "gts://gts.x.core.faas.func.v1~acme.crm.contacts.find_contact.v1~",
                                                        "description": "Find a contact", "type": "object",
                                                        "properties": {"q": {"type": "string"}}, "required": ["q"]}}},
    {"type": "unified", "name": "sum", "description": "Add", "parameters": {"json_schema": {"type": "object", "properties": {"a": {"type": "number"}}}}},
]


def _sse_chunks(body):
    frames = [f for f in body.split("\n\n") if f]
    return frames


@pytest.mark.parametrize("first", [0, 1, 2])
@pytest.mark.parametrize("stream", [False, True])
def test_two_turn_tool_conversation_with_each_form(api, first, stream):
    tools = TOOLS[first:] + TOOLS[:first]
    resp = api.chat({"model": "mock::echo", "messages": [user("weather in Paris?")], "tools": tools, "stream": stream})
    assert resp.status == 200, resp.body
    if stream:
        chunks = [json.loads(f.removeprefix("data: ")) for f in _sse_chunks(resp.body)[:-1]]
        pieces = [tc for c in chunks for tc in c["delta"].get("tool_calls", [])]
        call = {"id": pieces[0]["id"], "name": pieces[0]["function"]["name"],
                "arguments": json.loads("".join(p["function"].get("arguments", "") for p in pieces))}
        assert chunks[-1]["finish_reason"] == "tool_calls"
    else:
        body = resp.json()
        assert_valid("response", body)
        call = body["tool_calls"][0]
        assert body["finish_reason"] == "tool_calls"
    expected = {0: "get_weather", 1: "find_contact", 2: "sum"}[first]
    assert call["name"] == expected
    second = api.chat({"model": "mock::echo", "tools": tools, "messages": [
        user("weather in Paris?"),
        {"role": "assistant", "content": [{"type": "tool_call", "tool_call": call}]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": call["id"], "content": "18C"}}]},
    ]})
    assert second.status == 200
    assert "18C" in second.json()["content"][0]["text"] and second.json()["finish_reason"] == "stop"


def test_mock_structured_output_is_parsed(api):
    resp = api.chat({"model": "mock::echo", "messages": [user("a person")], "response_schema": {"json_schema": PERSON}})
    body = resp.json()
    assert resp.status == 200 and body["parsed"] == {"name": "mock", "age": 0}
    assert_valid("response", body)


def test_response_schema_with_gts_reference_is_resolved(api):
    schema = {"type": "object", "properties": {"unit": {"$ref": "gts://gts.x.demo.weather.temperature_unit.v1~"}}, "required": ["unit"]}
    body = api.chat({"model": "mock::echo", "messages": [user("unit?")], "response_schema": {"json_schema": schema}}).json()
    assert body["parsed"] == {"unit": "celsius"}


@pytest.fixture
def lying_openai(use_catalog, monkeypatch):
    answer = json.dumps({"name": "Ada", "age": -3, "extra": True})

    def completion(req):
        if req.json().get("stream"):
            return Reply(200, chunks=sse(
                {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "content": answer[:10]}}]},
                {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": answer[10:]}, "finish_reason": "stop"}]},
                {"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}},
                "[DONE]"))
        return Reply(200, json={"id": "c", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}})

    with FakeServer() as server:
        server.route("POST", "/v1/chat/completions", completion)
        monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake-123456789")
        use_catalog([{"id": "openai", "kind": "openai", "base_url": server.url + "/v1", "credential": {"env": "FAKE_OPENAI_KEY"}}],
                    [{"id": "openai::gpt-4o-mini", "capabilities": ["chat", "stream", "structured_output"],
                      "pricing": {"input_per_mtok": 1, "output_per_mtok": 1}}])
        yield server


def test_non_conforming_answer_is_a_validation_error_with_paths(api, lying_openai):
    resp = api.chat({"model": "openai::gpt-4o-mini", "messages": [user("a person")], "response_schema": {"json_schema": PERSON}})
    assert resp.status == 400
    body = resp.json()
    assert body["code"] == "validation_error" and body["source"] == "model_output"
    got = {(e["path"], e["schema_path"]) for e in body["errors"]}
    assert ("/age", "#/properties/age/minimum") in got and ("/", "#/additionalProperties") in got
    sent = lying_openai.requests[-1].json()
    assert sent["response_format"]["type"] == "json_schema" and sent["response_format"]["json_schema"]["schema"]["required"] == ["name", "age"]
    from llm_gateway.stores.usage import UsageStore

    [rec] = UsageStore().list_for_tenant("dev-tenant")
    assert int(rec["output_tokens"]) == 9  # the generation is still accounted


def test_streamed_non_conforming_answer_ends_with_error_event(api, lying_openai):
    resp = api.chat({"model": "openai::gpt-4o-mini", "stream": True, "messages": [user("a person")], "response_schema": {"json_schema": PERSON}})
    frames = _sse_chunks(resp.body)
    assert frames[-1].startswith("event: error")
    problem = json.loads(frames[-1].split("data: ", 1)[1])
    assert problem["code"] == "validation_error" and any(e["path"] == "/age" for e in problem["errors"])
    assert "data: [DONE]" not in frames
