"""The chat pipeline: the one place that orders the request steps of the design.

    1 authenticate        (entry point: `Authenticator`, before the body is trusted)
    4 resolve model       (`ModelResolver`: registry, lifecycle, capabilities; fallback candidates)
    2 3 5 govern          (`Governance.before_call`: approval, rate limits + budgets in one
                           DynamoDB round trip, pre-call hooks — after 4, so a request for an
                           unknown model never spends a rate-limit slot)
    6 resolve tools
    7 invoke provider     (`Invoker`, under TTFT/total timeouts)
    8 fallback chain      (`Invoker.run` / `Invoker.open_stream`, `pipeline/fallback.py`)
    9 normalize
    10 post-response hooks (`Governance.after_response` / `guard_stream`)
    11 report usage       (`UsageReporter`: record, aggregate, budget charge, audit events)

`_prepare` runs the steps before any provider call and returns the `CallPlan`; the provider is
called in exactly one place per mode (`self.invoker.run(plan)` buffered,
`self.invoker.open_stream(plan)` streamed). Both `complete()` (buffered) and `stream()` (a
generator of SSE frames) run the same steps; every transport — the HTTP API Lambda, the
streaming Function URL app, the local server — calls one of these two.

Streams. Frames are `data: {StreamChunk}`: the role first, then content / tool-call deltas,
then one chunk with `finish_reason` and `usage` (always), then `data: [DONE]`. The stream
starts (and the HTTP status is decided) when the first content delta is in hand, so a failure
before it — after fallback — is an ordinary error response. A failure after it ends the stream
with `event: error` + the problem body (with the `usage` of what was generated) and no
`[DONE]`: `[DONE]` always means the answer is complete. A consumer that stops reading (client
gone) closes the generator: the provider's response is closed and the usage of what was
generated is still recorded (`outcome: cancelled`; output tokens estimated from the streamed text
when the provider never reported them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.api.render import SSE_DONE, response_body, sse_data, sse_error, usage_body
from llm_gateway.observability import logger
from llm_gateway.outbound.control import CANCELLED
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.pipeline.fallback import fallback_candidates
from llm_gateway.pipeline.governance import Governance, get_governance
from llm_gateway.pipeline.invoke import CallPlan, Invoker, OpenStream
from llm_gateway.pipeline.media import MEDIA_CAPABILITIES, MediaResolver
from llm_gateway.pipeline.modalities import OUTPUT_CAPABILITIES, media_outputs
from llm_gateway.pipeline.structured import prepare_response_schema, text_of_parts, validate_answer
from llm_gateway.pipeline.tools import resolve_tools
from llm_gateway.pipeline.usage import UsageReporter
from llm_gateway.providers.base import TokenUsage
from llm_gateway.registry.capabilities import required_capabilities
from llm_gateway.registry.catalog import Catalog, ModelSpec, get_catalog


class ModelResolver:
    """Step 4 — the registry entry for the requested model, checked against what it must do."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self._catalog = catalog

    @property
    def catalog(self) -> Catalog:
        return self._catalog or get_catalog()

    def resolve(self, ctx: RequestContext, request: ChatRequest) -> None:
        model = self.catalog.resolve(request.model)
        ctx.needs = required_capabilities(request)
        Catalog.require(model, ctx.needs)
        ctx.model = model

    def fallbacks(self, ctx: RequestContext, request: ChatRequest) -> tuple[list[ModelSpec], list[dict[str, str]]]:
        """The models to try in order (the resolved one first) and the fallback models skipped."""
        assert ctx.model is not None
        return fallback_candidates(self.catalog, request, ctx.model, ctx.needs)


class ChatPipeline:
    def __init__(
        self,
        *,
        resolver: ModelResolver | None = None,
        invoker: Invoker | None = None,
        usage: UsageReporter | None = None,
        type_registry: Any = None,
        governance: Governance | None = None,
    ) -> None:
        self.resolver = resolver or ModelResolver()
        self.invoker = invoker or Invoker()
        self.usage = usage or UsageReporter()
        self.type_registry = type_registry
        self.governance = governance or get_governance()

    # ------------------------------------------------------------ shared steps

    def _prepare(self, ctx: RequestContext, request: ChatRequest) -> CallPlan:
        ctx.request = request
        self.resolver.resolve(ctx, request)  # 4
        request = self.governance.before_call(ctx, request)  # 2 3 5 (may return a hook-modified request)
        ctx.tools = resolve_tools(request, self.type_registry)  # 6
        schema = prepare_response_schema(request, self.type_registry)  # 6 (structured output, GTS refs inlined)
        models, skipped = self.resolver.fallbacks(ctx, request)  # 8 (candidates)
        plan = self.invoker.plan(ctx, request, models, skipped)
        if schema is not None:
            plan.extra["response_schema"] = schema
            ctx.attributes["response_schema"] = schema
        if ctx.needs & MEDIA_CAPABILITIES:  # 6b fetch media parts (pipeline/media.py) into every attempt's call.extra
            plan.extra["media"] = MediaResolver().resolve(request, ctx.model, ctx.tenant_id)
        return plan

    def _fail(self, ctx: RequestContext, exc: GatewayError) -> None:
        if exc.extra.get("cancelled"):
            ctx.outcome = "cancelled"
            ctx.error_code = None
            return
        ctx.outcome = "error"
        ctx.error_code = exc.code
        logger.info("request failed", extra={"request_id": ctx.request_id, "code": exc.code, "provider": exc.provider})

    def _answered_by(self, ctx: RequestContext, plan: CallPlan, model: ModelSpec) -> None:
        ctx.model_used = model
        ctx.fallback_used = model is not plan.models[0]
        ctx.response_headers["x-llmgw-provider"] = model.provider.id
        ctx.response_headers["x-llmgw-model"] = model.id
        if plan.strategy is not None:
            ctx.response_headers["x-llmgw-fallback-used"] = "true" if ctx.fallback_used else "false"
            if plan.skipped:
                ctx.response_headers["x-llmgw-fallback-skipped"] = ", ".join(s["model"] for s in plan.skipped)

    def _trail(self, ctx: RequestContext, plan: CallPlan | None) -> None:
        """What fallback did, for the usage record (metadata only)."""
        if plan is None or plan.strategy is None:
            return
        extra = ctx.attributes.setdefault("usage_record", {})
        extra["attempts"] = len(plan.attempts)
        extra["fallback_strategy"] = plan.strategy
        failed = [f"{a['model']}={a.get('code') or a['outcome']}" for a in plan.attempts if a["outcome"] != "ok"]
        if failed:
            extra["attempt_errors"] = ",".join(failed)
        if plan.skipped:
            extra["fallback_skipped"] = ",".join(s["model"] for s in plan.skipped)

    # ------------------------------------------------------------ buffered

    def complete(self, ctx: RequestContext, request: ChatRequest) -> dict[str, Any]:
        plan = None
        try:
            plan = self._prepare(ctx, request)
            if ctx.model.capabilities & OUTPUT_CAPABILITIES:  # image / speech / transcription / video models
                return media_outputs().complete(self, ctx, plan)  # pipeline/modalities.py
            attempt, result = self.invoker.run(plan)  # 7 + 8: the provider call(s)
        except GatewayError as exc:
            self._fail(ctx, exc)
            self._trail(ctx, plan)
            if ctx.model is not None:
                self.usage.report(ctx)
            raise
        model = attempt.call.model
        self._answered_by(ctx, plan, model)
        self._trail(ctx, plan)
        ctx.usage = result.usage
        ctx.finish_reason = result.finish_reason
        cost = self.usage.price(ctx)
        parsed = None
        try:
            result.content = self.governance.after_response(ctx, result.content)  # 10
            schema = ctx.attributes.get("response_schema")
            if schema is not None and not result.tool_calls:  # 9: validate structured output
                parsed = validate_answer(schema, text_of_parts(result.content))
        except GatewayError as exc:  # response_blocked / non-conforming answer: the generation is still charged
            self._fail(ctx, exc)
            self.usage.report(ctx)
            raise
        body = response_body(
            response_id="gen_" + ctx.request_id.removeprefix("req_"),
            model_used=model.id,
            provider=model.provider.id,
            content=result.content,
            tool_calls=result.tool_calls,
            finish_reason=result.finish_reason,
            usage=result.usage,
            cost=cost,
            fallback_used=ctx.fallback_used,
            parsed=parsed,
        )
        self.usage.report(ctx)
        return body

    # ------------------------------------------------------------ streamed

    def stream(self, ctx: RequestContext, request: ChatRequest) -> Iterator[str]:
        """SSE frames. Errors before the first content delta raise (the caller answers with a
        problem body and its status); errors after it end the stream with `event: error`."""
        plan = None
        try:
            plan = self._prepare(ctx, request)
            if ctx.model.capabilities & OUTPUT_CAPABILITIES:  # streamed speech / transcripts: pipeline/modalities.py
                return media_outputs().stream(self, ctx, plan)
            opened = self.invoker.open_stream(plan)  # 7 + 8: the provider call(s), up to the first content
        except GatewayError as exc:
            self._fail(ctx, exc)
            self._trail(ctx, plan)
            if ctx.model is not None:
                self.usage.report(ctx)
            raise
        self._answered_by(ctx, plan, opened.attempt.call.model)
        self._trail(ctx, plan)
        return self._frames(ctx, opened)

    def _frames(self, ctx: RequestContext, opened: OpenStream) -> Iterator[str]:
        model_id = opened.attempt.call.model.id
        chunk_id = "gen_" + ctx.request_id.removeprefix("req_")
        control = opened.attempt.control
        finish = None
        out_chars = 0
        completed = False
        schema = ctx.attributes.get("response_schema")
        answer: list[str] = []  # kept only for structured output, validated at the end
        called_tools = False
        try:
            yield sse_data({"id": chunk_id, "model": model_id, "delta": {"role": "assistant"}})
            for delta in self.governance.guard_stream(ctx, opened.deltas()):  # 10 (streamed)
                if delta.usage is not None:
                    ctx.usage = delta.usage
                if delta.finish_reason is not None:
                    finish = delta.finish_reason
                if not delta.text and not delta.tool_calls:
                    continue
                out: dict[str, Any] = {}
                if delta.text:
                    out["content"] = delta.text
                    out_chars += len(delta.text)
                    if schema is not None:
                        answer.append(delta.text)
                if delta.tool_calls:
                    called_tools = True
                    out["tool_calls"] = delta.tool_calls
                    out_chars += sum(_tool_delta_chars(tc) for tc in delta.tool_calls)
                if ctx.ttft_ms is None:
                    ctx.ttft_ms = ctx.elapsed_ms()
                yield sse_data({"id": chunk_id, "model": model_id, "delta": out})
            if schema is not None and not called_tools:
                validate_answer(schema, "".join(answer))  # a non-conforming answer ends with the error event
            completed = True
            ctx.finish_reason = finish or "stop"
            self._settle_usage(ctx, out_chars)
            yield sse_data({"id": chunk_id, "model": model_id, "delta": {}, "finish_reason": ctx.finish_reason,
                            "usage": usage_body(ctx.usage, ctx.cost)})
            yield SSE_DONE
        except GatewayError as exc:
            if exc.extra.get("cancelled") or control.reason == CANCELLED:
                ctx.outcome = "cancelled"  # the client went away: nobody to tell
            else:
                self._fail(ctx, exc)
                self._settle_usage(ctx, out_chars)
                problem = exc.to_problem()
                problem["instance"] = ctx.request_id
                problem["usage"] = usage_body(ctx.usage, ctx.cost)
                yield sse_error(problem)
        except GeneratorExit:
            ctx.outcome = "cancelled"
            raise
        finally:
            opened.close()  # closes the provider's response if it is still open
            if not completed:
                self._settle_usage(ctx, out_chars)
            self.usage.report(ctx)

    def _settle_usage(self, ctx: RequestContext, out_chars: int) -> None:
        """Usage of what was generated; estimated when the provider did not report it."""
        usage = ctx.usage
        if usage is None:
            usage = ctx.usage = TokenUsage(input_tokens=estimate_input_tokens(ctx), output_tokens=estimate_tokens_from_chars(out_chars))
            ctx.attributes.setdefault("usage_record", {})["usage_estimated"] = True
        elif usage.output_tokens == 0 and out_chars:
            usage.output_tokens = estimate_tokens_from_chars(out_chars)
            ctx.attributes.setdefault("usage_record", {})["usage_estimated"] = True
        self.usage.price(ctx)


# ---------------------------------------------------------------- estimates (provider sent no usage)

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 3


def estimate_tokens_from_chars(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN) if chars > 0 else 0


def estimate_input_tokens(ctx: RequestContext) -> int:
    """About four characters a token over the text the provider was sent (media not counted)."""
    request = ctx.request
    if request is None:
        return 0
    chars = 0
    for message in request.messages:
        for part in message.content:
            if part.type == "text":
                chars += len(part.text)
            elif part.type == "tool_result":
                chars += len(part.tool_result.content)
            elif part.type == "tool_call":
                chars += len(part.tool_call.name) + len(str(part.tool_call.arguments))
    for tool in ctx.tools:
        chars += len(tool.get("name", "")) + len(tool.get("description", "")) + len(str(tool.get("parameters", "")))
    return estimate_tokens_from_chars(chars) + MESSAGE_OVERHEAD_TOKENS * len(request.messages)


def _tool_delta_chars(tc: dict[str, Any]) -> int:
    fn = tc.get("function") or {}
    return len(fn.get("name") or "") + len(fn.get("arguments") or "")
