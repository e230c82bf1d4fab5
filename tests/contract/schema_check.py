"""Validate gateway output against the contract's JSON Schemas (the copy packaged with the
gateway), after removing only the documented extension fields — so any other extra field, a
missing required field or a wrong type still fails."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import llm_gateway
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(llm_gateway.__file__).parent / "api" / "schemas"

# Documented extensions (README, "API reference"), per object kind.
EXTENSIONS = {
    "response": {"id", "created", "provider", "finish_reason", "parsed", "media"},
    "usage": {"cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "images", "seconds", "characters", "batch"},
}


@lru_cache(maxsize=1)
def registry() -> tuple[Registry, dict[str, dict[str, Any]]]:
    resources = []
    by_name = {}
    for path in SCHEMAS.rglob("*.schema.json"):
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
        by_name[path.name.split(".")[0]] = doc
    return Registry().with_resources(resources), by_name


def validator(name: str) -> Draft202012Validator:
    reg, by_name = registry()
    return Draft202012Validator(by_name[name], registry=reg)


def _strip_usage(usage: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in usage.items() if k not in EXTENSIONS["usage"]}


def strip_extensions(name: str, instance: dict[str, Any]) -> dict[str, Any]:
    inst = copy.deepcopy(instance)
    if name == "response":
        inst = {k: v for k, v in inst.items() if k not in EXTENSIONS["response"]}
    if isinstance(inst.get("usage"), dict):
        inst["usage"] = _strip_usage(inst["usage"])
    return inst


def errors(name: str, instance: Any) -> list[str]:
    inst = strip_extensions(name, instance) if isinstance(instance, dict) else instance
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(name).iter_errors(inst)]


def assert_valid(name: str, instance: Any) -> None:
    errs = errors(name, instance)
    assert not errs, f"{name} does not conform to the contract: {errs}"
