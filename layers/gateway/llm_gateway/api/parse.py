"""Request parsing: content type, size, JSON and the contract, each with its own error."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from llm_gateway.api.errors import GatewayError, from_validation_error
from llm_gateway.config import settings

M = TypeVar("M", bound=BaseModel)


def check_body(body: bytes | str | None, content_type: str | None) -> bytes:
    """Size and content type checks, before any parsing work."""
    if body is None or body == "" or body == b"":
        raise GatewayError("validation_error", "The request body is empty; send a JSON object.",
                           errors=[{"path": "$", "message": "body required"}])
    raw = body.encode("utf-8") if isinstance(body, str) else body
    limit = settings().max_body_bytes
    if len(raw) > limit:
        raise GatewayError("payload_too_large", f"The body is {len(raw)} bytes; the limit is {limit} bytes.", limit_bytes=limit)
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        shown = ctype or "none"
        raise GatewayError("unsupported_media_type", f"Content-Type must be application/json (got {shown[:100]}).")
    return raw


def parse_model(model: type[M], raw: bytes, what: str = "request") -> M:
    """One pass: JSON decoding and contract validation together (pydantic-core)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise from_validation_error(exc, what) from None


def parse_json_object(raw: bytes) -> dict[str, Any]:
    import json

    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise GatewayError("invalid_json", f"The body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise GatewayError("validation_error", "The body must be a JSON object.", errors=[{"path": "$", "message": "object expected"}])
    return value
