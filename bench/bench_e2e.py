"""(b) End-to-end overhead of the local server against a fake OpenAI-wire provider on loopback.

Three processes on loopback: the fast fake OpenAI server (`bench.fake_openai`), the local
gateway exactly as `make run` starts it (`python -m llm_gateway.local`: embedded moto + uvicorn,
on free ports) with a catalog whose `openai` provider points at the fake, and this client.
Two gateways, each measured in its own block with only it running: **as shipped**, and **the
request path alone** (governance and audit events off, the usage write swapped for a no-op: no
AWS call at all — what a proxy without a database does, e.g. LiteLLM's). Running them side by
side let the shipped gateway's post-call writes (and moto's CPU emulating them) land in the other
variant's and the direct path's figures. Sequential rounds within a block: the fake directly,
then the same request through the gateway (`openai::gpt-4o-mini`), each on its own keep-alive
`httpx` client, so drift hits both alike. Overhead = gateway latency − direct latency, per pair and as the difference of the
distributions. `bench._gateway` adds to each response the time its botocore calls kept the request
waiting (`x-bench-aws-ms`: on the local server, the embedded moto's emulation), so the shipped
gateway is also reported without it.

Target: P99 overhead ≤ 5 ms (LiteLLM's proxy adds ~20 ms P99 on the same fake on this machine kind).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from bench._common import BENCH_ENV, REPO, machine, ms, rounds, summary, table, verdict
from bench.fake_openai import FakeOpenAIProcess

TARGET_P99_MS = 5.0
PAIRS = int(os.environ.get("BENCH_E2E_N", "2000"))
WARMUP = int(os.environ.get("BENCH_E2E_WARMUP", "200"))
# the measured rounds stop early after this long (a busy machine); the section reports the real n
BUDGET_S = float(os.environ.get("BENCH_E2E_BUDGET_S", "45"))
MODEL = "openai::gpt-4o-mini"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_catalog(fake_url: str, directory: str) -> str:
    """The packaged catalog with the `openai` provider pointed at the fake."""
    default = REPO / "layers" / "gateway" / "llm_gateway" / "catalog" / "default.json"
    data = json.loads(default.read_text())
    for provider in data["providers"]:
        if provider["id"] == "openai":
            provider["base_url"] = fake_url + "/v1"
            provider["credential"] = {"env": "OPENAI_API_KEY"}
    path = Path(directory) / "catalog.json"
    path.write_text(json.dumps(data))
    return str(path)


@dataclass(frozen=True)
class GatewayProcess:
    """A running local gateway: its base URL and process id."""

    url: str
    pid: int

    def __str__(self) -> str:
        return self.url

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (Linux `/proc`; 0.0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0.0


@contextmanager
def local_gateway(catalog: str, usage_sink: str = "dynamodb", extra_env: dict[str, str] | None = None,
                  timeout_s: float = 60.0) -> Iterator[GatewayProcess]:
    """`python -m llm_gateway.local` (through `bench._gateway`) on free ports; yields it (`.url`,
    `.pid`) once `GET /models` answers."""
    import httpx

    from llm_gateway.local.aws import DEV_API_KEY

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LLMGW_", "POWERTOOLS_", "OPENAI_"))}
    env.update(BENCH_ENV)
    env.update({"LLMGW_CATALOG": catalog, "OPENAI_API_KEY": "sk-bench-not-a-real-key", "PYTHONPATH": str(REPO)})
    env.update(extra_env or {})
    proc = subprocess.Popen([sys.executable, "-m", "bench._gateway", "--usage-sink", usage_sink, "--port", str(port)], cwd=str(REPO), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(trust_env=False, timeout=2.0) as probe:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the local gateway exited: {(proc.stderr.read() if proc.stderr else '')[-2000:]}")
                try:
                    if probe.get(url + "/models", headers={"Authorization": f"Bearer {DEV_API_KEY}"}).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the local gateway did not start in time")
                time.sleep(0.1)
        yield GatewayProcess(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def request_body(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are a terse assistant."}]},
            {"role": "user", "content": [{"type": "text", "text": "Summarize the benefits of a gateway in one line."}]},
        ],
        "max_tokens": 64,
    }


def openai_body() -> dict[str, Any]:
    """What the gateway sends the fake for `request_body` (the direct path sends the same)."""
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Summarize the benefits of a gateway in one line."},
        ],
        "max_completion_tokens": 64,
    }


# (name, label, usage sink, environment): the gateway as shipped, and the request path alone
VARIANTS = (
    ("shipped", "as shipped", "dynamodb", {}),
    ("pipeline", "request path alone (governance and audit off, usage sink in memory: no AWS call)", "memory",
     {"LLMGW_GOVERNANCE": "off", "LLMGW_AUDIT_EVENTS": "off"}),
)


def measure(pairs: int = PAIRS, warmup: int = WARMUP) -> dict[str, Any]:
    """Each variant in its own block, with only its gateway running: one variant's background work
    (the shipped gateway's post-call writes, moto's emulation of them) never lands in another's
    figures. Within a block, direct and gateway requests alternate, so drift hits both alike."""
    from bench._common import setup_env

    setup_env()
    from llm_gateway.local.aws import DEV_API_KEY

    gw_headers = {"Authorization": f"Bearer {DEV_API_KEY}", "Content-Type": "application/json"}
    direct_headers = {"Authorization": "Bearer sk-bench-not-a-real-key", "Content-Type": "application/json"}
    out: dict[str, Any] = {"pairs": pairs, "warmup": warmup, "variants": {}}
    with ExitStack() as stack:
        fake = stack.enter_context(FakeOpenAIProcess())
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        catalog = write_catalog(fake.url, tmp)
        for name, _, sink, env in VARIANTS:
            with local_gateway(catalog, sink, extra_env=env) as gw:
                block = _measure_block(gw, fake.url, catalog, pairs, warmup, gw_headers, direct_headers)
            out["variants"][name] = block
            out["pairs"] = min(out["pairs"], block["pairs"])
    return out


def _timed_post(client: Any, url: str, payload: bytes, headers: dict[str, str], what: str) -> tuple[float, Any]:
    """(ms, response) of one POST; a non-200 answer stops the benchmark."""
    t0 = time.perf_counter_ns()
    r = client.post(url, content=payload, headers=headers)
    took = (time.perf_counter_ns() - t0) / 1e6
    if r.status_code != 200:
        raise RuntimeError(f"{what} request failed: {r.status_code} {r.text[:300]}")
    return took, r


def _measure_block(gw: GatewayProcess, fake_url: str, catalog: str, pairs: int, warmup: int,
                   gw_headers: dict[str, str], direct_headers: dict[str, str]) -> dict[str, Any]:
    import httpx

    gw_payload = json.dumps(request_body(MODEL)).encode()
    direct_payload = json.dumps(openai_body()).encode()
    url = gw.url + "/chat/completions"
    direct_chat = fake_url + "/v1/chat/completions"
    with httpx.Client(trust_env=False, timeout=30) as client, httpx.Client(trust_env=False, timeout=30) as direct:
        first = client.post(url, content=gw_payload, headers=gw_headers)
        if first.status_code != 200 or first.json().get("provider") != "openai":
            raise RuntimeError(f"gateway answered {first.status_code}: {first.text[:500]}")
        d_ms: list[float] = []
        g_ms: list[float] = []
        aws_ms: list[float] = []
        calls: list[int] = []
        gc.collect()
        cpu: dict[str, float] = {}
        for measured in rounds(warmup, pairs, BUDGET_S, on_start=lambda: cpu.update(start=gw.cpu_seconds())):
            took, _ = _timed_post(direct, direct_chat, direct_payload, direct_headers, "direct")
            if measured:
                d_ms.append(took)
            took, r = _timed_post(client, url, gw_payload, gw_headers, "gateway")
            if measured:
                g_ms.append(took)
                aws_ms.append(float(r.headers.get("x-bench-aws-ms", "0")))
                calls.append(int(r.headers.get("x-bench-aws-calls", "0")))
        n = len(d_ms)
        cpu_ms = (gw.cpu_seconds() - cpu["start"]) * 1000 / max(1, n)
    own = [g - a for g, a in zip(g_ms, aws_ms)]
    d, g, o = summary(d_ms), summary(g_ms), summary(own)
    return {
        "pairs": n, "direct": d, "gateway": g, "aws": summary(aws_ms), "calls": sum(calls) / max(1, n), "cpu_ms": cpu_ms,
        "pair_diff": summary([a - b for a, b in zip(g_ms, d_ms)]),
        "pair_diff_own": summary([a - b for a, b in zip(own, d_ms)]),
        "dist_diff": {k: g[k] - d[k] for k in ("p50", "p90", "p99", "mean")},
        "dist_diff_own": {k: o[k] - d[k] for k in ("p50", "p90", "p99", "mean")},
    }


def render(r: dict[str, Any]) -> str:
    def row(label: str, x: dict[str, float], with_max: bool = True) -> list[str]:
        return [label, ms(x["p50"]), ms(x["p90"]), ms(x["p99"]), ms(x["mean"]), ms(x["max"]) if with_max else ""]

    rows = []
    verdicts = []
    for name, label, _, _ in VARIANTS:
        v = r["variants"][name]
        rows.append(row(f"direct to the fake (alternating with the gateway below, {v['pairs']} rounds)", v["direct"]))
        rows.append(row(f"through the gateway — **{label}**", v["gateway"]))
        has_aws = v["calls"] >= 0.5  # (a cached lookup refreshed now and then is not "AWS per request")
        if has_aws:
            rows += [
                row(f"  of which AWS calls (embedded moto; {v['calls']:.1f} per request)", v["aws"]),
                row("  overhead: per-pair difference", v["pair_diff"]),
                row("  overhead: difference of distributions", v["dist_diff"], with_max=False),
                row("  overhead without the AWS calls: per-pair difference", v["pair_diff_own"]),
                row("  overhead without the AWS calls: difference of distributions", v["dist_diff_own"], with_max=False),
            ]
        else:
            rows += [
                row("  overhead: per-pair difference", v["pair_diff"]),
                row("  overhead: difference of distributions", v["dist_diff"], with_max=False),
            ]
        p99 = max(v["pair_diff"]["p99"], v["dist_diff"]["p99"])
        line = f"- {label}: **{ms(p99)} ms** {verdict(p99 <= TARGET_P99_MS)}"
        if has_aws:
            own = max(v["pair_diff_own"]["p99"], v["dist_diff_own"]["p99"])
            line += f"; without its AWS calls **{ms(own)} ms** {verdict(own <= TARGET_P99_MS)}"
        line += f" (P50 {ms(v['pair_diff']['p50'])} ms; gateway process CPU {ms(v['cpu_ms'], 2)} ms per request)"
        verdicts.append(line)
    notes = []
    try:
        if os.getloadavg()[0] > (os.cpu_count() or 1):
            notes.append("The machine was busy (1-min load average above its CPU count): wall-clock tails include "
                         "time other processes held the CPU.")
    except OSError:
        pass
    return "\n".join([
        "## End-to-end overhead (local server, fake OpenAI-wire provider on loopback)",
        "",
        f"`python -m llm_gateway.local` (embedded moto + uvicorn, started through `bench._gateway`, which times the "
        f"AWS calls of each request) with `{MODEL}` pointed at a raw-asyncio fake OpenAI server. Each variant is "
        f"measured in its own block with only its gateway running (one variant's background work never lands in "
        f"another's figures): {r['pairs']} sequential rounds (the fake directly, then through the gateway) after "
        f"{r['warmup']} warm-up, keep-alive `httpx` clients. Machine: {machine()}.",
        "",
        table(["ms per request", "P50", "P90", "P99", "mean", "max"], rows),
        "",
        *notes,
        f"Target P99 overhead ≤ {TARGET_P99_MS:g} ms (LiteLLM proxy ≈ 20 ms on this machine kind), the larger of the "
        "two P99 figures:",
        *verdicts,
        "",
        "AWS time on the local server is moto's in-process emulation (governance counters, tenant config, usage "
        "record, day aggregate, audit event), not DynamoDB latency; the process CPU includes it.",
        "",
    ])


def main() -> str:
    return render(measure())


if __name__ == "__main__":
    print(main())
