"""JSON Schema helpers: checking a schema is valid, compiled validators cached by content hash.

`jsonschema` is imported on first use (it costs ~80 ms at import), so requests without tools or
structured output never pay for it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

from llm_gateway.api.errors import GatewayError

_validators: "OrderedDict[str, Any]" = OrderedDict()
_lock = threading.Lock()
MAX_CACHED = 512


def schema_hash(schema: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


_checked: set[str] = set()


def check_schema(schema: Any, path: str) -> None:
    """`validation_error` when `schema` is not a valid Draft 2020-12 JSON Schema (valid ones are
    remembered by hash, so a schema sent on every request is checked once per process)."""
    if isinstance(schema, dict):
        key = schema_hash(schema)
        if key in _checked:
            return
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        raise GatewayError("validation_error", f"{path}: a JSON Schema must be an object.",
                           errors=[{"path": path, "message": "schema must be an object"}])
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise GatewayError(
            "validation_error", f"{path} is not a valid JSON Schema: {exc.message} (at {where}).",
            errors=[{"path": path, "message": f"invalid JSON Schema at {where}: {exc.message}"}],
        ) from None
    if len(_checked) > 4096:
        _checked.clear()
    _checked.add(key)


def validator_for(schema: dict[str, Any]) -> Any:
    """A compiled Draft 2020-12 validator, cached by the schema's hash (LRU, 512 entries)."""
    key = schema_hash(schema)
    with _lock:
        found = _validators.get(key)
        if found is not None:
            _validators.move_to_end(key)
            return found
    from jsonschema import Draft202012Validator, FormatChecker

    compiled = Draft202012Validator(schema, format_checker=FormatChecker())
    with _lock:
        _validators[key] = compiled
        if len(_validators) > MAX_CACHED:
            _validators.popitem(last=False)
    return compiled


# Keywords whose meaning differs between draft 7 and 2020-12 (or that draft 7 lacks): schemas
# using them skip the fast path.
_FAST_UNSAFE = frozenset({
    "prefixItems", "unevaluatedProperties", "unevaluatedItems", "dependentRequired", "dependentSchemas",
    "$dynamicRef", "$dynamicAnchor", "$anchor", "$recursiveRef", "minContains", "maxContains", "$vocabulary",
})
_fast: "OrderedDict[str, Any]" = OrderedDict()


def _fast_compatible(node: Any) -> bool:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _FAST_UNSAFE or (key == "items" and isinstance(value, list)):
                return False
            if key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
                return False
            if not _fast_compatible(value):
                return False
        return True
    if isinstance(node, list):
        return all(_fast_compatible(v) for v in node)
    return True


def _fast_validator(schema: dict[str, Any], key: str) -> Any:
    """A `fastjsonschema`-compiled check (generated Python code, ~10x faster than `jsonschema`),
    or False when the schema uses keywords whose draft-7 meaning differs from 2020-12."""
    with _lock:
        found = _fast.get(key)
        if found is not None:
            return found
    compiled: Any = False
    if _fast_compatible(schema):
        try:
            import fastjsonschema

            body = {k: v for k, v in schema.items() if k != "$schema"}
            compiled = fastjsonschema.compile(body)
        except Exception:  # noqa: BLE001 - anything it cannot compile takes the jsonschema path
            compiled = False
    with _lock:
        _fast[key] = compiled
        if len(_fast) > MAX_CACHED:
            _fast.popitem(last=False)
    return compiled


def instance_errors(schema: dict[str, Any], instance: Any, limit: int = 50) -> list[dict[str, str]]:
    """Each failure as `{"path": instance path, "message", "schema_path"}` (JSON Pointer paths).

    A valid instance is confirmed by the fast compiled check; only an invalid one (or a schema
    the fast path cannot take) pays for `jsonschema`, which lists every failure."""
    fast = _fast_validator(schema, schema_hash(schema))
    if fast:
        try:
            fast(instance)
            return []
        except Exception:  # noqa: BLE001 - JsonSchemaException: fall through for the full report
            pass
    errors = []
    for err in validator_for(schema).iter_errors(instance):
        errors.append({
            "path": "/" + "/".join(str(p) for p in err.absolute_path),
            "message": err.message[:500],
            "schema_path": "#/" + "/".join(str(p) for p in err.absolute_schema_path),
        })
        if len(errors) >= limit:
            break
    errors.sort(key=lambda e: e["path"])
    return errors
