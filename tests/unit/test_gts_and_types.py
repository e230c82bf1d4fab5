"""GTS identifiers, the Type Registry ($ref resolution, cache, seeds) and tool resolution."""

import json

import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.pipeline.tools import resolve_tools
from llm_gateway.registry import gts
from llm_gateway.registry.types import SEED_DIR, TypeRegistry, load_seed


class MemoryStore:
    def __init__(self, schemas=None):
        self.schemas = dict(schemas or {})
        self.batch_calls = 0

    def put(self, ident, schema):
        self.schemas[ident] = schema

    def batch_get(self, ids):
        self.batch_calls += 1
        return {i: self.schemas[i] for i in ids if i in self.schemas}


@pytest.mark.parametrize("ident", [
    "gts.x.core.faas.func.v1~",
    "gts.x.core.faas.func.v1.2~",
    "gts.x.core.faas.func.v1~vendor.app.ns.get_weather.v1~",
    "gts://gts.x.core.events.type.v1~ven.app._.custom_event.v1~",
    "gts.x.core.faas.func.v0~a.b.c.d.v10.0~",
])
def test_valid_type_ids(ident):
    assert gts.is_type_id(ident) and gts.type_id_problem(ident) is None


@pytest.mark.parametrize("ident,why", [
    ("gts.x.core.faas.func.v1", "ends with '~'"),
    ("x.core.faas.func.v1~", "start with 'gts.'"),
    ("gts.X.core.faas.func.v1~", "lowercase"),
    ("gts.x.core.faas.v1~", "segment"),
    ("gts.x.core.faas.func.v01~", "segment"),
    ("gts.x.core.faas.1func.v1~", "segment"),
    ("gts.x.core.faas.func.v1~gts.a.b.c.d.v1~", "segment"),
    ("gts." + "a" * 1100 + ".b.c.d.v1~", "longer than"),
])
def test_invalid_type_ids_say_why(ident, why):
    assert not gts.is_type_id(ident)
    assert why in gts.type_id_problem(ident)


def test_instance_ids_are_gts_ids_but_not_types():
    inst = "gts.x.core.events.topic.v1~ven.app._.custom_event_topic.v1.2"
    assert gts.is_gts_id(inst) and not gts.is_type_id(inst)


def test_tool_name_from_chained_id():
    assert gts.tool_name("gts.x.core.faas.func.v1~vendor.app.ns.get_weather.v1~") == "get_weather"
    assert gts.tool_name("gts://gts.x.demo.clock.now.v2.1~") == "now"


def test_refs_resolve_recursively_in_one_batch_per_level():
    store = MemoryStore({
        "gts.a.b.c.outer.v1~": {"$id": "gts://gts.a.b.c.outer.v1~", "type": "object",
                                 "properties": {"inner": {"$ref": "gts://gts.a.b.c.inner.v1~"}}},
        "gts.a.b.c.inner.v1~": {"$id": "gts://gts.a.b.c.inner.v1~", "type": "string", "enum": ["x"], "x-gts-final": True},
    })
    reg = TypeRegistry(store=store, ttl_s=60)
    out = reg.resolve({"type": "object", "properties": {"o": {"$ref": "gts://gts.a.b.c.outer.v1~", "description": "d"}}}, "p")
    assert out == {"type": "object", "properties": {"o": {"allOf": [
        {"type": "object", "properties": {"inner": {"type": "string", "enum": ["x"]}}}], "description": "d"}}}
    assert store.batch_calls == 2  # one per level of references
    reg.resolve({"$ref": "gts://gts.a.b.c.outer.v1~"}, "p")
    assert store.batch_calls == 2  # served from the TTL cache


def test_ref_cycle_unknown_and_malformed_refs_are_validation_errors():
    store = MemoryStore({
        "gts.a.b.c.one.v1~": {"properties": {"x": {"$ref": "gts://gts.a.b.c.two.v1~"}}},
        "gts.a.b.c.two.v1~": {"properties": {"y": {"$ref": "gts://gts.a.b.c.one.v1~"}}},
    })
    reg = TypeRegistry(store=store, ttl_s=60)
    with pytest.raises(GatewayError) as cycle:
        reg.resolve({"$ref": "gts://gts.a.b.c.one.v1~"}, "tools[0]")
    assert cycle.value.code == "validation_error" and "cycle" in cycle.value.detail
    assert "gts.a.b.c.one.v1~ -> gts.a.b.c.two.v1~ -> gts.a.b.c.one.v1~" in cycle.value.detail
    with pytest.raises(GatewayError) as unknown:
        reg.resolve({"$ref": "gts://gts.a.b.c.nothing.v1~"}, "tools[0]")
    assert "gts.a.b.c.nothing.v1~" in unknown.value.detail
    with pytest.raises(GatewayError) as bad:
        reg.resolve({"$ref": "gts://not-gts"}, "tools[0]")
    assert "not a valid GTS type identifier" in bad.value.detail


def _request(tools, messages=None):
    return ChatRequest.model_validate({"model": "m", "messages": messages or [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "tools": tools})


@pytest.fixture
def seeded():
    store = MemoryStore()
    load_seed(SEED_DIR, store=store)
    return TypeRegistry(store=store, ttl_s=60)


def test_three_tool_forms_resolve_to_one_shape(seeded):
    tools = resolve_tools(_request([
        {"type": "reference", "schema_id": "gts.x.core.faas.func.v1~x.demo.weather.get_weather.v1~"},
        {"type": "inline_gts", "schema": {"json_schema": {"$id": "gts://gts.x.core.faas.func.v1~acme.crm.contacts.find_contact.v1~",
                                                            "description": "Find a contact", "type": "object",
                                                            "properties": {"q": {"type": "string"}}}}},
        {"type": "unified", "name": "sum", "description": "Add numbers", "parameters": {"json_schema": {"type": "object"}}},
    ]), seeded)
    assert [t["name"] for t in tools] == ["get_weather", "find_contact", "sum"]
    weather = tools[0]
    assert weather["description"] == "Get the current weather for a city."
    assert weather["parameters"]["properties"]["unit"] == {"description": "Temperature unit", "type": "string", "enum": ["celsius", "fahrenheit"]}
    assert "gts://" not in json.dumps(weather["parameters"]) and "$id" not in json.dumps(tools)
    assert tools[1]["description"] == "Find a contact" and tools[1]["gts_id"].endswith("find_contact.v1~")


@pytest.mark.parametrize("tools,needle", [
    ([{"type": "reference", "schema_id": "gts.x.core.faas.func.v1~x.demo.nothing.here.v1~"}], "unknown schema_id 'gts.x.core.faas.func.v1~x.demo.nothing.here.v1~'"),
    ([{"type": "reference", "schema_id": "get_weather"}], "not a valid GTS type identifier"),
    ([{"type": "inline_gts", "schema": {"json_schema": {"type": "object"}}}], "needs a 'gts://' $id"),
    ([{"type": "unified", "name": "f", "description": "d", "parameters": {"json_schema": {"type": "objekt"}}}], "not a valid JSON Schema"),
    ([{"type": "unified", "name": "f", "description": "d", "parameters": {"json_schema": {"type": "object"}}},
      {"type": "unified", "name": "f", "description": "e", "parameters": {"json_schema": {"type": "object"}}}], "duplicate tool name 'f'"),
    ([{"type": "unified", "name": "bad name!", "description": "d", "parameters": {"json_schema": {"type": "object"}}}], "must match"),
])
def test_bad_tools_are_specific_validation_errors(seeded, tools, needle):
    with pytest.raises(GatewayError) as info:
        resolve_tools(_request(tools), seeded)
    assert info.value.code == "validation_error"
    assert needle in info.value.detail


def test_tool_result_must_answer_an_earlier_call():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "tool_call", "tool_call": {"id": "c1", "name": "f", "arguments": {}}}]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "c2", "content": "x"}}]},
    ]
    with pytest.raises(GatewayError) as info:
        resolve_tools(_request(None, messages))
    assert info.value.errors[0]["path"] == "messages[2].content[0].tool_result.tool_call_id"
    messages[2]["content"][0]["tool_result"]["tool_call_id"] = "c1"
    assert resolve_tools(_request(None, messages)) == []
