"""Structured output (UC-011): prepare `response_schema`, then validate the model's answer.

The schema must be valid Draft 2020-12 JSON Schema; GTS `$ref`s in it are resolved through the
Type Registry before it reaches the provider. The answer is parsed as JSON (a Markdown code fence
around it is tolerated) and validated with a compiled, cached validator; a non-conforming answer
is a `validation_error` listing each failing instance path, message and schema path. A
conforming one is returned as `parsed` on the response.
"""

from __future__ import annotations

import json
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.registry.schemas import check_schema, instance_errors


def prepare_response_schema(request: ChatRequest, type_registry: Any = None) -> dict[str, Any] | None:
    if request.response_schema is None:
        return None
    schema = request.response_schema.json_schema
    check_schema(schema, "response_schema.json_schema")
    if "gts://" in json.dumps(schema):
        if type_registry is None:
            from llm_gateway.registry.types import get_type_registry

            type_registry = get_type_registry()
        schema = type_registry.resolve(schema, "response_schema.json_schema")
    return schema


def _unfence(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        first_newline = stripped.find("\n")
        if first_newline != -1 and stripped.endswith("```"):
            return stripped[first_newline + 1 : -3].strip()
    return stripped


def validate_answer(schema: dict[str, Any], text: str, **extra: Any) -> Any:
    """The parsed answer, or a `validation_error` saying exactly where it breaks the schema."""
    try:
        value = json.loads(_unfence(text))
    except ValueError as exc:
        raise GatewayError(
            "validation_error",
            f"The model's answer is not valid JSON, so it cannot match response_schema ({exc.msg} at position {exc.pos}).",
            errors=[{"path": "/", "message": f"not JSON: {exc.msg}", "schema_path": "#"}],
            source="model_output", **extra,
        ) from None
    errors = instance_errors(schema, value)
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise GatewayError(
            "validation_error",
            f"The model's answer does not conform to response_schema: {first['path']}: {first['message']}{more}.",
            errors=errors, source="model_output", **extra,
        )
    return value


def text_of_parts(parts: list[dict[str, Any]]) -> str:
    return "".join(p.get("text", "") for p in parts if p.get("type") == "text")
