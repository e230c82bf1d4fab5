"""Async jobs on the local server: submit latency and the poll of a finished job.

The local gateway runs exactly as `make run` starts it (`python -m llm_gateway.local`: embedded
moto executing the real state machine, its Lambda tasks dispatched in-process, uvicorn) on free
ports; this client sends sequential requests over one keep-alive connection.

- **submit**: `POST /jobs` (`mock::echo`) → 202 — authenticate, validate, resolve the model,
  `PutItem` the job, `StartExecution` (moto starts interpreting the state machine at once, in
  the same process, so earlier jobs run while later ones are submitted — as they would).
- **poll of a finished job**: `GET /jobs/{id}` on completed jobs — authenticate, `GetItem`,
  render (result inline).
- **submit, server idle**: the same, each submitted once the previous job finished (the gateway's
  own submit path, without moto interpreting earlier executions in the same process).
- **time to completed** (context): submit → first `GET` that shows `completed`, polled every 5 ms.

Targets: submit P99 ≤ 50 ms, poll of a finished job P99 ≤ 20 ms.

`python -m bench.bench_jobs` prints the markdown section; `main()` returns it.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
SUBMIT_TARGET_MS = 50.0
POLL_TARGET_MS = 20.0
SUBMITS = int(os.environ.get("BENCH_JOBS_SUBMITS", "500"))
POLLS = int(os.environ.get("BENCH_JOBS_POLLS", "2000"))
E2E = int(os.environ.get("BENCH_JOBS_E2E", "100"))
WARMUP = int(os.environ.get("BENCH_JOBS_WARMUP", "50"))
DEV_API_KEY = "llmgw_dev00000_local-development-key-do-not-use-in-production"
ENV = {
    "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
    "LLMGW_LOCAL": "1", "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 50), "p90": pct(values, 90), "p99": pct(values, 99), "max": max(values)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux `/proc`; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


@contextmanager
def local_gateway(timeout_s: float = 60.0) -> Iterator[tuple[str, int]]:
    import httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LLMGW_", "POWERTOOLS_"))}
    env.update(ENV)
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen([sys.executable, "-m", "llm_gateway.local", "--port", str(port)], cwd=str(REPO), env=env,
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
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _body(i: int) -> bytes:
    import json

    return json.dumps({"model": "mock::echo", "messages": [
        {"role": "user", "content": [{"type": "text", "text": f"Summarize job number {i} in one line."}]}]}).encode()


def measure(submits: int = SUBMITS, polls: int = POLLS, e2e: int = E2E, warmup: int = WARMUP) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {DEV_API_KEY}", "Content-Type": "application/json"}
    perf = time.perf_counter_ns
    with local_gateway() as (url, pid), httpx.Client(trust_env=False, timeout=30) as http:
        cpu: dict[str, float] = {}
        submit_ms: list[float] = []
        ids: list[str] = []
        for i in range(warmup + submits):
            if i == warmup:
                c0 = cpu_seconds(pid)
            t0 = perf()
            r = http.post(url + "/jobs", content=_body(i), headers=headers)
            t1 = perf()
            if r.status_code != 202:
                raise RuntimeError(f"submit failed: {r.status_code} {r.text[:300]}")
            ids.append(r.json()["id"])
            if i >= warmup:
                submit_ms.append((t1 - t0) / 1e6)
        # every job finishes (they ran while the others were submitted)
        deadline = time.monotonic() + 300
        pending = list(ids)
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} jobs did not finish")
            status = http.get(f"{url}/jobs/{pending[0]}", headers=headers).json()["status"]
            if status == "completed":
                pending.pop(0)
            elif status in ("failed", "cancelled"):
                raise RuntimeError(f"job {pending[0]} ended {status}")
            else:
                time.sleep(0.05)
        cpu["job"] = (cpu_seconds(pid) - c0) * 1000 / submits  # submit + the job's whole execution, per job
        poll_ms: list[float] = []
        for i in range(warmup + polls):
            if i == warmup:
                c0 = cpu_seconds(pid)
            job_id = ids[i % len(ids)]
            t0 = perf()
            r = http.get(f"{url}/jobs/{job_id}", headers=headers)
            t1 = perf()
            if r.status_code != 200 or r.json()["status"] != "completed":
                raise RuntimeError(f"poll failed: {r.status_code} {r.text[:300]}")
            if i >= warmup:
                poll_ms.append((t1 - t0) / 1e6)
        cpu["poll"] = (cpu_seconds(pid) - c0) * 1000 / polls
        done_ms: list[float] = []
        idle_ms: list[float] = []
        for i in range(e2e):
            t0 = perf()
            r = http.post(url + "/jobs", content=_body(i), headers=headers)
            t1 = perf()
            idle_ms.append((t1 - t0) / 1e6)
            job_id = r.json()["id"]
            while http.get(f"{url}/jobs/{job_id}", headers=headers).json()["status"] != "completed":
                time.sleep(0.005)
            done_ms.append((perf() - t0) / 1e6)
            time.sleep(0.05)  # the execution's last state transitions
    return {"submit": summary(submit_ms), "idle": summary(idle_ms), "poll": summary(poll_ms), "done": summary(done_ms),
            "jobs": len(ids) + e2e, "cpu": cpu}


def render(m: dict[str, Any]) -> str:
    s, p, d, idle = m["submit"], m["poll"], m["done"], m["idle"]

    def row(name: str, v: dict[str, float], target: str, ok: str) -> str:
        return f"| {name} | {v['n']} | {v['p50']:.2f} | {v['p90']:.2f} | {v['p99']:.2f} | {v['max']:.2f} | {target} | {ok} |"

    def verdict(value: float, target: float) -> str:
        return "✅ met" if value <= target else "❌ missed"

    lines = [
        "### Async jobs on the local server",
        "",
        "Sequential requests over one keep-alive connection to `python -m llm_gateway.local` (embedded moto "
        "executing the real state machine, Lambda tasks in-process), `mock::echo`. Milliseconds.",
        "",
        "| measure | n | P50 | P90 | P99 | max | target (P99) | |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        row("submit `POST /jobs` → 202", s, f"≤ {SUBMIT_TARGET_MS:.0f} ms", verdict(s["p99"], SUBMIT_TARGET_MS)),
        row("poll of a finished job `GET /jobs/{id}`", p, f"≤ {POLL_TARGET_MS:.0f} ms", verdict(p["p99"], POLL_TARGET_MS)),
        row("submit, server idle (no earlier job running)", idle, f"≤ {SUBMIT_TARGET_MS:.0f} ms", verdict(idle["p99"], SUBMIT_TARGET_MS)),
        row("submit → `completed` seen (context)", d, "—", ""),
        "",
        f"Gateway process CPU: {m['cpu']['poll']:.2f} ms per poll of a finished job; {m['cpu']['job']:.1f} ms per job "
        "submitted back-to-back (its submit plus its whole execution: moto's ASL interpreter, the Lambda task, "
        "the pipeline, every DynamoDB call on both sides of the embedded server). On a loaded machine the "
        "latencies above grow with the load; the CPU figures do not.",
        "",
        "Back-to-back submits share the process (and the GIL) with moto interpreting the earlier jobs' "
        "executions (ASL parse ≈ 35 ms CPU per execution, each Task a Lambda invoke through the embedded "
        "server): that is the emulator's cost, absent on AWS where Step Functions runs elsewhere. The idle "
        "row is the gateway's own submit path (auth, validation, `PutItem`, `StartExecution`).",
        "",
        f"{m['jobs']} jobs submitted; load average at the end {os.getloadavg()[0]:.1f}; machine: {os.cpu_count()} CPU(s), "
        f"{platform.machine()}, Python {platform.python_version()}.",
    ]
    return "\n".join(lines)


def main() -> str:
    return render(measure())


if __name__ == "__main__":
    print(main())
