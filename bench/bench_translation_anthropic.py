"""Anthropic adapter translation cost, in-process (no network, no pipeline).

- **per request**: the normalized request → Messages API body (`build_body`: system placement,
  role merging, tool_use/tool_result blocks, tools, tool_choice, max_tokens) plus the Messages
  answer → `ChatResult` (`parse_result`: text, tool calls, stop reason, cache-aware usage), for a
  realistic multi-turn tool conversation.
- **per stream chunk**: one Anthropic SSE event (`event:` + `data:` lines + blank line) → one
  `StreamDelta` (`parse_stream`), timed per `next()` over a 200-delta answer with pings.

Targets (issue 3): ≤ 100 µs per request and ≤ 10 µs per stream chunk, P99.
Run: `python -m bench.bench_translation_anthropic`.
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
STREAM_DELTAS = 200

PAYLOAD = {
    "model": "anthropic::claude-sonnet-4-5",
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "You are a concise travel assistant."}]},
        {"role": "user", "content": [{"type": "text", "text": "What's the weather in Paris and Rome right now?"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check both cities."},
            {"type": "tool_call", "tool_call": {"id": "toolu_01", "name": "get_weather", "arguments": {"city": "Paris"}}},
            {"type": "tool_call", "tool_call": {"id": "toolu_02", "name": "get_weather", "arguments": {"city": "Rome"}}},
        ]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "toolu_01", "content": "18C, sunny"}}]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "toolu_02", "content": "24C, clear"}}]},
        {"role": "user", "content": [{"type": "text", "text": "Which one is warmer?"}]},
    ],
    "tool_choice": "auto",
    "temperature": 0.2,
    "max_tokens": 512,
}
TOOLS = [{"name": "get_weather", "description": "Current weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
ANSWER = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Rome is warmer: 24C against 18C in Paris."}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 120, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2048, "output_tokens": 14},
}


def _stream_lines() -> list[str]:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant", "content": [],
                                              "model": "claude-sonnet-4-5", "stop_reason": None, "stop_sequence": None,
                                              "usage": {"input_tokens": 120, "cache_read_input_tokens": 2048,
                                                        "cache_creation_input_tokens": 0, "output_tokens": 1}}},
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    for i in range(STREAM_DELTAS):
        events.append({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"word{i} "}})
        if i % 50 == 25:
            events.append({"type": "ping"})
    events += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": STREAM_DELTAS}},
        {"type": "message_stop"},
    ]
    lines: list[str] = []
    for e in events:
        lines += [f"event: {e['type']}", "data: " + json.dumps(e), ""]
    return lines


def _setup() -> tuple[Any, Any, Any]:
    setup_env()
    import httpx

    from llm_gateway.api.models import ChatRequest
    from llm_gateway.outbound.client import OutboundClient
    from llm_gateway.providers.anthropic import AnthropicAdapter
    from llm_gateway.providers.base import Deadline, ProviderCall
    from llm_gateway.registry.catalog import ModelSpec, ProviderSpec

    provider = ProviderSpec(id="anthropic", kind="anthropic", base_url="https://api.anthropic.com", credential=None)
    model = ModelSpec(id="anthropic::claude-sonnet-4-5", provider=provider, provider_model="claude-sonnet-4-5",
                      capabilities=frozenset({"chat", "stream", "tools"}), lifecycle="production",
                      limits={"max_output_tokens": 64000})
    call = ProviderCall(request=ChatRequest.model_validate(PAYLOAD), model=model,
                        deadline=Deadline(ttft_s=30, total_s=60), tools=TOOLS)
    return AnthropicAdapter(provider, OutboundClient(httpx.Client())), call, json.dumps(ANSWER)


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
            adapter.build_body(call, stream=False)
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
        ["per stream chunk (one SSE event → delta)", us(chunk["p50"]), us(chunk["p90"]), us(chunk["p99"]), us(chunk["mean"]), us(chunk["max"])],
    ]
    ok_req = req["p99"] <= TARGET_REQUEST_US
    ok_chunk = chunk["p99"] <= TARGET_CHUNK_US
    return "\n".join([
        "## Anthropic translation overhead (in-process)",
        "",
        f"{r['iterations']} request translations (6-message tool conversation, one tool); "
        f"{r['stream_runs']} streams of {STREAM_DELTAS} `text_delta` events with pings. Machine: {machine()}.",
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
