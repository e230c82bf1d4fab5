"""Streaming overhead: time to first token (TTFT) and whole-stream time added by the local server.

Three kinds of processes on loopback: the fast fake OpenAI-wire server (`bench.fake_openai`; a
`stream: true` request gets its whole SSE answer — role chunk, 8 content chunks, finish chunk,
usage chunk, `[DONE]` — in one write, so the fake never hides gateway latency), the local gateway
as `make run` starts it (embedded moto + uvicorn; a `stream: true` chat request is served by the
streaming app, frames sent as produced) — as shipped, and with the usage write swapped for a
no-op (`bench._gateway --usage-sink memory`) — and this client. Each variant is measured
in its own block with only its gateway running (side by side, the shipped gateway's post-call
writes and moto's emulation of them landed in the other's figures). Sequential rounds: the same
streamed request directly to the fake, then through the gateway (`openai::gpt-4o-mini`), each on
its own keep-alive `httpx` client, reading the body as it arrives. TTFT = until the first content
delta (`"content":"Gateways `) has arrived; whole stream = until `data: [DONE]` has arrived.
Added = gateway − direct, per pair and as the difference of the distributions.

Targets (issue 4): the gateway adds ≤ 2 ms to TTFT and ≤ 5 ms P99 to a whole streamed answer
(LiteLLM's proxy adds about 40 ms P99 streamed on this machine kind).
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import time
from contextlib import ExitStack
from typing import Any

from bench._common import machine, ms, summary, table, verdict
from bench._common import rounds as measured_rounds  # `rounds` names the count here

TARGET_TTFT_MS = 2.0
TARGET_STREAM_P99_MS = 5.0
ROUNDS = int(os.environ.get("BENCH_STREAM_N", "1000"))
WARMUP = int(os.environ.get("BENCH_STREAM_WARMUP", "100"))
MODEL = "openai::gpt-4o-mini"
FIRST = b'"content":"Gateways '
DONE = b"data: [DONE]"
BUDGET_S = float(os.environ.get("BENCH_STREAM_BUDGET_S", "45"))  # measured rounds stop early after this long
# name -> (usage sink, extra environment of the gateway process)
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "shipped": ("dynamodb", {}),
    "core": ("memory", {"LLMGW_GOVERNANCE": "off", "LLMGW_AUDIT_EVENTS": "off"}),
}
LABELS = {
    "shipped": "as shipped (governance counters on the embedded moto before the call; usage record after `[DONE]`)",
    "core": "streaming path alone (governance off, usage sink in memory: no AWS calls)",
}


def timed_stream(client: Any, url: str, payload: bytes, headers: dict[str, str]) -> tuple[float, float]:
    """(ms to the first content delta, ms to `data: [DONE]`) for one streamed request."""
    perf = time.perf_counter_ns
    t0 = perf()
    first = done = 0
    seen = b""
    with client.stream("POST", url, content=payload, headers=headers) as resp:
        if resp.status_code != 200:
            resp.read()
            raise RuntimeError(f"{url} answered {resp.status_code}: {resp.text[:300]}")
        for chunk in resp.iter_raw():
            seen = seen[-64:] + chunk
            if not first and FIRST in seen:
                first = perf()
            if DONE in seen:
                done = perf()
                break
    if not (first and done):
        raise RuntimeError(f"{url}: incomplete stream")
    return (first - t0) / 1e6, (done - t0) / 1e6


def measure(rounds: int = ROUNDS, warmup: int = WARMUP) -> dict[str, Any]:
    import httpx

    from bench._common import setup_env

    setup_env()
    from bench.bench_e2e import local_gateway, openai_body, request_body, write_catalog
    from bench.fake_openai import FakeOpenAIProcess
    from llm_gateway.local.aws import DEV_API_KEY

    gw_headers = {"Authorization": f"Bearer {DEV_API_KEY}", "Content-Type": "application/json"}
    direct_headers = {"Authorization": "Bearer sk-bench-not-a-real-key", "Content-Type": "application/json"}
    gw_payload = json.dumps({**request_body(MODEL), "stream": True}).encode()
    direct_payload = json.dumps({**openai_body(), "stream": True, "stream_options": {"include_usage": True}}).encode()
    out: dict[str, Any] = {"rounds": rounds, "warmup": warmup, "variants": {}}
    with ExitStack() as stack:
        fake = stack.enter_context(FakeOpenAIProcess())
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        catalog = write_catalog(fake.url, tmp)
        direct_url = fake.url + "/v1/chat/completions"
        # each variant in its own block, only its gateway running: one variant's background work
        # (the shipped gateway's post-call writes and moto's emulation of them) stays in its own figures
        for name, (sink, env) in VARIANTS.items():
            with local_gateway(catalog, sink, extra_env=env) as gw, \
                    httpx.Client(trust_env=False, timeout=10) as client, httpx.Client(trust_env=False, timeout=10) as direct:
                url = gw.url + "/chat/completions"
                d_ttft: list[float] = []
                d_all: list[float] = []
                g_ttft: list[float] = []
                g_all: list[float] = []
                cpu: dict[str, float] = {}
                gc.collect()
                for measured in measured_rounds(warmup, rounds, BUDGET_S, on_start=lambda: cpu.update(start=gw.cpu_seconds())):
                    a, b = timed_stream(direct, direct_url, direct_payload, direct_headers)
                    c, d = timed_stream(client, url, gw_payload, gw_headers)
                    if measured:
                        d_ttft.append(a)
                        d_all.append(b)
                        g_ttft.append(c)
                        g_all.append(d)
                n = len(d_ttft)
                v: dict[str, Any] = {"rounds": n, "cpu_ms": (gw.cpu_seconds() - cpu["start"]) * 1000 / max(1, n),
                                     "direct": {"ttft": summary(d_ttft), "all": summary(d_all)}}
            for key, g, dd in (("ttft", g_ttft, d_ttft), ("all", g_all, d_all)):
                gs, ds = summary(g), summary(dd)
                v[key] = {"gateway": gs, "pair": summary([x - y for x, y in zip(g, dd)]),
                          "dist": {k: gs[k] - ds[k] for k in ("p50", "p90", "p99", "mean")}}
            out["variants"][name] = v
            out["rounds"] = min(out["rounds"], n)
    try:
        out["load"] = os.getloadavg()[0]
    except OSError:
        out["load"] = 0.0
    return out


def render(r: dict[str, Any]) -> str:
    rows = []
    for key, what in (("ttft", "TTFT"), ("all", "whole stream")):
        for name in VARIANTS:
            d = r["variants"][name]["direct"][key]
            rows.append([f"{what}: direct to the fake (alternating with the gateway below)", ms(d["p50"]), ms(d["p90"]),
                         ms(d["p99"]), ms(d["max"])])
            v = r["variants"][name][key]
            g, dd, x = v["gateway"], v["dist"], v["pair"]
            rows.append([f"{what}: through the gateway — {LABELS[name]}", ms(g["p50"]), ms(g["p90"]), ms(g["p99"]), ms(g["max"])])
            rows.append([f"  added ({what}), difference of distributions", ms(dd["p50"]), ms(dd["p90"]), ms(dd["p99"]), ""])
            rows.append([f"  added ({what}), per-pair difference", ms(x["p50"]), ms(x["p90"]), ms(x["p99"]), ms(x["max"])])
    verdicts = []
    for name in VARIANTS:
        v = r["variants"][name]
        ttft50 = v["ttft"]["dist"]["p50"]
        ttft99 = max(v["ttft"]["dist"]["p99"], v["ttft"]["pair"]["p99"])
        all99 = max(v["all"]["dist"]["p99"], v["all"]["pair"]["p99"])
        verdicts.append(f"- {LABELS[name]}: added TTFT P50 **{ms(ttft50)} ms** (P99 {ms(ttft99)} ms) — "
                        f"{verdict(ttft50 <= TARGET_TTFT_MS)}; added whole-stream P99 **{ms(all99)} ms** — "
                        f"{verdict(all99 <= TARGET_STREAM_P99_MS)}; gateway process CPU {ms(v['cpu_ms'], 2)} ms per streamed request")
    return "\n".join([
        "## Streaming overhead (local server, fake OpenAI-wire provider on loopback)",
        "",
        f"`stream: true` through `python -m llm_gateway.local` (streaming app, frames sent as produced) with `{MODEL}` "
        f"pointed at a raw-asyncio fake OpenAI server that answers a 12-event SSE stream at once. Each variant in its "
        f"own block with only its gateway running: {r['rounds']} sequential rounds (direct, then through the gateway) after {r['warmup']} warm-up, keep-alive `httpx` "
        f"clients reading the body as it arrives. TTFT = first content delta received; whole stream = "
        f"`data: [DONE]` received. Machine: {machine()}.",
        "",
        table(["ms", "P50", "P90", "P99", "max"], rows),
        "",
        f"Targets: ≤ {TARGET_TTFT_MS:g} ms added to TTFT, ≤ {TARGET_STREAM_P99_MS:g} ms P99 added to a whole streamed answer "
        "(LiteLLM's proxy ≈ 40 ms P99 streamed); P99 figures are the larger of the two ways of computing them:",
        *verdicts,
        *(["", f"The machine was busy (1-min load average {r['load']:.1f} on {os.cpu_count()} CPUs): wall-clock figures "
                "include time other processes held the CPU."] if r["load"] > (os.cpu_count() or 1) else []),
        "",
    ])


def main() -> str:
    return render(measure())


if __name__ == "__main__":
    print(main())
