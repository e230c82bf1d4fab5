"""GTS (Global Type System) identifiers: validation and parsing, per the GTS spec's grammar.

    gts.<vendor>.<package>.<namespace>.<type>.v<MAJOR>[.<MINOR>]~            a type
    gts.x.core.faas.func.v1~vendor.app.ns.get_weather.v1~                  a chained (derived) type

Tokens are lowercase `[a-z_][a-z0-9_]*`; `gts.` appears once, at the start; a trailing `~`
marks a type; at most 1024 characters. In JSON Schema, references are written `gts://<id>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llm_gateway.api.errors import GatewayError

MAX_LENGTH = 1024
_TOKEN = r"[a-z_][a-z0-9_]*"
_VERSION = r"v(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))?"
_SEGMENT = rf"{_TOKEN}\.{_TOKEN}\.{_TOKEN}\.{_TOKEN}\.{_VERSION}"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_TYPE_ID = re.compile(rf"gts\.{_SEGMENT}(?:~{_SEGMENT})*~")
_INSTANCE_ID = re.compile(rf"gts\.{_SEGMENT}(?:~{_SEGMENT})*~(?:{_SEGMENT}|{_UUID})")
_SEGMENT_PARTS = re.compile(rf"({_TOKEN})\.({_TOKEN})\.({_TOKEN})\.({_TOKEN})\.v(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?")

URI_PREFIX = "gts://"


@dataclass(frozen=True, slots=True)
class GtsSegment:
    vendor: str
    package: str
    namespace: str
    type: str
    major: int
    minor: int | None


def strip_uri(value: str) -> str:
    return value[len(URI_PREFIX):] if value.startswith(URI_PREFIX) else value


def is_type_id(value: str) -> bool:
    ident = strip_uri(value)
    return len(ident) <= MAX_LENGTH and _TYPE_ID.fullmatch(ident) is not None


def is_gts_id(value: str) -> bool:
    ident = strip_uri(value)
    return len(ident) <= MAX_LENGTH and (_TYPE_ID.fullmatch(ident) is not None or _INSTANCE_ID.fullmatch(ident) is not None)


def type_id_problem(value: str) -> str | None:
    """Why `value` is not a GTS type identifier (None when it is one)."""
    ident = strip_uri(value)
    if len(ident) > MAX_LENGTH:
        return f"longer than {MAX_LENGTH} characters"
    if _TYPE_ID.fullmatch(ident):
        return None
    if not ident.startswith("gts."):
        return "must start with 'gts.'"
    if ident != ident.lower():
        return "must be lowercase"
    if not ident.endswith("~"):
        return "a type identifier ends with '~'"
    for part in ident[4:].rstrip("~").split("~"):
        if not _SEGMENT_PARTS.fullmatch(part):
            return f"segment '{part[:80]}' is not vendor.package.namespace.type.vMAJOR[.MINOR]"
    return "not a GTS type identifier"


def require_type_id(value: str, path: str) -> str:
    """The bare identifier, or a `validation_error` naming the path and the reason."""
    problem = type_id_problem(value)
    if problem:
        raise GatewayError(
            "validation_error", f"{path}: '{value[:120]}' is not a valid GTS type identifier: {problem}.",
            errors=[{"path": path, "message": f"invalid GTS type identifier: {problem}"}],
        )
    return strip_uri(value)


def segments(value: str) -> list[GtsSegment]:
    ident = strip_uri(value)
    out = []
    for part in ident.removeprefix("gts.").rstrip("~").split("~"):
        m = _SEGMENT_PARTS.fullmatch(part)
        if m:
            out.append(GtsSegment(m[1], m[2], m[3], m[4], int(m[5]), int(m[6]) if m[6] is not None else None))
    return out


def tool_name(value: str) -> str:
    """A tool name from a GTS type id: the `<type>` token of the rightmost segment.

    `gts.x.core.faas.func.v1~vendor.app.ns.get_weather.v1~` -> `get_weather`.
    """
    segs = segments(value)
    if not segs:
        raise ValueError(f"not a GTS identifier: {value!r}")
    return segs[-1].type[:64]
