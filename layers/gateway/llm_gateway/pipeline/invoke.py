"""Step 7 — call the provider adapter under the request's TTFT and total timeouts; step 8 — the
fallback chain over such attempts (`pipeline/fallback.py`).

Timeouts. The total budget (`timeout.total_ms`, else the requested model's catalog
`timeouts.total_ms`, else `LLMGW_DEFAULT_TOTAL_MS`) covers the whole request, every fallback
attempt included. The time-to-first-token budget (`timeout.ttft_ms`, else the attempted
model's catalog `timeouts.ttft_ms`, else `LLMGW_DEFAULT_TTFT_MS`) applies to each attempt that
streams from the provider: it ends when the first content delta (text or tool call) arrives.
A buffered request streams from the provider — and so honours its TTFT — when the request sets
`timeout.ttft_ms` and the model can stream; otherwise the provider sends nothing before the
whole answer and only the total budget applies. Each attempt runs under a `CallControl` the
watchdog enforces (`outbound/control.py`), so a stall or a slow trickle ends on time.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.outbound.control import CANCELLED, CallControl, bind, bound, current_scope, unbind, watchdog
from llm_gateway.pipeline.fallback import run_parallel, run_sequential
from llm_gateway.providers import adapter_for
from llm_gateway.providers.base import ChatResult, Deadline, ProviderCall, StreamDelta, TokenUsage
from llm_gateway.registry.catalog import ModelSpec

if TYPE_CHECKING:
    from llm_gateway.pipeline.context import RequestContext

DEFAULT_TTFT_MS = int(os.environ.get("LLMGW_DEFAULT_TTFT_MS", "30000"))
DEFAULT_TOTAL_MS = int(os.environ.get("LLMGW_DEFAULT_TOTAL_MS", "120000"))


def total_ms_for(request: ChatRequest, model: ModelSpec) -> int:
    t = request.timeout
    return int((t.total_ms if t and t.total_ms else None) or model.timeouts.get("total_ms") or DEFAULT_TOTAL_MS)


def ttft_ms_for(request: ChatRequest, model: ModelSpec) -> int:
    t = request.timeout
    return int((t.ttft_ms if t and t.ttft_ms else None) or model.timeouts.get("ttft_ms") or DEFAULT_TTFT_MS)


def deadline_for(request: ChatRequest, model: ModelSpec) -> Deadline:
    """Request timeouts win, then the model's defaults from the catalog, then the global ones."""
    total = total_ms_for(request, model)
    ttft = ttft_ms_for(request, model)
    return Deadline(ttft_s=min(ttft, total) / 1000, total_s=total / 1000)


# ---------------------------------------------------------------- plans and attempts


@dataclass(slots=True)
class Attempt:
    """One provider call in flight: what is sent, and its deadlines / abort handle."""

    call: ProviderCall
    control: CallControl
    streams: bool  # streams from the provider (and so has a time-to-first-token deadline)


@dataclass
class CallPlan:
    """Everything step 7/8 needs: the candidates in order and the shared total budget."""

    request: ChatRequest
    models: list[ModelSpec]
    skipped: list[dict[str, str]]
    strategy: str | None
    total_ms: int
    tools: list[dict[str, Any]] = field(default_factory=list)
    tenant_id: str = ""
    request_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # copied into every attempt's ProviderCall.extra (e.g. fetched media)
    started: float = field(default_factory=time.monotonic)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    scope: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total_at(self) -> float:
        return self.started + self.total_ms / 1000

    def remaining(self) -> float:
        return self.total_at - time.monotonic()

    def cancelled(self) -> bool:
        return bool(self.scope is not None and self.scope.cancelled)

    def note(self, model: ModelSpec, exc: GatewayError | None, outcome: str | None = None) -> None:
        entry: dict[str, Any] = {"model": model.id, "provider": model.provider.id}
        if exc is not None:
            entry.update(outcome="cancelled" if exc.extra.get("cancelled") else "error", code=exc.code, detail=exc.detail)
            if exc.extra.get("timeout"):
                entry["timeout"] = exc.extra["timeout"]
        else:
            entry["outcome"] = outcome or "ok"
        with self._lock:
            self.attempts.append(entry)

    def skip(self, model: ModelSpec, reason: str) -> None:
        with self._lock:
            self.skipped.append({"model": model.id, "reason": reason})

    def final(self, exc: GatewayError) -> GatewayError:
        """The error the client gets when no attempt succeeded: the deciding one, with the trail."""
        if self.strategy is None or "attempts" in exc.extra:
            return exc
        exc.extra["attempts"] = [{k: v for k, v in a.items() if k != "detail"} for a in self.attempts]
        if self.skipped:
            exc.extra["fallback_skipped"] = list(self.skipped)
        if len(self.attempts) > 1:
            exc.detail = f"All {len(self.attempts)} models failed; the last: {exc.detail}"
        untried = len(self.models) - len(self.attempts) - sum(1 for s in self.skipped if s["model"] in {m.id for m in self.models})
        if untried > 0 and exc.code in ("provider_error", "provider_timeout", "rate_limited"):
            why = "the request was cancelled" if self.cancelled() else "no time was left within the total timeout"
            exc.detail += f" {untried} fallback model(s) not tried: {why}."
        return exc


@dataclass
class OpenStream:
    """A provider stream that produced its first content (or ended without any)."""

    attempt: Attempt
    head: list[StreamDelta]
    rest: Iterator[StreamDelta]

    def deltas(self) -> Iterator[StreamDelta]:
        yield from self.head
        self.head = []
        yield from self.rest

    def close(self) -> None:
        close = getattr(self.rest, "close", None)
        if close is not None:
            close()


# ---------------------------------------------------------------- the invoker


class Invoker:
    """Builds provider calls and runs the model's adapter — the one place a provider is called."""

    # ------------------------------------------------------------ single calls
    def call_for(self, request: ChatRequest, model: ModelSpec, tools: list[dict], tenant_id: str, request_id: str) -> ProviderCall:
        return ProviderCall(request=request, model=model, deadline=deadline_for(request, model), tools=tools,
                            tenant_id=tenant_id, request_id=request_id)

    def complete(self, call: ProviderCall, control: CallControl | None = None) -> ChatResult:
        """One buffered attempt."""
        adapter = _checked_adapter(call, control)
        if streams_upstream(call):
            return collect(self.stream(call, control))
        if control is None:
            control = self.control_for(call, streams=False)
        try:
            with bound(control):
                return adapter.chat(call)
        except GatewayError as exc:
            raise control.translate(exc) from None
        except Exception as exc:  # noqa: BLE001 - a broken adapter must not escape as a 500 without a provider
            raise control.translate(_adapter_failure(call, exc)) from None
        finally:
            control.release()

    def stream(self, call: ProviderCall, control: CallControl | None = None) -> Iterator[StreamDelta]:
        """One streamed attempt: the adapter's deltas, under the attempt's deadlines."""
        adapter = _checked_adapter(call, control)
        if control is None:
            control = self.control_for(call, streams=True)
        return _guarded(adapter.stream(call), call, control)

    def control_for(self, call: ProviderCall, *, streams: bool, total_ms: int | None = None) -> CallControl:
        d = call.deadline
        total_s = max(0.0, d.remaining())
        ttft_s = max(0.0, d.first_token_remaining()) if streams else total_s
        control = CallControl(ttft_s=ttft_s, total_s=total_s, provider_id=call.model.provider.id, model_id=call.model.id,
                              total_ms=total_ms)
        watchdog().watch(control)
        scope = current_scope()
        if scope is not None:
            scope.add(control)
        return control

    # ------------------------------------------------------------ with fallback
    def plan(self, ctx: "RequestContext", request: ChatRequest, models: list[ModelSpec], skipped: list[dict[str, str]]) -> CallPlan:
        return CallPlan(
            request=request, models=models, skipped=list(skipped),
            strategy=request.fallback.strategy if request.fallback is not None else None,
            total_ms=total_ms_for(request, models[0]), tools=ctx.tools, tenant_id=ctx.tenant_id,
            request_id=ctx.request_id, scope=current_scope(),
        )

    def attempt(self, plan: CallPlan, model: ModelSpec) -> Attempt:
        now = time.monotonic()
        total_s = max(0.0, plan.total_at - now)
        deadline = Deadline(ttft_s=min(ttft_ms_for(plan.request, model) / 1000, total_s), total_s=total_s, started=now)
        call = ProviderCall(request=plan.request, model=model, deadline=deadline, tools=plan.tools,
                            tenant_id=plan.tenant_id, request_id=plan.request_id, extra=dict(plan.extra))
        streams = bool(plan.request.stream) or streams_upstream(call)
        return Attempt(call, self.control_for(call, streams=streams, total_ms=plan.total_ms), streams)

    def run(self, plan: CallPlan) -> tuple[Attempt, ChatResult]:
        """A buffered answer from the first model that gives one."""
        def run_one(a: Attempt) -> ChatResult:
            return self.complete(a.call, a.control)

        if plan.strategy == "parallel" and len(plan.models) > 1:
            return run_parallel(plan, lambda m: self.attempt(plan, m), run_one, dispose=lambda _r: None)
        return run_sequential(plan, lambda m: self.attempt(plan, m), run_one)

    def open_stream(self, plan: CallPlan) -> OpenStream:
        """A provider stream that reached its first content delta (falling back until one does)."""
        def run_one(a: Attempt) -> OpenStream:
            deltas = self.stream(a.call, a.control)
            head: list[StreamDelta] = []
            for delta in deltas:  # an error here propagates: the guard closed the provider stream
                head.append(delta)
                if delta.text or delta.tool_calls:
                    break
            return OpenStream(a, head, deltas)

        if plan.strategy == "parallel" and len(plan.models) > 1:
            return run_parallel(plan, lambda m: self.attempt(plan, m), run_one, dispose=OpenStream.close)[1]
        return run_sequential(plan, lambda m: self.attempt(plan, m), run_one)[1]


def _checked_adapter(call: ProviderCall, control: CallControl | None) -> Any:
    """The model's adapter, after it checked (before any network call) that it can take the call."""
    try:
        adapter = adapter_for(call.model.provider)
        adapter.check(call)
    except BaseException:
        if control is not None:
            control.release()
        raise
    return adapter


def _guarded(deltas: Iterator[StreamDelta], call: ProviderCall, control: CallControl) -> Iterator[StreamDelta]:
    """Run each step of the adapter's generator with the attempt's control bound (so the outbound
    client applies its deadlines), name timeouts after their deadline, and close the provider
    stream however iteration ends."""
    try:
        while True:
            token = bind(control)
            try:
                delta = next(deltas)
            except StopIteration:
                return
            except GatewayError as exc:
                raise control.translate(exc) from None
            except Exception as exc:  # noqa: BLE001
                raise control.translate(_adapter_failure(call, exc)) from None
            finally:
                unbind(token)
            if control.first_token_at is None and (delta.text or delta.tool_calls):
                control.mark_first_token()
            if control.reason is not None or control.due() is not None:
                control.check()  # adapters that do not use the outbound client are checked here
            yield delta
    finally:
        close = getattr(deltas, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing a broken stream must not mask the real error
                pass
        control.release()


def _adapter_failure(call: ProviderCall, exc: Exception) -> GatewayError:
    from llm_gateway.observability import logger

    logger.error("provider adapter failed", extra={"provider": call.model.provider.id, "error_type": type(exc).__name__})
    return GatewayError("provider_error", f"Provider '{call.model.provider.id}' adapter failed ({type(exc).__name__}).",
                        provider=call.model.provider.id)


def streams_upstream(call: ProviderCall) -> bool:
    """A buffered request with an explicit `timeout.ttft_ms` streams from a model that can."""
    t = call.request.timeout
    return bool(not call.request.stream and t is not None and t.ttft_ms and "stream" in call.model.capabilities)


def collect(deltas: Iterator[StreamDelta]) -> ChatResult:
    """A buffered answer from a provider stream (text joined, tool-call fragments assembled)."""
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = "stop"
    usage = TokenUsage()
    provider = None
    for d in deltas:
        if d.text:
            text.append(d.text)
        for tc in d.tool_calls or ():
            slot = calls.setdefault(int(tc.get("index", 0)), {"id": "", "name": "", "arguments": ""})
            if tc.get("id"):
                slot["id"] = tc["id"]
            fn = tc.get("function") or {}
            if fn.get("name"):
                slot["name"] = fn["name"]
            if fn.get("arguments"):
                slot["arguments"] += fn["arguments"]
        if d.finish_reason:
            finish = d.finish_reason
        if d.usage is not None:
            usage = d.usage
    tool_calls = []
    for _, slot in sorted(calls.items()):
        raw = slot["arguments"]
        try:
            args = json.loads(raw) if raw else {}
        except ValueError:
            raise GatewayError("provider_error", "The provider streamed tool arguments that are not JSON.", provider=provider) from None
        tool_calls.append({"id": slot["id"], "name": slot["name"], "arguments": args if isinstance(args, dict) else {"value": args}})
    joined = "".join(text)
    return ChatResult(content=[{"type": "text", "text": joined}] if joined else [], tool_calls=tool_calls,
                      finish_reason=finish, usage=usage)


__all__ = ["Attempt", "CallPlan", "Invoker", "OpenStream", "collect", "deadline_for", "streams_upstream", "CANCELLED"]
