"""The embeddings pipeline: resolve the model, split inputs into provider-sized batches, call,
rejoin in order, encode, price and report usage.

Batch size comes from the model's `limits.max_inputs_per_call` (default 256); batches run
concurrently (up to `limits.max_concurrent_batches`, default 4) and are rejoined by index.
`encoding_format: base64` is little-endian float32, as OpenAI's API returns it.
"""

from __future__ import annotations

import base64
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import EmbeddingRequest
from llm_gateway.api.render import usage_body
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.pipeline.invoke import DEFAULT_TOTAL_MS
from llm_gateway.pipeline.governance import get_governance
from llm_gateway.pipeline.usage import UsageReporter
from llm_gateway.providers import adapter_for
from llm_gateway.providers.base import Deadline, EmbedCall, TokenUsage
from llm_gateway.registry.catalog import Catalog, get_catalog

MAX_INPUTS = 2048
MAX_INPUT_CHARS = 64_000

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="embed")
    return _pool


def encode_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


class EmbeddingsPipeline:
    def __init__(self, usage: UsageReporter | None = None, catalog: Catalog | None = None) -> None:
        self.usage = usage or UsageReporter()
        self._catalog = catalog

    def _inputs(self, request: EmbeddingRequest) -> list[str]:
        inputs = [request.input] if isinstance(request.input, str) else request.input
        if len(inputs) > MAX_INPUTS:
            raise GatewayError("validation_error", f"input has {len(inputs)} items; the limit is {MAX_INPUTS}.",
                               errors=[{"path": "input", "message": f"at most {MAX_INPUTS} items"}])
        for i, text in enumerate(inputs):
            if not text:
                raise GatewayError("validation_error", f"input[{i}] is empty.", errors=[{"path": f"input[{i}]", "message": "empty string"}])
            if len(text) > MAX_INPUT_CHARS:
                raise GatewayError("validation_error", f"input[{i}] has {len(text)} characters; the limit is {MAX_INPUT_CHARS}.",
                                   errors=[{"path": f"input[{i}]", "message": "too long"}])
        return inputs

    def run(self, ctx: RequestContext, request: EmbeddingRequest) -> dict[str, Any]:
        catalog = self._catalog or get_catalog()
        try:
            model = catalog.resolve(request.model)
            ctx.model = model
            Catalog.require(model, frozenset({"embeddings"}))
            inputs = self._inputs(request)
            # approval, rate limits (about four characters a token) and budgets: pipeline/governance.py
            get_governance().govern(ctx, estimate=sum(len(t) for t in inputs) // 4 + 1)
            limit_dims = model.limits.get("max_dimensions") or model.limits.get("dimensions")
            if request.dimensions is not None:
                if not model.limits.get("flexible_dimensions", model.provider.kind == "mock"):
                    raise GatewayError("capability_not_supported", f"Model '{model.id}' does not accept 'dimensions'.", model=model.id)
                if limit_dims and request.dimensions > limit_dims:
                    raise GatewayError("validation_error", f"dimensions must be at most {limit_dims} for '{model.id}'.",
                                       errors=[{"path": "dimensions", "message": f"at most {limit_dims}"}])
                allowed = model.limits.get("allowed_dimensions")
                if allowed and request.dimensions not in allowed:
                    raise GatewayError("validation_error", f"dimensions must be one of {', '.join(map(str, allowed))} for '{model.id}'.",
                                       errors=[{"path": "dimensions", "message": f"one of {allowed}"}])
            size = max(1, int(model.limits.get("max_inputs_per_call", 256)))
            batches = [inputs[i:i + size] for i in range(0, len(inputs), size)]
            deadline = Deadline(ttft_s=model.timeouts.get("total_ms", DEFAULT_TOTAL_MS) / 1000,
                                total_s=model.timeouts.get("total_ms", DEFAULT_TOTAL_MS) / 1000)
            adapter = adapter_for(model.provider)
            calls = [EmbedCall(model=model, inputs=b, deadline=deadline, dimensions=request.dimensions,
                               tenant_id=ctx.tenant_id, request_id=ctx.request_id) for b in batches]
            if len(calls) == 1:
                results = [adapter.embed(calls[0])]
            else:
                width = max(1, int(model.limits.get("max_concurrent_batches", 4)))
                results = []
                for start in range(0, len(calls), width):
                    results.extend(_executor().map(adapter.embed, calls[start:start + width]))
        except GatewayError as exc:
            ctx.outcome, ctx.error_code = "error", exc.code
            if ctx.model is not None:
                self.usage.report(ctx)
            raise
        usage = TokenUsage()
        data: list[dict[str, Any]] = []
        index = 0
        for batch, result in zip(batches, results):
            if result.count() != len(batch):
                raise GatewayError("provider_error", f"Provider '{model.provider.id}' returned {result.count()} vectors for {len(batch)} inputs.",
                                   provider=model.provider.id)
            usage.add(result.usage)
            if request.encoding_format == "base64" and result.raw is not None and len(result.raw) == len(batch):
                for blob in result.raw:  # float32 as the provider sent them: no float round trip
                    data.append({"index": index, "embedding": blob if isinstance(blob, str) else base64.b64encode(blob).decode("ascii")})
                    index += 1
                continue
            for vector in result.floats():
                data.append({"index": index, "embedding": encode_base64(vector) if request.encoding_format == "base64" else vector})
                index += 1
        ctx.model_used = model
        ctx.usage = usage
        cost = self.usage.price(ctx)
        self.usage.report(ctx)
        ctx.response_headers["x-llmgw-provider"] = model.provider.id
        return {"model": model.id, "data": data, "usage": usage_body(usage, cost)}
