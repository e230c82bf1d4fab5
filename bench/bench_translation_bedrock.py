"""Bedrock adapter translation cost, in-process (no network, no pipeline).

- **per request**: the normalized request → Converse parameters (`build_request`: system blocks,
  role merging, toolUse/toolResult blocks, toolConfig, inferenceConfig) plus the Converse answer
  → `ChatResult` (`parse_result`: text, tool calls, stop reason, cache-aware usage), for a
  realistic multi-turn tool conversation.
- **per stream event**: one binary event-stream frame → `StreamDelta` — the adapter's own frame
  decoder (prelude and message CRC32s, headers, JSON payload, `decode_events`) and `parse_stream`
  — timed per `next()` over a 200-delta answer: everything the gateway does per event.

For context, the same paths are also timed through botocore: request serialization to the wire
body and answer parsing from the JSON bytes, and botocore's own `EventStream` decoding and
parsing of the frames (what the adapter would cost with it; it decodes frames itself instead).
botocore's SigV4 signing and HTTP are not included.

Targets (issue 3): ≤ 100 µs per request and ≤ 10 µs per stream chunk, P99.
Run: `python -m bench.bench_translation_bedrock`.
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
MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"

PAYLOAD = {
    "model": f"bedrock::{MODEL_ID}",
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "You are a concise travel assistant."}]},
        {"role": "user", "content": [{"type": "text", "text": "What's the weather in Paris and Rome right now?"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check both cities."},
            {"type": "tool_call", "tool_call": {"id": "tooluse_01", "name": "get_weather", "arguments": {"city": "Paris"}}},
            {"type": "tool_call", "tool_call": {"id": "tooluse_02", "name": "get_weather", "arguments": {"city": "Rome"}}},
        ]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "tooluse_01", "content": "18C, sunny"}}]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": "tooluse_02", "content": "24C, clear"}}]},
        {"role": "user", "content": [{"type": "text", "text": "Which one is warmer?"}]},
    ],
    "tool_choice": "auto",
    "temperature": 0.2,
    "max_tokens": 512,
}
TOOLS = [{"name": "get_weather", "description": "Current weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
ANSWER = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Rome is warmer: 24C against 18C in Paris."}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 120, "outputTokens": 14, "totalTokens": 2182, "cacheReadInputTokens": 2048,
              "cacheWriteInputTokens": 0},
    "metrics": {"latencyMs": 412},
}


def _stream_events() -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    for i in range(STREAM_DELTAS):
        events.append(("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": f"word{i} "}}))
    events += [
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": {"inputTokens": 120, "outputTokens": STREAM_DELTAS, "totalTokens": 2368,
                                "cacheReadInputTokens": 2048}, "metrics": {"latencyMs": 900}}),
    ]
    return events


class _RawStream:
    """What botocore's EventStream reads: `.stream()` yielding the response body in chunks."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames

    def stream(self) -> Any:
        return iter(self._frames)

    def close(self) -> None:
        pass


def _setup() -> tuple[Any, Any]:
    setup_env()
    from llm_gateway.api.models import ChatRequest
    from llm_gateway.providers.base import Deadline, ProviderCall
    from llm_gateway.providers.bedrock import BedrockAdapter
    from llm_gateway.registry.catalog import ModelSpec, ProviderSpec

    provider = ProviderSpec(id="bedrock", kind="bedrock", base_url=None, credential={"aws": True}, region="us-east-1")
    model = ModelSpec(id=f"bedrock::{MODEL_ID}", provider=provider, provider_model=MODEL_ID,
                      capabilities=frozenset({"chat", "stream", "tools"}), lifecycle="production",
                      limits={"max_output_tokens": 8192})
    call = ProviderCall(request=ChatRequest.model_validate(PAYLOAD), model=model,
                        deadline=Deadline(ttft_s=3600, total_s=3600), tools=TOOLS)
    return BedrockAdapter(provider, None), call


def _botocore() -> tuple[Any, Any, Any, Any]:
    """botocore's serializer, parser and ConverseStream output shape for the `bedrock-runtime` model."""
    from botocore import parsers, serialize
    from botocore.session import get_session

    service = get_session().get_service_model("bedrock-runtime")
    serializer = serialize.create_serializer(service.metadata["protocol"], include_validation=False)
    parser = parsers.create_parser(service.metadata["protocol"])
    return service, serializer, parser, service.operation_model("ConverseStream").output_shape


def measure(iterations: int = ITERATIONS, warmup: int = WARMUP, stream_runs: int = STREAM_RUNS) -> dict[str, Any]:
    adapter, call = _setup()
    adapter.check(call)
    from botocore.eventstream import EventStream
    from botocore.parsers import EventStreamJSONParser

    from tests.fakes.bedrock import event_frame

    service, serializer, parser, stream_shape = _botocore()
    converse = service.operation_model("Converse")
    answer_raw = json.dumps(ANSWER).encode()
    frames = [event_frame(name, body) for name, body in _stream_events()]
    stream_member = stream_shape.members["stream"]

    per_request: list[float] = []
    per_request_sdk: list[float] = []
    per_chunk: list[float] = []
    per_chunk_sdk: list[float] = []
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for i in range(warmup + iterations):
            t0 = clock()
            adapter.build_request(call)
            result = adapter.parse_result(json.loads(answer_raw), call)  # the JSON decode counts too
            t1 = clock()
            params = adapter.build_request(call)
            serializer.serialize_to_request(params, converse)
            parsed = parser.parse({"status_code": 200, "headers": {}, "body": answer_raw}, converse.output_shape)
            adapter.parse_result(parsed, call)
            t2 = clock()
            if i >= warmup:
                per_request.append((t1 - t0) / 1000)
                per_request_sdk.append((t2 - t1) / 1000)
        assert result.finish_reason == "stop" and result.usage.input_tokens == 2168
        for run in range(stream_runs + 5):
            for source, out in ((lambda: adapter.decode_events(iter(frames)), per_chunk),
                                (lambda: EventStream(_RawStream(frames), stream_member, EventStreamJSONParser(), "ConverseStream"),
                                 per_chunk_sdk)):
                gen = adapter.parse_stream(source(), call)
                n = 0
                while True:
                    t0 = clock()
                    try:
                        next(gen)
                    except StopIteration:
                        break
                    dt = clock() - t0
                    n += 1
                    if run >= 5:
                        out.append(dt / 1000)
                assert n == STREAM_DELTAS + 1
    finally:
        gc.enable()
    return {"iterations": iterations, "stream_runs": stream_runs,
            "request": summary(per_request), "request_sdk": summary(per_request_sdk),
            "chunk": summary(per_chunk), "chunk_sdk": summary(per_chunk_sdk)}


def render(r: dict[str, Any]) -> str:
    us = lambda v: f"{v:.2f}"  # noqa: E731

    def row(label: str, s: dict[str, float]) -> list[str]:
        return [label, us(s["p50"]), us(s["p90"]), us(s["p99"]), us(s["mean"]), us(s["max"])]

    req, chunk = r["request"], r["chunk"]
    rows = [
        row("per request (build params + decode and parse answer)", req),
        row("per stream event (decode one frame → delta)", chunk),
        row("…request through botocore's serializer and parser", r["request_sdk"]),
        row("…event through botocore's EventStream", r["chunk_sdk"]),
    ]
    ok_req = req["p99"] <= TARGET_REQUEST_US
    ok_chunk = chunk["p99"] <= TARGET_CHUNK_US
    return "\n".join([
        "## Bedrock translation overhead (in-process)",
        "",
        f"{r['iterations']} request translations (6-message tool conversation, one tool); "
        f"{r['stream_runs']} ConverseStream answers of {STREAM_DELTAS} text `contentBlockDelta` events. Machine: {machine()}.",
        "",
        table(["µs", "P50", "P90", "P99", "mean", "max"], rows),
        "",
        f"Targets (the gateway's own translation): request P99 ≤ {TARGET_REQUEST_US:g} µs — **{us(req['p99'])} µs** "
        f"{verdict(ok_req)}; event P99 ≤ {TARGET_CHUNK_US:g} µs — **{us(chunk['p99'])} µs** {verdict(ok_chunk)}. "
        "The botocore rows show what the SDK's own (de)serialization would cost, for context.",
        "",
    ])


def main() -> str:
    return render(measure())


if __name__ == "__main__":
    print(main())
