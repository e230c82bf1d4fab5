"""Platform engineers register schemas with `llm-gateway types`; tools then reference them."""

import json

from llm_gateway.types_cli import main
from tests.conftest import user


def test_put_list_resolve_and_use_as_reference_tool(api, tmp_path, capsys):
    schema = {"$id": "gts://gts.x.core.faas.func.v1~acme.shop.orders.lookup_order.v1~", "description": "Look up an order",
              "type": "object", "properties": {"order_id": {"type": "string"},
                                               "unit": {"$ref": "gts://gts.x.demo.weather.temperature_unit.v1~"}},
              "required": ["order_id"]}
    path = tmp_path / "lookup.json"
    path.write_text(json.dumps(schema))
    assert main(["types", "put", str(path)]) == 0
    assert main(["types", "list"]) == 0
    assert "acme.shop.orders.lookup_order.v1~" in capsys.readouterr().out
    assert main(["types", "resolve", "gts.x.core.faas.func.v1~acme.shop.orders.lookup_order.v1~"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]

    resp = api.chat({"model": "mock::echo", "messages": [user("where is my order?")],
                     "tools": [{"type": "reference", "schema_id": "gts.x.core.faas.func.v1~acme.shop.orders.lookup_order.v1~"}]})
    assert resp.status == 200, resp.body
    call = resp.json()["tool_calls"][0]
    assert call["name"] == "lookup_order" and set(call["arguments"]) == {"order_id", "unit"}


def test_bad_schema_file_is_refused(aws, tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"$id": "gts://not.a.gts.id", "type": "object"}))
    assert main(["types", "put", str(path)]) == 2
    assert "not a valid GTS type identifier" in capsys.readouterr().err
