"""The Type Registry: GTS schemas by id, through an in-process TTL cache, with `$ref` resolution.

Before a schema goes to a provider every `{"$ref": "gts://…"}` in it is replaced by the
referenced schema (recursively; cycles and depth > 16 are `validation_error`s), since no
provider can fetch GTS references. GTS document keywords (`x-gts-*`), `$id` and `$schema` are
removed from what is sent.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from llm_gateway import resets
from llm_gateway.api.errors import GatewayError
from llm_gateway.config import settings
from llm_gateway.registry import gts

MAX_DEPTH = 16
_DROP_KEYS = ("$id", "$schema")


def _strip(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in _DROP_KEYS and not k.startswith("x-gts-")}


def _gts_refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(gts.URI_PREFIX):
            out.add(gts.strip_uri(ref))
        for value in node.values():
            _gts_refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _gts_refs(value, out)


class TypeRegistry:
    def __init__(self, store: Any = None, ttl_s: float | None = None) -> None:
        self._store = store
        self.ttl_s = settings().types_cache_ttl_s if ttl_s is None else ttl_s
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    @property
    def store(self) -> Any:
        if self._store is None:
            from llm_gateway.stores.types import TypeStore

            self._store = TypeStore()
        return self._store

    # ------------------------------------------------------------ lookups

    def get_many(self, ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """Schemas by id (None for unknown ids); one batch read for what the cache lacks."""
        now = time.monotonic()
        out: dict[str, dict[str, Any] | None] = {}
        missing = []
        for ident in ids:
            hit = self._cache.get(ident)
            if hit is not None and hit[0] > now:
                out[ident] = hit[1]
            else:
                missing.append(ident)
        if missing:
            fetched = self.store.batch_get(missing)
            with self._lock:
                for ident in missing:
                    schema = fetched.get(ident)
                    self._cache[ident] = (now + self.ttl_s, schema)
                    out[ident] = schema
        return out

    def clear_cache(self) -> None:
        self._cache.clear()

    # ------------------------------------------------------------ $ref resolution

    def resolve(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        """`schema` with every GTS `$ref` inlined (batch-fetching each level of references)."""
        known: dict[str, dict[str, Any]] = {}
        pending: set[str] = set()
        _gts_refs(schema, pending)
        depth = 0
        while pending:
            depth += 1
            if depth > MAX_DEPTH:
                raise GatewayError("validation_error", f"{path}: GTS references nest deeper than {MAX_DEPTH} levels.",
                                   errors=[{"path": path, "message": "reference depth exceeded"}])
            for ref in pending:
                gts.require_type_id(ref, f"{path}.$ref")
            fetched = self.get_many(sorted(pending))
            unknown = sorted(r for r, s in fetched.items() if s is None)
            if unknown:
                raise GatewayError("validation_error", f"{path}: unknown GTS type(s) referenced: {', '.join(unknown)}.",
                                   errors=[{"path": path, "message": f"unknown GTS type {u}"} for u in unknown])
            next_level: set[str] = set()
            for ref, sub in fetched.items():
                known[ref] = sub  # type: ignore[assignment]
                _gts_refs(sub, next_level)
            pending = next_level - known.keys()
        return self._inline(schema, known, (), path)

    def _inline(self, node: Any, known: dict[str, dict[str, Any]], stack: tuple[str, ...], path: str) -> Any:
        if isinstance(node, list):
            return [self._inline(v, known, stack, path) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(gts.URI_PREFIX):
            ident = gts.strip_uri(ref)
            if ident in stack:
                cycle = " -> ".join((*stack[stack.index(ident):], ident))
                raise GatewayError("validation_error", f"{path}: GTS $ref cycle: {cycle}.",
                                   errors=[{"path": path, "message": f"$ref cycle {cycle}"}])
            if len(stack) >= MAX_DEPTH:
                raise GatewayError("validation_error", f"{path}: GTS references nest deeper than {MAX_DEPTH} levels.",
                                   errors=[{"path": path, "message": "reference depth exceeded"}])
            target = _strip(self._inline(known[ident], known, (*stack, ident), path))
            siblings = {k: self._inline(v, known, stack, path) for k, v in node.items() if k != "$ref"}
            if not siblings:
                return target
            return {"allOf": [target], **siblings}
        return {k: self._inline(v, known, stack, path) for k, v in node.items()}

    # ------------------------------------------------------------ tools

    def tool_from_schema(self, gts_id: str, schema: dict[str, Any], path: str) -> dict[str, Any]:
        """A tool from a GTS type schema: name from the id, description from the schema."""
        from llm_gateway.registry.schemas import check_schema

        resolved = _strip(self.resolve(schema, path))
        description = resolved.pop("description", None) or resolved.get("title") or gts_id
        resolved.pop("title", None)
        if "type" not in resolved and "properties" in resolved:
            resolved["type"] = "object"
        check_schema(resolved, path)
        return {"name": gts.tool_name(gts_id), "description": description, "parameters": resolved, "gts_id": gts_id}

    def resolve_reference_tools(self, refs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Tools for `(schema_id, request path)` pairs, looked up in one batch."""
        ids = [gts.require_type_id(schema_id, path) for schema_id, path in refs]
        found = self.get_many(ids)
        out = []
        for ident, (_, path) in zip(ids, refs):
            schema = found.get(ident)
            if schema is None:
                raise GatewayError("validation_error", f"{path}: unknown schema_id '{ident}' (not in the Type Registry).",
                                   errors=[{"path": path, "message": f"unknown schema_id {ident}"}])
            out.append(self.tool_from_schema(ident, schema, path))
        return out


def load_seed(directory: str | Path, store: Any = None) -> list[str]:
    """Register every `*.json` schema in `directory` (each must carry a `gts://` `$id`)."""
    from llm_gateway.registry.schemas import check_schema

    if store is None:
        from llm_gateway.stores.types import TypeStore

        store = TypeStore()
    registered = []
    for path in sorted(Path(directory).glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        ident = gts.require_type_id(str(schema.get("$id", "")), f"{path.name}.$id")
        check_schema(schema, path.name)
        store.put(ident, schema)
        registered.append(ident)
    return registered


SEED_DIR = Path(__file__).resolve().parent.parent / "seeds" / "types"

_registry: TypeRegistry | None = None


def get_type_registry() -> TypeRegistry:
    global _registry
    if _registry is None:
        _registry = TypeRegistry()
    return _registry


@resets.register
def reset_type_registry() -> None:
    global _registry
    _registry = None
