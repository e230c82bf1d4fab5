"""Gemini adapter translation cost, in-process (no network, no pipeline).

- **per request**: the normalized request → `generateContent` body (`build_body`:
  systemInstruction, role merging, functionCall/functionResponse parts paired by name, tools as
  functionDeclarations with the JSON Schema → Gemini schema-subset conversion, toolConfig,
  generationConfig) plus the Gemini answer → `ChatResult` (`parse_result`: text, thought parts
  skipped, finishReason, usageMetadata with cached and thinking tokens), for a realistic
  multi-turn tool conversation.
- **per stream chunk**: one `streamGenerateContent?alt=sse` line (`data:` + blank line, a whole
  GenerateContentResponse with cumulative usageMetadata) → one `StreamDelta` (`parse_stream`),
  timed per `next()` over a 200-chunk answer.

Targets (issue 3): ≤ 100 µs per request and ≤ 10 µs per stream chunk, P99.
Run: `python -m bench.bench_translation_gemini`.
"""

from __future__ import annotations

import json
from typing import Any

from bench._common import setup_env
from bench._translation import ITERATIONS, STREAM_DELTAS, STREAM_RUNS, WARMUP, Case, conversation, render_provider, time_case

STREAM_CHUNKS = STREAM_DELTAS
# the shared tool with an enum and `additionalProperties`, which the schema-subset conversion handles
TOOLS = [{"name": "get_weather", "description": "Current weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                         "required": ["city"], "additionalProperties": False}}]
ANSWER = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "Rome is warmer: 24C against 18C in Paris."}]},
                    "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 2168, "cachedContentTokenCount": 2048, "candidatesTokenCount": 14,
                      "thoughtsTokenCount": 40, "totalTokenCount": 2222,
                      "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2168}]},
    "modelVersion": "gemini-2.5-flash", "responseId": "resp-01",
}


def _stream_lines() -> list[str]:
    lines: list[str] = []
    for i in range(STREAM_CHUNKS):
        last = i == STREAM_CHUNKS - 1
        cand: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": f"word{i} "}]}, "index": 0}
        usage: dict[str, Any] = {"promptTokenCount": 2168, "totalTokenCount": 2168 + i}
        if last:
            cand["finishReason"] = "STOP"
            usage = {"promptTokenCount": 2168, "cachedContentTokenCount": 2048, "candidatesTokenCount": STREAM_CHUNKS,
                     "thoughtsTokenCount": 40, "totalTokenCount": 2168 + STREAM_CHUNKS + 40}
        chunk = {"candidates": [cand], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash", "responseId": "resp-01"}
        lines += ["data: " + json.dumps(chunk), ""]
    return lines


def case() -> Case:
    setup_env()
    import httpx

    from llm_gateway.api.models import ChatRequest
    from llm_gateway.outbound.client import OutboundClient
    from llm_gateway.providers.base import Deadline, ProviderCall
    from llm_gateway.providers.gemini import GeminiAdapter
    from llm_gateway.registry.catalog import ModelSpec, ProviderSpec

    provider = ProviderSpec(id="gemini", kind="gemini", base_url="https://generativelanguage.googleapis.com/v1beta", credential=None)
    model = ModelSpec(id="gemini::gemini-2.5-flash", provider=provider, provider_model="gemini-2.5-flash",
                      capabilities=frozenset({"chat", "stream", "tools"}), lifecycle="production",
                      limits={"max_output_tokens": 65536})
    call = ProviderCall(request=ChatRequest.model_validate(conversation(model.id)), model=model,
                        deadline=Deadline(ttft_s=30, total_s=60), tools=TOOLS, request_id="req_bench")
    adapter = GeminiAdapter(provider, OutboundClient(httpx.Client()))
    adapter.check(call)
    answer_raw = json.dumps(ANSWER)
    lines = _stream_lines()

    def translate() -> Any:
        adapter.build_body(call)
        return adapter.parse_result(json.loads(answer_raw), call)  # the JSON decode of the answer counts too

    result = translate()
    assert result.finish_reason == "stop" and result.usage.cached_input_tokens == 2048
    return Case(translate, lambda: adapter.parse_stream(lines, call), STREAM_CHUNKS + 1,
                f"6-message tool conversation, one tool with schema-subset conversion; {STREAM_CHUNKS} SSE chunks "
                "with cumulative usageMetadata")


def measure(iterations: int = ITERATIONS, warmup: int = WARMUP, stream_runs: int = STREAM_RUNS) -> dict[str, Any]:
    return time_case(case(), iterations, warmup, stream_runs)


def main() -> str:
    return render_provider("Gemini", measure())


if __name__ == "__main__":
    print(main())
