"""Provider translation cost, in-process (no network, no pipeline), for every provider.

- **per request**: the normalized request → the provider's wire body (`build_body`) plus the
  provider's JSON answer (decoded here too) → `ChatResult` (`parse_result`), for the same
  realistic 6-message tool conversation (system prompt, two tool calls and their results, one
  tool, `tool_choice`, temperature, max_tokens) every provider bench uses;
- **per stream chunk**: one provider stream chunk → `StreamDelta` (`parse_stream`), timed per
  `next()` over a 200-delta answer (so SSE parsing, JSON decoding and normalization all count).

OpenAI and OpenAI-compatible cases live here (`CASES`). Other providers plug in either way:
  - add a `Case` factory to `CASES` (an adapter, a call, its answer body and stream lines), or
  - keep a `bench/bench_translation_<provider>.py` module exposing
    `measure(iterations, warmup, stream_runs) -> {"request": summary, "chunk": summary}`
    (usually `bench._translation.time_case` of its `Case`); it is discovered and added to the
    summary table.
`bench/_translation.py` holds what they share: the conversation, the targets, the timing loop.

Targets (issue 3): ≤ 100 µs per request and ≤ 10 µs per stream chunk, P99.
Run: `python -m bench.bench_translation [provider ...]`.
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench._common import machine, setup_env, table, verdict
from bench._translation import (ITERATIONS, STREAM_DELTAS, STREAM_RUNS, TARGET_CHUNK_US, TARGET_REQUEST_US, TOOLS, WARMUP,
                                Case, conversation, time_case)


def _openai_case(kind: str = "openai") -> Case:
    setup_env()
    import httpx

    from llm_gateway.api.models import ChatRequest
    from llm_gateway.outbound.client import OutboundClient
    from llm_gateway.providers.base import Deadline, ProviderCall
    from llm_gateway.providers.openai import OpenAIAdapter
    from llm_gateway.providers.openai_compatible import OpenAICompatibleAdapter
    from llm_gateway.registry.catalog import ModelSpec, ProviderSpec
    from tests.fakes.openai import render_completion, render_stream
    from tests.fakes.script import Script

    provider = ProviderSpec(id=kind, kind=kind, base_url="https://api.openai.test/v1", credential=None)
    model = ModelSpec(id=f"{kind}::gpt-4o-mini", provider=provider, provider_model="gpt-4o-mini",
                      capabilities=frozenset({"chat", "stream", "tools"}), lifecycle="production")
    call = ProviderCall(request=ChatRequest.model_validate(conversation(model.id)), model=model,
                        deadline=Deadline(ttft_s=3600, total_s=3600), tools=TOOLS)
    cls = OpenAICompatibleAdapter if kind == "openai_compatible" else OpenAIAdapter
    adapter = cls(provider, OutboundClient(httpx.Client()))
    adapter.check(call)
    answer = Script(text="Rome is warmer: 24C against 18C in Paris.", input_tokens=2168, cached_tokens=2048, output_tokens=14)
    answer_raw = json.dumps(render_completion(answer))
    # a 200-delta answer, one word per chunk, then the finish chunk, the usage chunk and [DONE]
    words = " ".join(f"word{i}" for i in range(STREAM_DELTAS))
    frames = render_stream(Script(text=words, input_tokens=2168, cached_tokens=2048, output_tokens=STREAM_DELTAS))
    # render_stream groups three words per chunk; re-split to one word per chunk
    chunks = [json.loads(f[6:]) for f in frames[:-1]]
    head, tail = chunks[0], chunks[-2:]
    body = chunks[1]
    per_word = []
    for i in range(STREAM_DELTAS):
        c = json.loads(json.dumps(body))
        c["choices"][0]["delta"] = {"content": f"word{i} "}
        per_word.append(c)
    lines: list[str] = []
    for c in [head, *per_word, *tail]:
        lines += ["data: " + json.dumps(c, separators=(",", ":")), ""]
    lines += ["data: [DONE]", ""]

    def translate() -> Any:
        adapter.build_body(call, stream=False)
        return adapter.parse_result(json.loads(answer_raw))

    result = translate()
    assert result.finish_reason == "stop" and result.usage.cached_input_tokens == 2048
    return Case(translate, lambda: adapter.parse_stream(lines), STREAM_DELTAS + 1,
                "6-message tool conversation, one tool; 200 one-word `chat.completion.chunk`s + finish + usage chunk")


CASES: dict[str, Callable[[], Case]] = {
    "openai": _openai_case,
    "openai_compatible": lambda: _openai_case("openai_compatible"),
}


def discovered() -> dict[str, Callable[..., dict[str, Any]]]:
    """`bench/bench_translation_<provider>.py` modules with a `measure()`."""
    out: dict[str, Callable[..., dict[str, Any]]] = {}
    for path in sorted(Path(__file__).parent.glob("bench_translation_*.py")):
        name = path.stem.removeprefix("bench_translation_")
        try:
            module = importlib.import_module(f"bench.{path.stem}")
        except Exception as exc:  # noqa: BLE001 - a broken provider bench must not hide the others
            print(f"<!-- skipped {path.name}: {exc!r} -->", file=sys.stderr)
            continue
        if callable(getattr(module, "measure", None)):
            out[name] = module.measure
    return out


REPEATS = int(os.environ.get("BENCH_TRANSLATION_REPEATS", "3"))


def _measure_once(only: Iterable[str], iterations: int, warmup: int, stream_runs: int) -> dict[str, dict[str, Any]]:
    wanted = set(only)
    results: dict[str, dict[str, Any]] = {}
    for name, factory in CASES.items():
        if not wanted or name in wanted:
            results[name] = time_case(factory(), iterations, warmup, stream_runs)
    for name, measure in discovered().items():
        if name in results or (wanted and name not in wanted):
            continue
        results[name] = measure(iterations=iterations, warmup=warmup, stream_runs=stream_runs)
    return results


def measure_all(only: Iterable[str] = (), iterations: int = ITERATIONS, warmup: int = WARMUP,
                stream_runs: int = STREAM_RUNS, repeats: int = REPEATS) -> dict[str, dict[str, Any]]:
    """Every provider measured `repeats` times (interleaved); each percentile reported is the
    median over the repeats: on a shared VM one run's P99 of a few-µs operation moves by 2x
    with the neighbours' load, the median of three does not."""
    setup_env()
    runs = [_measure_once(only, iterations, warmup, stream_runs) for _ in range(max(1, repeats))]
    results: dict[str, dict[str, Any]] = {}
    for name, first in runs[0].items():
        merged = dict(first)
        for key in ("request", "chunk"):
            merged[key] = {field: statistics.median(run[name][key][field] for run in runs) for field in first[key]}
        merged["repeats"] = len(runs)
        results[name] = merged
    return results


def render(results: dict[str, dict[str, Any]]) -> str:
    us = lambda v: f"{v:.2f}"  # noqa: E731
    rows = []
    all_ok = True
    for name, r in results.items():
        req, chunk = r["request"], r["chunk"]
        ok = req["p99"] <= TARGET_REQUEST_US and chunk["p99"] <= TARGET_CHUNK_US
        all_ok &= ok
        rows.append([name, us(req["p50"]), us(req["p99"]), us(chunk["p50"]), us(chunk["p99"]), verdict(ok)])
    any_r = next(iter(results.values()), {"iterations": 0, "stream_runs": 0})
    return "\n".join([
        "## Translation overhead per provider (in-process)",
        "",
        f"{any_r['iterations']} request translations (build the wire body + decode and parse the answer) and "
        f"{any_r['stream_runs']} streams of {STREAM_DELTAS} text deltas (each chunk timed on its own) per provider; "
        f"each figure is the median over {any_r.get('repeats', 1)} repeated runs. "
        f"Machine: {machine()}.",
        "",
        table(["provider", "request P50 µs", "request P99 µs", "chunk P50 µs", "chunk P99 µs",
               f"≤ {TARGET_REQUEST_US:g} µs / ≤ {TARGET_CHUNK_US:g} µs (P99)"], rows),
        "",
        f"All providers within target: {verdict(all_ok)}.",
        "",
    ])


def main(argv: list[str] | None = None) -> str:
    return render(measure_all(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    print(main())
