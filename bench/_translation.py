"""What every translation benchmark shares: the targets, the iteration counts, the conversation
each provider translates, the timing loop and the per-provider section.

A provider's bench builds a `Case` (its adapter's request translation and a fresh delta iterator
over one streamed answer); `time_case` times both the same way for every provider, GC off:
one request translation per sample, one `next()` of the delta iterator per chunk sample.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench._common import machine, summary, table, verdict

TARGET_REQUEST_US = 100.0
TARGET_CHUNK_US = 10.0
ITERATIONS = int(os.environ.get("BENCH_TRANSLATION_N", "20000"))
WARMUP = int(os.environ.get("BENCH_TRANSLATION_WARMUP", "2000"))
STREAM_RUNS = int(os.environ.get("BENCH_TRANSLATION_STREAM_RUNS", "200"))
STREAM_DELTAS = 200
STREAM_WARMUP_RUNS = 5

TOOLS = [{"name": "get_weather", "description": "Current weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def conversation(model: str | None = None, call_id: str = "call_0") -> dict[str, Any]:
    """The realistic 6-message tool conversation every provider translates: system prompt, two
    tool calls (ids `<call_id>1`, `<call_id>2`) and their results, `tool_choice`, temperature,
    max_tokens."""
    first, second = f"{call_id}1", f"{call_id}2"
    payload: dict[str, Any] = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are a concise travel assistant."}]},
            {"role": "user", "content": [{"type": "text", "text": "What's the weather in Paris and Rome right now?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check both cities."},
                {"type": "tool_call", "tool_call": {"id": first, "name": "get_weather", "arguments": {"city": "Paris"}}},
                {"type": "tool_call", "tool_call": {"id": second, "name": "get_weather", "arguments": {"city": "Rome"}}},
            ]},
            {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": first, "content": "18C, sunny"}}]},
            {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": second, "content": "24C, clear"}}]},
            {"role": "user", "content": [{"type": "text", "text": "Which one is warmer?"}]},
        ],
        "tool_choice": "auto",
        "temperature": 0.2,
        "max_tokens": 512,
    }
    if model:
        payload["model"] = model
    return payload


@dataclass
class Case:
    """One provider's translation paths, ready to time."""

    translate: Callable[[], Any]  # one request: build the wire body + parse the (JSON) answer
    stream: Callable[[], Iterator[Any]]  # a fresh delta iterator over one streamed answer
    expect_deltas: int  # deltas one stream yields (checked, so the bench measures what it claims)
    describe: str


def time_case(case: Case, iterations: int = ITERATIONS, warmup: int = WARMUP, stream_runs: int = STREAM_RUNS) -> dict[str, Any]:
    per_request: list[float] = []
    per_chunk: list[float] = []
    clock = time.perf_counter_ns
    translate = case.translate
    gc.collect()
    gc.disable()
    try:
        for i in range(warmup + iterations):
            t0 = clock()
            translate()
            dt = clock() - t0
            if i >= warmup:
                per_request.append(dt / 1000)
        for run in range(stream_runs + STREAM_WARMUP_RUNS):
            gen = case.stream()
            n = 0
            while True:
                t0 = clock()
                try:
                    next(gen)
                except StopIteration:
                    break
                dt = clock() - t0
                n += 1
                if run >= STREAM_WARMUP_RUNS:
                    per_chunk.append(dt / 1000)
            assert n == case.expect_deltas, f"expected {case.expect_deltas} deltas, got {n}"
    finally:
        gc.enable()
    return {"iterations": iterations, "stream_runs": stream_runs, "request": summary(per_request),
            "chunk": summary(per_chunk), "describe": case.describe}


def render_provider(title: str, r: dict[str, Any], extra_rows: list[tuple[str, dict[str, float]]] = (), note: str = "") -> str:
    """One provider's section: request and chunk percentiles (plus `extra_rows` for context) and
    the verdict on the gateway's own figures."""
    us = lambda v: f"{v:.2f}"  # noqa: E731

    def row(label: str, s: dict[str, float]) -> list[str]:
        return [label, us(s["p50"]), us(s["p90"]), us(s["p99"]), us(s["mean"]), us(s["max"])]

    req, chunk = r["request"], r["chunk"]
    rows = [row("per request (build the wire body + decode and parse the answer)", req),
            row("per stream chunk (one provider event → delta)", chunk),
            *(row(label, s) for label, s in extra_rows)]
    return "\n".join([
        f"## {title} translation overhead (in-process)",
        "",
        f"{r['iterations']} request translations and {r['stream_runs']} streamed answers: {r['describe']}. "
        f"Machine: {machine()}.",
        "",
        table(["µs", "P50", "P90", "P99", "mean", "max"], rows),
        "",
        f"Targets: request P99 ≤ {TARGET_REQUEST_US:g} µs — **{us(req['p99'])} µs** {verdict(req['p99'] <= TARGET_REQUEST_US)}; "
        f"chunk P99 ≤ {TARGET_CHUNK_US:g} µs — **{us(chunk['p99'])} µs** {verdict(chunk['p99'] <= TARGET_CHUNK_US)}.{note}",
        "",
    ])
