"""Step 6a — resolve tools to one shape: `{"name", "description", "parameters"}`.

`unified` tools are taken as given. `inline_gts` tools carry their own GTS `$id`; the name and
description are derived from it (see README, "Tools"). `reference` tools are looked up in the
Type Registry.
"""

from __future__ import annotations

import re
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest

TOOL_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def name_from_gts_id(gts_id: str) -> str:
    """`gts://gts.x.core.faas.func.v1~vendor.app.ns.get_weather.v1~` -> `get_weather`."""
    ident = gts_id.removeprefix("gts://").rstrip("~")
    last = ident.split("~")[-1]
    segments = [s for s in last.split(".") if s]
    # drop the version segments (vMAJOR[.MINOR]) from the end, keep the type name
    while segments and re.fullmatch(r"v\d+|\d+", segments[-1]):
        segments.pop()
    name = segments[-1] if segments else ident
    return re.sub(r"[^A-Za-z0-9_\-]", "_", name)[:64]


def resolve_tools(request: ChatRequest, type_registry: Any = None) -> list[dict[str, Any]]:
    if not request.tools:
        return []
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(request.tools):
        if tool.type == "unified":
            params = tool.parameters.json_schema
            out.append({"name": tool.name, "description": tool.description, "parameters": params})
        elif tool.type == "inline_gts":
            schema = tool.schema_.json_schema
            gts_id = schema.get("$id")
            if not isinstance(gts_id, str) or not gts_id.startswith("gts://"):
                raise GatewayError("validation_error", f"tools[{i}]: an inline_gts schema needs a 'gts://' $id.",
                                   errors=[{"path": f"tools[{i}].schema.json_schema.$id", "message": "required gts:// identifier"}])
            params = {k: v for k, v in schema.items() if k not in ("$id", "$schema", "title", "description")}
            out.append({"name": name_from_gts_id(gts_id), "description": schema.get("description") or schema.get("title") or "",
                        "parameters": params, "gts_id": gts_id})
        else:
            if type_registry is None:
                raise GatewayError("capability_not_supported",
                                   f"tools[{i}]: 'reference' tools need the Type Registry, which is not configured.")
            out.extend(type_registry.resolve_reference_tools([tool.schema_id]))
    seen: set[str] = set()
    for i, tool in enumerate(out):
        if not TOOL_NAME.match(tool["name"]):
            raise GatewayError("validation_error", f"tools[{i}]: tool name '{tool['name'][:80]}' must match ^[A-Za-z0-9_-]{{1,64}}$.",
                               errors=[{"path": f"tools[{i}].name", "message": "invalid tool name"}])
        if tool["name"] in seen:
            raise GatewayError("validation_error", f"tools[{i}]: duplicate tool name '{tool['name']}'.",
                               errors=[{"path": f"tools[{i}].name", "message": "duplicate tool name"}])
        seen.add(tool["name"])
    return out
