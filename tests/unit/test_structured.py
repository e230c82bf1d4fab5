"""Structured output: the answer is parsed and validated; failures name instance and schema paths."""

import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.pipeline.structured import prepare_response_schema, validate_answer

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
                   "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_conforming_answer_is_parsed():
    assert validate_answer(SCHEMA, '{"name": "Ada", "age": 36}') == {"name": "Ada", "age": 36}
    assert validate_answer(SCHEMA, '```json\n{"name": "Ada", "age": 36}\n```')["name"] == "Ada"


def test_each_failure_has_instance_path_message_and_schema_path():
    with pytest.raises(GatewayError) as info:
        validate_answer(SCHEMA, '{"age": -1, "tags": ["a", 2], "extra": true}')
    err = info.value
    assert err.code == "validation_error" and err.extra["source"] == "model_output"
    by_path = {(e["path"], e["schema_path"]) for e in err.errors}
    assert ("/age", "#/properties/age/minimum") in by_path
    assert ("/tags/1", "#/properties/tags/items/type") in by_path
    assert ("/", "#/required") in by_path
    assert ("/", "#/additionalProperties") in by_path
    assert all(e["message"] for e in err.errors)


def test_non_json_answer():
    with pytest.raises(GatewayError) as info:
        validate_answer(SCHEMA, "Sure! Here is the JSON you asked for")
    assert "not valid JSON" in info.value.detail


def test_invalid_response_schema_is_rejected_before_any_call():
    req = ChatRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
                                      "response_schema": {"json_schema": {"type": "object", "required": "name"}}})
    with pytest.raises(GatewayError) as info:
        prepare_response_schema(req)
    assert info.value.code == "validation_error" and "response_schema.json_schema" in info.value.detail


def test_2020_12_only_keywords_take_the_full_validator():
    schema = {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False}
    assert validate_answer(schema, '[1, "a"]') == [1, "a"]
    with pytest.raises(GatewayError) as info:
        validate_answer(schema, '[1, "a", 3]')  # draft 7 would ignore prefixItems and accept this
    assert info.value.errors


def test_fast_path_is_cached_per_schema():
    from llm_gateway.registry import schemas

    validate_answer(SCHEMA, '{"name": "Ada", "age": 1}')
    assert schemas._fast[schemas.schema_hash(SCHEMA)]
