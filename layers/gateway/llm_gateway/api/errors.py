"""One error type for the whole gateway, rendered as RFC 9457 `application/problem+json`.

Every code has exactly one HTTP status (the table below is the documented one, also in the
README). Provider messages are kept, but never credentials: `redact()` scrubs anything that
looks like a key before it reaches a body or a log.
"""

from __future__ import annotations

import re
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://llm-gateway.dev/errors/"

# code -> (HTTP status, title)
ERROR_CODES: dict[str, tuple[int, str]] = {
    # design codes
    "validation_error": (400, "Request validation failed"),
    "model_not_found": (404, "Model not found"),
    "model_not_approved": (403, "Model not approved for this tenant"),
    "model_deprecated": (410, "Model deprecated"),
    "capability_not_supported": (422, "Capability not supported by the model"),
    "budget_exceeded": (402, "Budget exceeded"),
    "rate_limited": (429, "Rate limit exceeded"),
    "request_blocked": (403, "Request blocked by policy"),
    "response_blocked": (451, "Response blocked by policy"),
    "provider_error": (502, "Provider error"),
    "provider_timeout": (504, "Provider timeout"),
    "job_not_found": (404, "Job not found"),
    "job_expired": (410, "Job expired"),
    "batch_not_found": (404, "Batch not found"),
    "batch_expired": (410, "Batch expired"),
    # transport-level codes (documented extensions)
    "invalid_json": (400, "Malformed JSON body"),
    "unauthorized": (401, "Missing or invalid credentials"),
    "forbidden": (403, "Not allowed for these credentials"),
    "not_found": (404, "No such route"),
    "method_not_allowed": (405, "Method not allowed"),
    "payload_too_large": (413, "Request body too large"),
    "unsupported_media_type": (415, "Unsupported content type"),
    "conflict": (409, "Conflicting state"),
    "internal_error": (500, "Internal error"),
}

_SECRETS = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|"
    r"AKIA[0-9A-Z]{16}|llmgw_[A-Za-z0-9_\-]{8,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,})"
)


def redact(text: str) -> str:
    """Remove anything shaped like a credential from provider-supplied text."""
    return _SECRETS.sub("[redacted]", text)


class GatewayError(Exception):
    """The gateway's one error. `code` picks the status; `detail` says precisely what failed."""

    __slots__ = ("code", "detail", "errors", "provider", "retry_after_s", "extra", "headers")

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        provider: str | None = None,
        retry_after_s: float | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.errors = errors
        self.provider = provider
        self.retry_after_s = retry_after_s
        self.headers = headers or {}
        self.extra = extra

    @property
    def status(self) -> int:
        return ERROR_CODES[self.code][0]

    def to_problem(self) -> dict[str, Any]:
        status, title = ERROR_CODES[self.code]
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.code,
            "title": title,
            "status": status,
            "code": self.code,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        if self.provider:
            body["provider"] = self.provider
        if self.retry_after_s is not None:
            body["retry_after_s"] = self.retry_after_s
        body.update(self.extra)
        return body

    def response_headers(self) -> dict[str, str]:
        headers = {"Content-Type": PROBLEM_CONTENT_TYPE, **self.headers}
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, int(-(-self.retry_after_s // 1))))
        return headers

    def __repr__(self) -> str:
        return f"GatewayError({self.code!r}, {self.detail!r})"


# ---------------------------------------------------------------- pydantic -> errors[]

_UNION_MEMBER_NAMES = {"str", "int", "float", "bool", "dict", "list", "none"}
_TAGGED_LISTS = {"content", "tools"}


def _is_union_member(seg: str) -> bool:
    return seg in _UNION_MEMBER_NAMES or any(c in seg for c in "[('\"")


def error_path(loc: tuple[Any, ...]) -> str:
    """Render a pydantic `loc` as `messages[0].content[1].text`.

    Pydantic inserts the discriminator tag after a tagged-union position and the member type
    name inside plain unions; neither is part of the request, so both are dropped.
    """
    out = ""
    prev: Any = None
    prev2: Any = None
    for seg in loc:
        skip = False
        if isinstance(seg, str):
            if isinstance(prev, int) and prev2 in _TAGGED_LISTS:
                skip = True  # the discriminator tag
            elif _is_union_member(seg) or seg.startswith("function-"):
                skip = True
        if not skip:
            if isinstance(seg, int):
                out += f"[{seg}]"
            else:
                out += ("." if out else "") + seg
        prev2, prev = prev, (seg if not skip else "__tag__")
    return out or "$"


def from_validation_error(exc: Any, what: str = "request") -> GatewayError:
    """Map a pydantic `ValidationError` to `invalid_json` or `validation_error` with each path."""
    errs = exc.errors(include_url=False, include_context=False, include_input=False)
    if errs and errs[0]["type"] == "json_invalid":
        return GatewayError("invalid_json", f"The body is not valid JSON: {errs[0]['msg'].removeprefix('Invalid JSON: ')}")
    items = []
    for e in errs:
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "Unknown field (not in the contract or its documented extensions)"
        elif e["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        items.append({"path": error_path(e["loc"]), "message": msg})
    first = items[0]
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    return GatewayError(
        "validation_error",
        f"The {what} is invalid: {first['path']}: {first['message']}{more}",
        errors=items,
    )
