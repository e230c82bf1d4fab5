"""The chat pipeline: the one place that orders the request steps of the design.

    1 authenticate        (entry point: `Authenticator`, before the body is trusted)
    4 resolve model       (`ModelResolver`: registry, lifecycle, capabilities)
    6 resolve tools
    7 invoke provider     (`Invoker`, under TTFT/total timeouts)
    9 normalize
    11 report usage       (`UsageReporter`)

Both `complete()` (buffered) and `stream()` (a generator of SSE frames) run the same steps;
every transport — the HTTP API Lambda, the streaming Function URL app, the local server —
calls one of these two.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.api.render import SSE_DONE, response_body, sse_data, sse_error, usage_body
from llm_gateway.observability import logger
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.pipeline.invoke import Invoker
from llm_gateway.pipeline.tools import resolve_tools
from llm_gateway.pipeline.usage import UsageReporter
from llm_gateway.providers.base import TokenUsage
from llm_gateway.registry.capabilities import required_capabilities
from llm_gateway.registry.catalog import Catalog, get_catalog


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


class ChatPipeline:
    def __init__(
        self,
        *,
        resolver: ModelResolver | None = None,
        invoker: Invoker | None = None,
        usage: UsageReporter | None = None,
        type_registry: Any = None,
    ) -> None:
        self.resolver = resolver or ModelResolver()
        self.invoker = invoker or Invoker()
        self.usage = usage or UsageReporter()
        self.type_registry = type_registry

    # ------------------------------------------------------------ shared steps

    def _prepare(self, ctx: RequestContext, request: ChatRequest):
        ctx.request = request
        self.resolver.resolve(ctx, request)
        ctx.tools = resolve_tools(request, self.type_registry)
        assert ctx.model is not None
        return self.invoker.call_for(request, ctx.model, ctx.tools, ctx.tenant_id, ctx.request_id)

    def _fail(self, ctx: RequestContext, exc: GatewayError) -> None:
        ctx.outcome = "error"
        ctx.error_code = exc.code
        logger.info("request failed", extra={"request_id": ctx.request_id, "code": exc.code, "provider": exc.provider})

    # ------------------------------------------------------------ buffered

    def complete(self, ctx: RequestContext, request: ChatRequest) -> dict[str, Any]:
        try:
            call = self._prepare(ctx, request)
            result = self.invoker.complete(call)
        except GatewayError as exc:
            self._fail(ctx, exc)
            if ctx.model is not None:
                self.usage.report(ctx)
            raise
        ctx.model_used = call.model
        ctx.usage = result.usage
        ctx.finish_reason = result.finish_reason
        cost = self.usage.price(ctx)
        body = response_body(
            response_id="gen_" + ctx.request_id.removeprefix("req_"),
            model_used=call.model.id,
            provider=call.model.provider.id,
            content=result.content,
            tool_calls=result.tool_calls,
            finish_reason=result.finish_reason,
            usage=result.usage,
            cost=cost,
            fallback_used=ctx.fallback_used,
        )
        ctx.response_headers["x-llmgw-provider"] = call.model.provider.id
        ctx.response_headers["x-llmgw-model"] = call.model.id
        self.usage.report(ctx)
        return body

    # ------------------------------------------------------------ streamed

    def stream(self, ctx: RequestContext, request: ChatRequest) -> Iterator[str]:
        """SSE frames. Errors before the first frame raise (the caller answers with a problem
        body and its status); errors after it end the stream with `event: error`."""
        call = None
        try:
            call = self._prepare(ctx, request)
            deltas = self.invoker.stream(call)
            first = next(deltas)  # provider errors before any content surface as exceptions here
        except StopIteration:
            first = None
            deltas = iter(())
        except GatewayError as exc:
            self._fail(ctx, exc)
            if ctx.model is not None:
                self.usage.report(ctx)
            raise
        ctx.response_headers["x-llmgw-provider"] = call.model.provider.id
        ctx.response_headers["x-llmgw-model"] = call.model.id
        ctx.model_used = call.model
        return self._frames(ctx, call, first, deltas)

    def _frames(self, ctx: RequestContext, call: Any, first: Any, deltas: Iterator[Any]) -> Iterator[str]:
        chunk_id = "gen_" + ctx.request_id.removeprefix("req_")
        model_id = call.model.id
        usage = TokenUsage()
        finish = None
        text_out = 0
        ctx.usage = usage
        try:
            yield sse_data({"id": chunk_id, "model": model_id, "delta": {"role": "assistant"}})
            ctx.ttft_ms = ctx.elapsed_ms()
            pending = [first] if first is not None else []
            for delta in _chain(pending, deltas):
                if delta.usage is not None:
                    usage = delta.usage
                    ctx.usage = usage
                if delta.finish_reason is not None:
                    finish = delta.finish_reason
                if delta.text is None and not delta.tool_calls:
                    continue
                out: dict[str, Any] = {}
                if delta.text:
                    out["content"] = delta.text
                    text_out += len(delta.text)
                if delta.tool_calls:
                    out["tool_calls"] = delta.tool_calls
                yield sse_data({"id": chunk_id, "model": model_id, "delta": out})
            ctx.finish_reason = finish or "stop"
            cost = self.usage.price(ctx)
            yield sse_data({"id": chunk_id, "model": model_id, "delta": {}, "finish_reason": ctx.finish_reason,
                            "usage": usage_body(usage, cost)})
            yield SSE_DONE
        except GatewayError as exc:
            self._fail(ctx, exc)
            self.usage.price(ctx)
            yield sse_error(exc.to_problem())
        except GeneratorExit:
            ctx.outcome = "cancelled"
            self.usage.price(ctx)
            close = getattr(deltas, "close", None)
            if close:
                close()
            raise
        finally:
            self.usage.report(ctx)


def _chain(first: list[Any], rest: Iterator[Any]) -> Iterator[Any]:
    yield from first
    yield from rest
