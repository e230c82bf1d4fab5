"""Built-in hooks: PII redaction and a blocklist / regex moderator."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from llm_gateway.pipeline.hooks.base import Hook, HookContext, HookResult, ResponseView, text_parts
from llm_gateway.pipeline.hooks.pii import ENTITIES, Span, describe, find_pii, redact

if TYPE_CHECKING:
    from llm_gateway.api.models import ChatRequest


class HookConfigError(ValueError):
    """A hook specification in a tenant's configuration is invalid."""


class _TextHook(Hook, ABC):
    """A local hook that finds spans in text and then blocks or masks them."""

    what = "content"

    def __init__(self, name: str | None, on_error: str, action: str, actions: tuple[str, ...]) -> None:
        super().__init__(name, on_error)
        if action not in actions:
            raise HookConfigError(f"{self.type}: action must be one of {actions}")
        self.action = action
        self.redacts = action == "redact"

    @abstractmethod
    def find(self, text: str) -> list[Span]:
        """The spans this hook acts on."""

    @abstractmethod
    def summary(self, spans: list[Span]) -> str:
        """What was found, by count only (never the content)."""

    def spans(self, text: str) -> list[Span]:
        return self.find(text)

    def pre_call(self, ctx: HookContext, request: "ChatRequest") -> HookResult:
        parts = text_parts(request)
        found = {i: spans for i, (part, attr) in enumerate(parts) if (spans := self.find(getattr(part, attr)))}
        if not found:
            return HookResult.allow()
        every = [s for spans in found.values() for s in spans]
        if self.action == "block":
            return HookResult.block(f"the request contains {self.summary(every)}")
        copy = request.model_copy(deep=True)
        copied = text_parts(copy)  # the copy has the same structure, so the same indices
        for i, spans in found.items():
            part, attr = copied[i]
            setattr(part, attr, self.mask(getattr(part, attr), spans))
        return HookResult.modify(copy, f"redacted {self.summary(every)}")

    def post_response(self, ctx: HookContext, response: ResponseView) -> HookResult:
        spans = self.find(response.text)
        if not spans:
            return HookResult.allow()
        if self.action == "block":
            return HookResult.block(f"the response contains {self.summary(spans)}")
        return HookResult.modify(self.mask(response.text, spans), f"redacted {self.summary(spans)}")


class PiiHook(_TextHook):
    """`{"type": "pii", "action": "redact"|"block", "entities": [...], "mask": "[{entity}]"}`"""

    type = "pii"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec.get("name"), spec.get("on_error", "closed"), spec.get("action", "redact"), ("redact", "block"))
        entities = spec.get("entities")
        if entities is not None:
            if not isinstance(entities, list) or set(entities) - set(ENTITIES):
                raise HookConfigError(f"pii: entities must be a list drawn from {list(ENTITIES)}")
            self.entities: frozenset[str] | None = frozenset(entities)
        else:
            self.entities = None
        self.mask_template = spec.get("mask", "[{entity}]")
        try:
            if not isinstance(self.mask_template, str) or len(self.mask_template) > 64:
                raise ValueError
            self.mask_template.format(entity="EMAIL")
        except (ValueError, KeyError, IndexError):
            raise HookConfigError("pii: mask must be a short string (may use {entity})") from None

    def find(self, text: str) -> list[Span]:
        return find_pii(text, self.entities)

    def summary(self, spans: list[Span]) -> str:
        return describe(spans)

    def mask(self, text: str, spans: list[Span]) -> str:
        return redact(text, spans, self.mask_template)


MAX_PATTERN_CHARS = 500


class ModerationHook(_TextHook):
    """`{"type": "moderation", "blocklist": ["term", …], "patterns": ["regex", …],
    "action": "block"|"redact", "mask": "[BLOCKED]"}` — terms match whole words, case-insensitively."""

    type = "moderation"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec.get("name"), spec.get("on_error", "closed"), spec.get("action", "block"), ("block", "redact"))
        terms = spec.get("blocklist") or []
        patterns = spec.get("patterns") or []
        if not isinstance(terms, list) or not all(isinstance(t, str) and t.strip() for t in terms):
            raise HookConfigError("moderation: blocklist must be a list of non-empty strings")
        if not isinstance(patterns, list) or not all(isinstance(p, str) and 0 < len(p) <= MAX_PATTERN_CHARS for p in patterns):
            raise HookConfigError(f"moderation: patterns must be a list of regular expressions (at most {MAX_PATTERN_CHARS} characters)")
        if not terms and not patterns:
            raise HookConfigError("moderation: give a blocklist, patterns, or both")
        alternatives = [r"(?<!\w)" + re.escape(t.strip()) + r"(?!\w)" for t in sorted(terms, key=len, reverse=True)]
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise HookConfigError(f"moderation: pattern {p[:60]!r} is not a valid regex: {exc}") from None
            alternatives.append(f"(?:{p})")
        self.regex = re.compile("|".join(alternatives), re.IGNORECASE)
        self.mask_text = str(spec.get("mask", "[BLOCKED]"))[:64].replace("{", "{{").replace("}", "}}")

    def find(self, text: str) -> list[Span]:
        return [Span(m.start(), m.end(), "blocked") for m in self.regex.finditer(text) if m.end() > m.start()]

    def summary(self, spans: list[Span]) -> str:
        n = len(spans)
        return f"{n} term{'s' if n > 1 else ''} on the tenant's blocklist"

    def mask(self, text: str, spans: list[Span]) -> str:
        return redact(text, spans, self.mask_text)
