"""The local emulator's speed-ups keep moto's behaviour: an item's 400 KB limit still holds
(inserting, replacing, after deletions), and every service still routes."""

from __future__ import annotations

import pytest


def test_item_size_limit_holds_with_the_running_size():
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict

    from llm_gateway.local import moto_speedups

    moto_speedups.apply()
    item = LimitedSizeDict()
    for i in range(30):
        item[f"a{i}"] = DynamoType({"S": "x" * 10_000})  # 300 KB
    assert item.__dict__["_running_size"] > 300_000
    with pytest.raises(ItemSizeTooLarge):
        item["big"] = DynamoType({"S": "y" * 150_000})
    assert "big" not in item
    item["a0"] = DynamoType({"S": "z"})  # a replaced value: measured again, smaller
    item["more"] = DynamoType({"S": "y" * 100_000})
    del item["more"]  # a deletion leaves the running size stale (too high)…
    item["again"] = DynamoType({"S": "y" * 100_000})  # …so near the limit moto's own check decides
    assert item["again"].value == "y" * 100_000


def test_services_still_route_with_the_module_list_listed_once():
    from moto import backends

    from llm_gateway.local import moto_speedups

    moto_speedups.apply()
    modules = list(backends.list_of_moto_modules())
    assert {"dynamodb", "s3", "events", "stepfunctions"} <= set(modules)
    assert list(backends.list_of_moto_modules()) == modules
