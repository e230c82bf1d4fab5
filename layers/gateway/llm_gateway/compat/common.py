"""What both front doors share: gateway extensions as headers, native SSE frame parsing, the
native request a door request becomes, and a small multipart/form-data reader.

Gateway extensions the door formats have no field for are documented headers (header names are
case-insensitive; the HTTP layers lower-case them):

| header                       | native field                         |
| ---------------------------- | ------------------------------------ |
| `x-llmgw-fallback`           | `fallback.models` (comma-separated ids or aliases) |
| `x-llmgw-fallback-strategy`  | `fallback.strategy` (`sequential`, default, or `parallel`) |
| `x-llmgw-timeout-ttft-ms`    | `timeout.ttft_ms`                    |
| `x-llmgw-timeout-total-ms`   | `timeout.total_ms`                   |
| `x-llmgw-conversation-id`    | `metadata.conversation_id`           |

The same native fields may also be sent in the door body (`fallback`, `timeout`, `media`; e.g.
the OpenAI SDK's `extra_body`); a header wins over the body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from pydantic_core import from_json, to_json

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.parse import check_body
from llm_gateway.service.http import HttpRequest

EXT_PREFIX = "x-llmgw-"
FALLBACK = "x-llmgw-fallback"
FALLBACK_STRATEGY = "x-llmgw-fallback-strategy"
TTFT = "x-llmgw-timeout-ttft-ms"
TOTAL = "x-llmgw-timeout-total-ms"
CONVERSATION = "x-llmgw-conversation-id"
# native extension fields a door body may carry as they are (OpenAI SDK: `extra_body`)
BODY_EXTENSIONS = ("fallback", "timeout", "media")


def dumps(value: Any) -> str:
    """Compact JSON (pydantic-core's encoder: several times faster than `json.dumps` here)."""
    return to_json(value).decode("utf-8")


def loads(data: str | bytes) -> Any:
    return from_json(data)


def parse_body(body: bytes | str | None, content_type: str | None) -> dict[str, Any]:
    """A door's JSON body: size and content type checked, decoded, an object."""
    raw = check_body(body, content_type)
    try:
        value = from_json(raw)
    except ValueError as exc:
        raise GatewayError("invalid_json", f"The body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise invalid("The body must be a JSON object.")
    return value


def invalid(message: str, param: str | None = None) -> GatewayError:
    """A door-level `validation_error` (`param` is the door's own path of the offending field)."""
    errors = [{"path": param or "$", "message": message}]
    return GatewayError("validation_error", message, errors=errors)


def _int_header(headers: Mapping[str, str], name: str) -> int:
    raw = headers[name].strip()
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"The header {name} must be a whole number of milliseconds (got {raw[:40]!r}).", name) from None
    if not 1 <= value <= 900_000:
        raise invalid(f"The header {name} must be between 1 and 900000 milliseconds (got {value}).", name)
    return value


def apply_extensions(native: dict[str, Any], headers: Mapping[str, str]) -> None:
    """Gateway extension headers → the native request's `fallback`, `timeout`, `metadata`."""
    if not any(k.startswith(EXT_PREFIX) for k in headers):
        return
    if FALLBACK in headers:
        models = [m.strip() for m in headers[FALLBACK].split(",") if m.strip()]
        if not models:
            raise invalid(f"The header {FALLBACK} must list at least one model id or alias (comma-separated).", FALLBACK)
        native["fallback"] = {"models": models, "strategy": headers.get(FALLBACK_STRATEGY, "sequential").strip().lower()}
    elif FALLBACK_STRATEGY in headers:
        if isinstance(native.get("fallback"), dict):
            native["fallback"]["strategy"] = headers[FALLBACK_STRATEGY].strip().lower()
        else:
            raise invalid(f"The header {FALLBACK_STRATEGY} needs {FALLBACK} (the models to fall back to).", FALLBACK_STRATEGY)
    if TTFT in headers or TOTAL in headers:
        timeout = dict(native.get("timeout") or {})
        if TTFT in headers:
            timeout["ttft_ms"] = _int_header(headers, TTFT)
        if TOTAL in headers:
            timeout["total_ms"] = _int_header(headers, TOTAL)
        native["timeout"] = timeout
    if CONVERSATION in headers:
        conversation = headers[CONVERSATION].strip()
        if conversation:
            metadata = native.get("metadata") or {}
            metadata["conversation_id"] = conversation
            native["metadata"] = metadata


def native_request(req: HttpRequest, native: dict[str, Any], path: str = "/chat/completions") -> HttpRequest:
    """The native request a door request becomes: same caller, headers and request id."""
    headers = dict(req.headers)
    headers["content-type"] = "application/json"
    headers.pop("content-length", None)
    return HttpRequest(method="POST", path=path, headers=headers, body=to_json(native), query={},
                       authorizer=req.authorizer, request_id=req.request_id, source_ip=req.source_ip)


def frame_events(frame: str) -> list[tuple[str | None, str]]:
    """The (event, data) pairs of one or more native SSE frames (`data: …`, `event: error`)."""
    if frame.startswith("data: ") and frame.endswith("\n\n") and frame.count("\n\n") == 1 and "\n" not in frame[6:-2]:
        return [(None, frame[6:-2])]  # the usual case: one single-line data frame
    out: list[tuple[str | None, str]] = []
    for block in frame.split("\n\n"):
        if not block.strip():
            continue
        event = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        out.append((event, "\n".join(data)))
    return out


def problem_of(body: str | bytes) -> dict[str, Any]:
    """A native problem body (never fails: an unreadable one becomes an internal error)."""
    try:
        value = from_json(body)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return {"status": 500, "code": "internal_error", "detail": "The gateway failed unexpectedly; the error was logged."}
    return value


def passthrough_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A native response's headers, less its content type (the door sets its own)."""
    return {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}


# ---------------------------------------------------------------- multipart/form-data


@dataclass(slots=True)
class FormPart:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    main, *rest = value.split(";")
    params: dict[str, str] = {}
    for item in rest:
        key, sep, val = item.strip().partition("=")
        if sep:
            val = val.strip()
            if len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1].replace('\\"', '"')
            params[key.strip().lower()] = val
    return main.strip().lower(), params


def parse_multipart(body: bytes, content_type: str | None) -> dict[str, list[FormPart]]:
    """The fields of a `multipart/form-data` body, by name (a name may repeat: `x[]`)."""
    ctype, params = _header_params(content_type or "")
    if ctype != "multipart/form-data" or not params.get("boundary"):
        raise GatewayError("unsupported_media_type", f"Content-Type must be multipart/form-data with a boundary (got {ctype or 'none'}).")
    delimiter = b"--" + params["boundary"].encode("latin-1")
    fields: dict[str, list[FormPart]] = {}
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise invalid("The multipart body has no parts.")
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        chunk = chunk.removeprefix(b"\r\n")
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise invalid("A multipart part has no header/body separator.")
        data = data.removesuffix(b"\r\n")
        name = filename = part_type = None
        for line in head.decode("utf-8", errors="replace").split("\r\n"):
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "content-disposition":
                _, disp = _header_params(value)
                name, filename = disp.get("name"), disp.get("filename")
            elif key == "content-type":
                part_type = value.strip()
        if name is None:
            raise invalid("A multipart part has no Content-Disposition name.")
        fields.setdefault(name, []).append(FormPart(name, data, filename, part_type))
    return fields
