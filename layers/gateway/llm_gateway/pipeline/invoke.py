"""Step 7 — call the provider adapter under the request's TTFT and total timeouts."""

from __future__ import annotations

import os
from collections.abc import Iterator

from llm_gateway.api.models import ChatRequest
from llm_gateway.providers import adapter_for
from llm_gateway.providers.base import ChatResult, Deadline, ProviderCall, StreamDelta
from llm_gateway.registry.catalog import ModelSpec

DEFAULT_TTFT_MS = int(os.environ.get("LLMGW_DEFAULT_TTFT_MS", "30000"))
DEFAULT_TOTAL_MS = int(os.environ.get("LLMGW_DEFAULT_TOTAL_MS", "120000"))


def deadline_for(request: ChatRequest, model: ModelSpec) -> Deadline:
    """Request timeouts win, then the model's defaults from the catalog, then the global ones."""
    t = request.timeout
    total = (t.total_ms if t and t.total_ms else None) or model.timeouts.get("total_ms") or DEFAULT_TOTAL_MS
    ttft = (t.ttft_ms if t and t.ttft_ms else None) or model.timeouts.get("ttft_ms") or DEFAULT_TTFT_MS
    return Deadline(ttft_s=min(ttft, total) / 1000, total_s=total / 1000)


class Invoker:
    """Builds the `ProviderCall` and runs the model's adapter."""

    def call_for(self, request: ChatRequest, model: ModelSpec, tools: list[dict], tenant_id: str, request_id: str) -> ProviderCall:
        return ProviderCall(request=request, model=model, deadline=deadline_for(request, model), tools=tools,
                            tenant_id=tenant_id, request_id=request_id)

    def complete(self, call: ProviderCall) -> ChatResult:
        adapter = adapter_for(call.model.provider)
        adapter.check(call)
        return adapter.chat(call)

    def stream(self, call: ProviderCall) -> Iterator[StreamDelta]:
        adapter = adapter_for(call.model.provider)
        adapter.check(call)
        return adapter.stream(call)
