"""The hook plugin interface (pipeline steps 5 and 10).

A hook sees the request before the provider call (`pre_call`) and the answer after it
(`post_response`), and returns a `HookResult`: `allow`, `modify` (with the new request / text)
or `block` (with a reason). Blocking before the call is `request_blocked` (403), after it
`response_blocked` (451).

Writing a plugin: subclass `Hook`, override either method, register the class in
`llm_gateway.pipeline.hooks.chain.HOOK_TYPES` under a `type` name, and reference that name in a
tenant's `hooks` configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from llm_gateway.api.models import ChatRequest
    from llm_gateway.pipeline.hooks.pii import Span

ALLOW, MODIFY, BLOCK = "allow", "modify", "block"


@dataclass(frozen=True, slots=True)
class HookResult:
    action: str  # allow | modify | block
    reason: str | None = None
    modified: Any = None  # pre_call: a ChatRequest; post_response: the new text

    @classmethod
    def allow(cls) -> "HookResult":
        return _ALLOWED

    @classmethod
    def modify(cls, modified: Any, reason: str | None = None) -> "HookResult":
        return cls(MODIFY, reason, modified)

    @classmethod
    def block(cls, reason: str) -> "HookResult":
        return cls(BLOCK, reason)


_ALLOWED = HookResult(ALLOW)


@dataclass(frozen=True, slots=True)
class HookContext:
    """What a hook may know about the request: ids and the model, never credentials."""

    tenant_id: str
    user_id: str
    request_id: str
    model: str | None
    stream: bool = False


@dataclass(frozen=True, slots=True)
class ResponseView:
    """The answer's text as a post-response hook sees it. For streams `final` is False while the
    text is still growing; buffered answers and the end of a stream have `final=True`."""

    text: str
    final: bool = True


class Hook:
    """Base class: allows everything. `name` appears in errors, logs and audit events."""

    type: ClassVar[str] = "hook"
    # Streams: "incremental" hooks check the growing text as it arrives (must be cheap, local);
    # "final" hooks run once on the whole text at the end; "buffer" hooks also run at the end,
    # but the gateway holds the stream's text back until they allowed it.
    stream_mode: ClassVar[str] = "incremental"

    def __init__(self, name: str | None = None, on_error: str = "open") -> None:
        self.name = name or self.type
        self.on_error = on_error  # open: a failing hook allows; closed: it blocks

    def pre_call(self, ctx: HookContext, request: "ChatRequest") -> HookResult:
        return HookResult.allow()

    def post_response(self, ctx: HookContext, response: ResponseView) -> HookResult:
        return HookResult.allow()

    # Streaming redaction support: hooks that rewrite spans of text (PII masking) return them
    # here, so a stream can be redacted without ever sending an unredacted span.
    redacts: ClassVar[bool] = False

    def spans(self, text: str) -> "list[Span]":
        return []

    def mask(self, text: str, spans: "list[Span]") -> str:
        return text


def text_parts(request: "ChatRequest") -> list[tuple[Any, str]]:
    """(part, attribute) for every piece of free text a request carries (text and tool results)."""
    out: list[tuple[Any, str]] = []
    for message in request.messages:
        for part in message.content:
            if part.type == "text":
                out.append((part, "text"))
            elif part.type == "tool_result":
                out.append((part.tool_result, "content"))
    return out
