"""(b) End-to-end overhead of the local server against a fake OpenAI-wire provider on loopback.

Three processes on loopback: the fast fake OpenAI server (`bench.fake_openai`), the local
gateway exactly as `make run` starts it (`python -m llm_gateway.local`: embedded moto + uvicorn,
on free ports) with a catalog whose `openai` provider points at the fake, and this client.
Two gateways run side by side: **as shipped** (each request's usage record is a `PutItem` on the
embedded moto, synchronously, as on Lambda) and **usage sink in memory** (`bench._gateway
--usage-sink memory`: the same process with the usage write swapped for a no-op, i.e. the
gateway's own cost). Sequential requests rotate between the fake directly and the same request
through each gateway (`openai::gpt-4o-mini`), each on its own keep-alive `httpx` client, so drift
hits all alike. Overhead = gateway latency − direct latency, per pair and as the difference of the
distributions.

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

from bench._common import BENCH_ENV, REPO, machine, ms, summary, table, verdict
from bench.fake_openai import FakeOpenAIProcess

TARGET_P99_MS = 5.0
PAIRS = int(os.environ.get("BENCH_E2E_N", "2000"))
WARMUP = int(os.environ.get("BENCH_E2E_WARMUP", "200"))
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


VARIANTS = (("shipped", "dynamodb"), ("sink", "memory"))
LABELS = {"shipped": "as shipped (usage `PutItem` on embedded moto)", "sink": "usage sink in memory (gateway's own cost)"}


def measure(pairs: int = PAIRS, warmup: int = WARMUP) -> dict[str, Any]:
    import httpx

    from bench._common import setup_env

    setup_env()
    from llm_gateway.local.aws import DEV_API_KEY

    gw_headers = {"Authorization": f"Bearer {DEV_API_KEY}", "Content-Type": "application/json"}
    direct_headers = {"Authorization": "Bearer sk-bench-not-a-real-key", "Content-Type": "application/json"}
    gw_payload = json.dumps(request_body(MODEL)).encode()
    direct_payload = json.dumps(openai_body()).encode()
    with ExitStack() as stack:
        fake = stack.enter_context(FakeOpenAIProcess())
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        catalog = write_catalog(fake.url, tmp)
        gateways = {name: stack.enter_context(local_gateway(catalog, sink)) for name, sink in VARIANTS}
        urls = {name: gw.url + "/chat/completions" for name, gw in gateways.items()}
        clients = {name: stack.enter_context(httpx.Client(trust_env=False, timeout=10)) for name, _ in VARIANTS}
        direct = stack.enter_context(httpx.Client(trust_env=False, timeout=10))
        direct_chat = fake.url + "/v1/chat/completions"
        for name, _ in VARIANTS:
            first = clients[name].post(urls[name], content=gw_payload, headers=gw_headers)
            if first.status_code != 200 or first.json().get("provider") != "openai":
                raise RuntimeError(f"gateway ({name}) answered {first.status_code}: {first.text[:500]}")
        perf = time.perf_counter_ns
        d_ms: list[float] = []
        g_ms: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
        gc.collect()
        cpu_start: dict[str, float] = {}
        for i in range(warmup + pairs):
            if i == warmup:
                cpu_start = {name: gw.cpu_seconds() for name, gw in gateways.items()}
            t0 = perf()
            r = direct.post(direct_chat, content=direct_payload, headers=direct_headers)
            t1 = perf()
            if r.status_code != 200:
                raise RuntimeError(f"direct request failed: {r.status_code}")
            if i >= warmup:
                d_ms.append((t1 - t0) / 1e6)
            for name, _ in VARIANTS:
                t0 = perf()
                r = clients[name].post(urls[name], content=gw_payload, headers=gw_headers)
                t1 = perf()
                if r.status_code != 200:
                    raise RuntimeError(f"gateway ({name}) request failed: {r.status_code} {r.text[:300]}")
                if i >= warmup:
                    g_ms[name].append((t1 - t0) / 1e6)
        cpu_ms = {name: (gw.cpu_seconds() - cpu_start[name]) * 1000 / pairs for name, gw in gateways.items()}
    d = summary(d_ms)
    out: dict[str, Any] = {"pairs": pairs, "warmup": warmup, "direct": d, "variants": {}}
    for name, _ in VARIANTS:
        g = summary(g_ms[name])
        out["variants"][name] = {
            "gateway": g,
            "pair_diff": summary([a - b for a, b in zip(g_ms[name], d_ms)]),
            "dist_diff": {k: g[k] - d[k] for k in ("p50", "p90", "p99", "mean")},
            "cpu_ms": cpu_ms[name],
        }
    return out


def render(r: dict[str, Any]) -> str:
    d = r["direct"]
    rows = [["direct to the fake", ms(d["p50"]), ms(d["p90"]), ms(d["p99"]), ms(d["mean"]), ms(d["max"])]]
    verdicts = []
    for name, _ in VARIANTS:
        v = r["variants"][name]
        g, x, dd = v["gateway"], v["pair_diff"], v["dist_diff"]
        label = LABELS[name]
        rows += [
            [f"through the gateway — {label}", ms(g["p50"]), ms(g["p90"]), ms(g["p99"]), ms(g["mean"]), ms(g["max"])],
            ["  overhead: difference of distributions", ms(dd["p50"]), ms(dd["p90"]), ms(dd["p99"]), ms(dd["mean"]), ""],
            ["  overhead: per-pair difference", ms(x["p50"]), ms(x["p90"]), ms(x["p99"]), ms(x["mean"]), ms(x["max"])],
        ]
        p99 = max(dd["p99"], x["p99"])
        v["overhead_p99"] = p99
        verdicts.append(f"- {label}: **{ms(p99)} ms** — {verdict(p99 <= TARGET_P99_MS)} "
                        f"(gateway process CPU: {ms(v['cpu_ms'], 2)} ms per request)")
    return "\n".join([
        "## End-to-end overhead (local server, fake OpenAI-wire provider on loopback)",
        "",
        f"`python -m llm_gateway.local` (embedded moto + uvicorn, started through `bench._gateway`) with `{MODEL}` "
        f"pointed at a raw-asyncio fake OpenAI server; {r['pairs']} sequential rounds (direct, then through each "
        f"gateway) after {r['warmup']} warm-up, keep-alive `httpx` clients. Machine: {machine()}.",
        "",
        table(["ms per request", "P50", "P90", "P99", "mean", "max"], rows),
        "",
        f"Target P99 overhead ≤ {TARGET_P99_MS:g} ms (LiteLLM proxy ≈ 20 ms); the larger of the two P99 figures:",
        *verdicts,
        "",
    ])


def main() -> str:
    return render(measure())


if __name__ == "__main__":
    print(main())
