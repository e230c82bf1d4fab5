"""A tenant's hooks, in order, and the rules for running them.

Configuration (the tenant's `hooks` object):

    {"on_error": "closed",                       # default policy for hooks that fail (open|closed)
     "pre_call":      [{"type": "pii", "action": "redact"}, {"type": "moderation", "blocklist": [...]}],
     "post_response": [{"type": "pii"}, {"type": "lambda", "function": "arn:…", "timeout_ms": 800}]}

Hooks run in order; a `modify` hands its result to the next hook; the first `block` stops.
Streams: `incremental` hooks (the built-ins) check the text as it arrives — a block ends the
stream with an `event: error` (`response_blocked`); redacting hooks hold back the last
`HOLD_CHARS` characters so a span is masked before any of it is sent; `final` hooks (external)
run once on the whole text at the end; `buffer` hooks hold the whole text until they allowed it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable

from llm_gateway.api.errors import GatewayError
from llm_gateway.observability import logger
from llm_gateway.pipeline.hooks.base import BLOCK, MODIFY, Hook, HookContext, HookResult, ResponseView
from llm_gateway.pipeline.hooks.builtins import HookConfigError, ModerationHook, PiiHook
from llm_gateway.pipeline.hooks.external import LambdaHook
from llm_gateway.pipeline.hooks.pii import MAX_ENTITY_CHARS, Span

if TYPE_CHECKING:
    from llm_gateway.api.models import ChatRequest

HOOK_TYPES: dict[str, Callable[[dict[str, Any]], Hook]] = {
    "pii": PiiHook,
    "moderation": ModerationHook,
    "lambda": LambdaHook,
}
STAGES = ("pre_call", "post_response")
HOLD_CHARS = MAX_ENTITY_CHARS + 16


def build_hook(spec: dict[str, Any], default_on_error: str = "closed") -> Hook:
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise HookConfigError("each hook must be an object with a 'type'")
    factory = HOOK_TYPES.get(spec["type"])
    if factory is None:
        raise HookConfigError(f"unknown hook type {spec['type']!r}; use one of {sorted(HOOK_TYPES)}")
    spec = {**spec}
    spec.setdefault("on_error", default_on_error)
    if spec["on_error"] not in ("open", "closed"):
        raise HookConfigError("on_error must be 'open' or 'closed'")
    return factory(spec)


class HookChain:
    def __init__(self, pre: list[Hook], post: list[Hook]) -> None:
        self.pre = pre
        self.post = post

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> "HookChain":
        config = config or {}
        unknown = set(config) - {"pre_call", "post_response", "on_error"}
        if unknown:
            raise HookConfigError(f"unknown hook settings {sorted(unknown)}")
        default = config.get("on_error", "closed")
        if default not in ("open", "closed"):
            raise HookConfigError("on_error must be 'open' or 'closed'")
        stages = {}
        for stage in STAGES:
            specs = config.get(stage) or []
            if not isinstance(specs, list):
                raise HookConfigError(f"{stage} must be a list of hooks")
            stages[stage] = [build_hook(s, default) for s in specs]
        return cls(stages["pre_call"], stages["post_response"])

    @property
    def empty(self) -> bool:
        return not self.pre and not self.post

    # ------------------------------------------------------------------ running one hook

    @staticmethod
    def _run(hook: Hook, stage: str, call: Callable[[], HookResult], record: list[dict[str, Any]]) -> HookResult:
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - any hook failure goes through the tenant's policy
            failed = f"the hook failed ({str(exc)[:120] or type(exc).__name__})"
            logger.warning("hook failed", extra={"hook": hook.name, "stage": stage, "on_error": hook.on_error,
                                                 "error": type(exc).__name__})
            record.append({"stage": stage, "hook": hook.name, "action": "error", "on_error": hook.on_error})
            if hook.on_error == "closed":
                return HookResult.block(failed + " and its policy is fail-closed")
            return HookResult.allow()
        if result.action != "allow":
            record.append({"stage": stage, "hook": hook.name, "action": result.action, "reason": result.reason})
        return result

    @staticmethod
    def _blocked(stage: str, hook: Hook, reason: str | None) -> GatewayError:
        code = "request_blocked" if stage == "pre_call" else "response_blocked"
        what = "request" if stage == "pre_call" else "response"
        return GatewayError(code, f"The {what} was blocked by the tenant's '{hook.name}' policy: {reason or 'no reason given'}.",
                            hook=hook.name)

    # ------------------------------------------------------------------ stages

    def run_pre(self, ctx: HookContext, request: "ChatRequest", record: list[dict[str, Any]]) -> "ChatRequest":
        for hook in self.pre:
            result = self._run(hook, "pre_call", lambda h=hook, r=request: h.pre_call(ctx, r), record)
            if result.action == BLOCK:
                raise self._blocked("pre_call", hook, result.reason)
            if result.action == MODIFY and result.modified is not None:
                request = result.modified
        return request

    def run_post(self, ctx: HookContext, text: str, record: list[dict[str, Any]], *, final: bool = True,
                 hooks: list[Hook] | None = None) -> str:
        for hook in self.post if hooks is None else hooks:
            view = ResponseView(text=text, final=final)
            result = self._run(hook, "post_response", lambda h=hook, v=view: h.post_response(ctx, v), record)
            if result.action == BLOCK:
                raise self._blocked("post_response", hook, result.reason)
            if result.action == MODIFY and isinstance(result.modified, str):
                text = result.modified
        return text

    def apply_to_content(self, ctx: HookContext, content: list[dict[str, Any]], record: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Buffered answers: post-response hooks on the text parts (joined), the result put back
        as the first text part. Tool calls and media parts are not inspected."""
        texts = [p for p in content if p.get("type") == "text"]
        if not self.post or not texts:
            return content
        original = "".join(p.get("text", "") for p in texts)
        new = self.run_post(ctx, original, record)
        if new == original:
            return content
        out, placed = [], False
        for p in content:
            if p.get("type") == "text":
                if not placed:
                    out.append({**p, "text": new})
                    placed = True
                continue
            out.append(p)
        return out

    def stream_guard(self, ctx: HookContext, record: list[dict[str, Any]]) -> "StreamGuard | None":
        return StreamGuard(self, ctx, record) if self.post else None


class StreamGuard:
    """Post-response hooks over a stream of text deltas: `feed` each delta, send what it
    returns; `finish` at the end returns the rest. Both raise `response_blocked`."""

    def __init__(self, chain: HookChain, ctx: HookContext, record: list[dict[str, Any]]) -> None:
        self.chain = chain
        self.ctx = ctx
        self.record = record
        self.incremental = [h for h in chain.post if h.stream_mode == "incremental"]
        self.redactors = [h for h in self.incremental if h.redacts]
        self.checkers = [h for h in self.incremental if not h.redacts]
        self.final = [h for h in chain.post if h.stream_mode in ("final", "buffer")]
        self.buffer_all = any(h.stream_mode == "buffer" for h in chain.post)
        self.total: list[str] = []
        self.tail = ""  # the last HOLD_CHARS characters seen (for incremental checks)
        self.pending = ""  # text received but not yet released
        self.released: list[str] = []

    def _spans(self, text: str) -> list[tuple[Span, Hook]]:
        """Non-overlapping spans to mask, each with the redactor that found it (first hook wins)."""
        spans: list[tuple[Span, Hook]] = []
        for h in self.redactors:
            for s in h.spans(text):
                if not any(s.start < t.end and t.start < s.end for t, _ in spans):
                    spans.append((s, h))
        spans.sort(key=lambda x: x[0].start)
        return spans

    @staticmethod
    def _mask(text: str, spans: list[tuple[Span, Hook]]) -> str:
        out, pos = [], 0
        for s, hook in spans:
            out.append(text[pos:s.start])
            out.append(hook.mask(text[s.start:s.end], [Span(0, s.end - s.start, s.entity)]))
            pos = s.end
        out.append(text[pos:])
        return "".join(out)

    def feed(self, text: str) -> str:
        self.total.append(text)
        window = self.tail + text
        self.tail = window[-HOLD_CHARS:]
        if self.checkers:
            self.chain.run_post(self.ctx, window, self.record, final=False, hooks=self.checkers)
        if self.buffer_all:
            self.pending += text
            return ""
        if not self.redactors:
            self.released.append(text)
            return text
        self.pending += text
        cut = len(self.pending) - HOLD_CHARS
        if cut <= 0:
            return ""
        spans = self._spans(self.pending)
        for s, _ in spans:
            if s.start < cut < s.end:
                cut = s.start
                break
        out = self._mask(self.pending[:cut], [(s, h) for s, h in spans if s.end <= cut])
        self.pending = self.pending[cut:]
        self.released.append(out)
        return out

    def finish(self) -> str:
        rest = self._mask(self.pending, self._spans(self.pending)) if self.redactors else self.pending
        self.pending = ""
        if self.final:
            whole = "".join(self.released) + rest
            checked = self.chain.run_post(self.ctx, whole, self.record, final=True, hooks=self.final)
            if self.buffer_all:
                rest = checked  # nothing was sent yet: the hooks' version goes out
            elif checked != whole:
                logger.info("stream modification after release ignored", extra={"request_id": self.ctx.request_id})
        self.released.append(rest)
        return rest


def guard_deltas(deltas: Iterator[Any], guard: "StreamGuard", delta_type: Any) -> Iterator[Any]:
    """Wrap a provider's `StreamDelta` iterator with a `StreamGuard`: text passes through the
    guard; held-back text is flushed before the final delta (finish reason / usage)."""
    finished = False
    try:
        for d in deltas:
            final = d.finish_reason is not None or d.usage is not None
            text = guard.feed(d.text) if d.text else None
            if final and not finished:
                finished = True
                text = (text or "") + guard.finish()
            if text or d.tool_calls or final:
                yield delta_type(text=text or None, tool_calls=d.tool_calls, finish_reason=d.finish_reason, usage=d.usage)
        if not finished:
            tail = guard.finish()
            if tail:
                yield delta_type(text=tail)
    except GatewayError:
        close = getattr(deltas, "close", None)
        if close:
            close()
        raise


def config_fingerprint(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))
