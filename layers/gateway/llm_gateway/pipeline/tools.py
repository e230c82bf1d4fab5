"""Step 6a — resolve tools to one shape: `{"name", "description", "parameters"[, "gts_id"]}`.

- `unified`: taken as given (name, description, parameters).
- `inline_gts`: the schema carries its own `gts://` type `$id`; name = the `<type>` token of the
  id's rightmost segment (`…~vendor.app.ns.get_weather.v1~` → `get_weather`), description = the
  schema's `description` (else `title`, else the id), parameters = the schema with GTS `$ref`s
  resolved and `$id`/`$schema`/`title`/`description`/`x-gts-*` removed.
- `reference`: a GTS type id looked up in the Type Registry, then as `inline_gts`.

Every parameters schema must be valid JSON Schema; names must be unique and provider-safe.
`tool_result` parts must answer a `tool_call` earlier in the conversation.
"""

from __future__ import annotations

import re
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.registry import gts

TOOL_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def name_from_gts_id(gts_id: str) -> str:
    return gts.tool_name(gts_id)


def resolve_tools(request: ChatRequest, type_registry: Any = None) -> list[dict[str, Any]]:
    check_tool_results(request)
    if not request.tools:
        return []
    from llm_gateway.registry.schemas import check_schema

    if type_registry is None and any(t.type != "unified" for t in request.tools):
        from llm_gateway.registry.types import get_type_registry

        type_registry = get_type_registry()
    slots: list[dict[str, Any] | None] = [None] * len(request.tools)
    references: list[tuple[int, str]] = []
    for i, tool in enumerate(request.tools):
        path = f"tools[{i}]"
        if tool.type == "unified":
            check_schema(tool.parameters.json_schema, f"{path}.parameters.json_schema")
            slots[i] = {"name": tool.name, "description": tool.description, "parameters": tool.parameters.json_schema}
        elif tool.type == "inline_gts":
            schema = tool.schema_.json_schema
            raw_id = schema.get("$id")
            if not isinstance(raw_id, str) or not raw_id.startswith(gts.URI_PREFIX):
                raise GatewayError("validation_error", f"{path}: an inline_gts schema needs a 'gts://' $id.",
                                   errors=[{"path": f"{path}.schema.json_schema.$id", "message": "required gts:// type identifier"}])
            ident = gts.require_type_id(raw_id, f"{path}.schema.json_schema.$id")
            check_schema(schema, f"{path}.schema.json_schema")
            slots[i] = type_registry.tool_from_schema(ident, schema, f"{path}.schema.json_schema")
        else:
            references.append((i, tool.schema_id))
    if references:
        tools = type_registry.resolve_reference_tools([(sid, f"tools[{i}].schema_id") for i, sid in references])
        for (i, _), tool in zip(references, tools):
            slots[i] = tool
    out = [t for t in slots if t is not None]
    seen: dict[str, int] = {}
    for i, tool in enumerate(out):
        if not TOOL_NAME.match(tool["name"]):
            raise GatewayError("validation_error", f"tools[{i}]: tool name '{tool['name'][:80]}' must match ^[A-Za-z0-9_-]{{1,64}}$.",
                               errors=[{"path": f"tools[{i}].name", "message": "invalid tool name"}])
        if tool["name"] in seen:
            raise GatewayError("validation_error", f"tools[{i}]: duplicate tool name '{tool['name']}' (also tools[{seen[tool['name']]}]).",
                               errors=[{"path": f"tools[{i}].name", "message": "duplicate tool name"}])
        seen[tool["name"]] = i
    return out


def check_tool_results(request: ChatRequest) -> None:
    """Every `tool_result` must answer a `tool_call` made earlier in the conversation."""
    calls: set[str] = set()
    for m, message in enumerate(request.messages):
        for p, part in enumerate(message.content):
            if part.type == "tool_call":
                calls.add(part.tool_call.id)
            elif part.type == "tool_result" and part.tool_result.tool_call_id not in calls:
                path = f"messages[{m}].content[{p}].tool_result.tool_call_id"
                raise GatewayError(
                    "validation_error",
                    f"{path}: '{part.tool_result.tool_call_id[:80]}' matches no tool_call earlier in the conversation.",
                    errors=[{"path": path, "message": "no matching tool_call"}],
                )
