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

import gc
import json
import os
import time
from typing import Any

from bench._common import machine, setup_env, summary, table, verdict

TARGET_REQUEST_US = 100.0
TARGET_CHUNK_US = 10.0
ITERATIONS = int(os.environ.get("BENCH_TRANSLATION_N", "20000"))
WARMUP = int(os.environ.get("BENCH_TRANSLATION_WARMUP", "2000"))
STREAM_RUNS = int(os.environ.get("BENCH_TRANSLATION_STREAM_RUNS", "200"))
STREAM_CHUNKS = 200

PAYLOAD = {
    "model": "gemini::gemini-2.5-flash",
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "You are a concise travel assistant."}]},
        {"role": "user", "content": [{"type": "text", "text": "What's the weather in Paris and Rome right now?"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check both cities."},
            {"type": "tool_call", "tool_call": {"id": "call_01", "name": "get_weather", "arguments": {"city": "Paris"}}},
            {"type": "tool_call", "tool_call": {"id": "call_02", "name": "get_weather", "arguments": {"city": "Rome"}}},
        ]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "call_01", "content": "18C, sunny"}}]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "call_02", "content": "24C, clear"}}]},
        {"role": "user", "content": [{"type": "text", "text": "Which one is warmer?"}]},
    ],
    "tool_choice": "auto",
    "temperature": 0.2,
    "max_tokens": 512,
}
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


def _setup() -> tuple[Any, Any, Any]:
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
    call = ProviderCall(request=ChatRequest.model_validate(PAYLOAD), model=model,
                        deadline=Deadline(ttft_s=30, total_s=60), tools=TOOLS, request_id="req_bench")
    return GeminiAdapter(provider, OutboundClient(httpx.Client())), call, json.dumps(ANSWER)


def measure(iterations: int = ITERATIONS, warmup: int = WARMUP, stream_runs: int = STREAM_RUNS) -> dict[str, Any]:
    adapter, call, answer_raw = _setup()
    adapter.check(call)
    lines = _stream_lines()
    per_request: list[float] = []
    per_chunk: list[float] = []
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for i in range(warmup + iterations):
            t0 = clock()
            adapter.build_body(call)
            adapter.parse_result(json.loads(answer_raw), call)  # the JSON decode of the answer counts too
            dt = clock() - t0
            if i >= warmup:
                per_request.append(dt / 1000)
        for run in range(stream_runs + 5):
            gen = adapter.parse_stream(lines, call)
            while True:
                t0 = clock()
                try:
                    next(gen)
                except StopIteration:
                    break
                dt = clock() - t0
                if run >= 5:
                    per_chunk.append(dt / 1000)
    finally:
        gc.enable()
    return {"iterations": iterations, "stream_runs": stream_runs, "request": summary(per_request), "chunk": summary(per_chunk)}


def render(r: dict[str, Any]) -> str:
    req, chunk = r["request"], r["chunk"]
    us = lambda v: f"{v:.2f}"  # noqa: E731
    rows = [
        ["per request (build body + parse answer)", us(req["p50"]), us(req["p90"]), us(req["p99"]), us(req["mean"]), us(req["max"])],
        ["per stream chunk (one SSE line → delta)", us(chunk["p50"]), us(chunk["p90"]), us(chunk["p99"]), us(chunk["mean"]), us(chunk["max"])],
    ]
    ok_req = req["p99"] <= TARGET_REQUEST_US
    ok_chunk = chunk["p99"] <= TARGET_CHUNK_US
    return "\n".join([
        "## Gemini translation overhead (in-process)",
        "",
        f"{r['iterations']} request translations (6-message tool conversation, one tool with schema-subset conversion); "
        f"{r['stream_runs']} streams of {STREAM_CHUNKS} SSE chunks with cumulative usageMetadata. Machine: {machine()}.",
        "",
        table(["µs", "P50", "P90", "P99", "mean", "max"], rows),
        "",
        f"Targets: request P99 ≤ {TARGET_REQUEST_US:g} µs — **{us(req['p99'])} µs** {verdict(ok_req)}; "
        f"chunk P99 ≤ {TARGET_CHUNK_US:g} µs — **{us(chunk['p99'])} µs** {verdict(ok_chunk)}.",
        "",
    ])


def main() -> str:
    return render(measure())


if __name__ == "__main__":
    print(main())
