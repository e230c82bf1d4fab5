"""(a) Compute overhead in-process: API Gateway v2 event → `lambda_handler` → response.

The `mock` provider (zero latency) stands in for the model and moto runs in-process
(`mock_aws`), so what is measured is the gateway's own work: Powertools routing, auth, parsing
and validation, model resolution, the provider call, rendering, usage reporting — and, in the
full configuration, governance (rate limits, budgets, tenant config) and audit events.

Every botocore API call is timed (`bench._common.AwsCallTimer`: the union of the calls'
intervals, calls made side by side counting once), and each request's AWS time is subtracted
from its wall time. Configurations:
- **pipeline** — governance and audit events off (`LLMGW_GOVERNANCE=off`, `LLMGW_AUDIT_EVENTS=off`)
  and the usage write (`UsageStore.record`) swapped for an in-memory counter: the request path
  with no store call at all (API keys come from the key store's in-process cache), so moto's
  allocations and cache traffic stay out of the figure. With the local/test observability
  settings (log level WARNING, metrics off) and with the deployed ones (INFO logs: one JSON line
  per request; an EMF metrics blob per invocation), their output sent to /dev/null;
- **full** — everything on, every store on moto: total wall time, the AWS share, and compute =
  total − AWS (moto's garbage and cache traffic still inflate it a little).
CPU time (the process's, every thread: the pipeline's I/O pool included; in the full configuration
minus the CPU spent inside the AWS calls) is reported beside wall time: it does not grow when
other processes hold the CPU.

Target: compute P99 ≤ 1 ms.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import time
import warnings
from typing import Any, Iterator

from bench._common import AwsCallTimer, machine, ms, reset_process_state, setup_env, summary, table, verdict

TARGET_P99_MS = 1.0
ITERATIONS = int(os.environ.get("BENCH_COMPUTE_N", "5000"))
WARMUP = int(os.environ.get("BENCH_COMPUTE_WARMUP", "500"))
# every store on moto costs several ms per request: fewer iterations for the full configuration
FULL_ITERATIONS = int(os.environ.get("BENCH_COMPUTE_FULL_N", "1000"))
# each measured loop stops early after this long (a busy machine); the section reports the real n
BUDGET_S = float(os.environ.get("BENCH_COMPUTE_BUDGET_S", "15"))

PAYLOAD = {
    "model": "mock::echo",
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "You are a terse assistant."}]},
        {"role": "user", "content": [{"type": "text", "text": "Summarize the benefits of a gateway in one line."}]},
    ],
    "max_tokens": 64,
    "metadata": {"conversation_id": "bench-conv-1"},
}


def _event_and_context() -> tuple[dict[str, Any], Any]:
    from llm_gateway.local.aws import DEV_API_KEY
    from llm_gateway.local.server import LambdaContext, apigw_v2_event

    headers = {
        "host": "api.example.com",
        "content-type": "application/json",
        "authorization": f"Bearer {DEV_API_KEY}",
        "user-agent": "bench",
    }
    body = json.dumps(PAYLOAD).encode()
    return apigw_v2_event("POST", "/chat/completions", "", headers, body, "req_bench", "127.0.0.1"), LambdaContext(
        function_name="chat", aws_request_id="req_bench"
    )


def _run(handler: Any, event: dict, context: Any, n: int, aws: AwsCallTimer,
         budget_s: float = BUDGET_S) -> dict[str, list[float]]:
    """Per request (ms): wall, AWS wall, process CPU (every thread: the I/O pool's too), AWS CPU."""
    out: dict[str, list[float]] = {"wall": [], "aws": [], "cpu": [], "aws_cpu": []}
    perf, cpu = time.perf_counter_ns, time.process_time_ns
    deadline = time.monotonic() + budget_s
    for i in range(n):
        if i % 50 == 49 and time.monotonic() > deadline:
            break
        a0, ac0 = aws.wall_now_ns(), aws.cpu_all_ns
        c0 = cpu()
        t0 = perf()
        result = handler(event, context)
        t1 = perf()
        c1 = cpu()
        out["wall"].append((t1 - t0) / 1e6)
        out["cpu"].append((c1 - c0) / 1e6)
        out["aws"].append((aws.wall_now_ns() - a0) / 1e6)
        out["aws_cpu"].append((aws.cpu_all_ns - ac0) / 1e6)
        if result["statusCode"] != 200:
            raise RuntimeError(f"benchmark request failed: {result['statusCode']} {result.get('body')}")
    return out


def _split(r: dict[str, list[float]]) -> dict[str, Any]:
    return {
        "total": summary(r["wall"]),
        "aws": summary(r["aws"]),
        "compute": summary([w - a for w, a in zip(r["wall"], r["aws"])]),
        "cpu": summary([max(0.0, c - a) for c, a in zip(r["cpu"], r["aws_cpu"])]),
    }


@contextlib.contextmanager
def usage_sink() -> Iterator[list[int]]:
    """`UsageStore.record` swapped for an in-memory counter (yields [records])."""
    from llm_gateway.stores import usage

    count = [0]
    original = usage.UsageStore.record

    def record(self: Any, rec: dict[str, Any]) -> None:  # noqa: ARG001 - same signature
        count[0] += 1

    usage.UsageStore.record = record  # type: ignore[method-assign]
    try:
        yield count
    finally:
        usage.UsageStore.record = original  # type: ignore[method-assign]


@contextlib.contextmanager
def env(**values: str) -> Iterator[None]:
    """Environment overrides, with the gateway's cached settings and singletons reset around them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    reset_process_state()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_process_state()


@contextlib.contextmanager
def lambda_observability() -> Iterator[None]:
    """INFO logs and per-invocation EMF metrics, as deployed, both written to /dev/null."""
    from llm_gateway.observability import logger, metrics

    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
    handler = logger.registered_handler
    old_stream, old_level = handler.stream, logger.log_level
    old_disabled = os.environ.get("POWERTOOLS_METRICS_DISABLED")
    # observability.py drops metrics when they are disabled (instance attributes): undo that here
    patched = {name: metrics.provider.__dict__.pop(name) for name in ("flush_metrics", "add_metric")
               if name in metrics.provider.__dict__}
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"
    handler.setStream(devnull)
    logger.setLevel("INFO")
    try:
        with contextlib.redirect_stdout(devnull), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(old_level)
        handler.setStream(old_stream)
        if old_disabled is None:
            os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)
        else:
            os.environ["POWERTOOLS_METRICS_DISABLED"] = old_disabled
        for name, fn in patched.items():
            setattr(metrics.provider, name, fn)
        metrics.provider.clear_metrics()
        devnull.close()


def measure(iterations: int = ITERATIONS, warmup: int = WARMUP, full_iterations: int = FULL_ITERATIONS) -> dict[str, Any]:
    setup_env()
    from moto import mock_aws

    timer = AwsCallTimer().install()
    out: dict[str, Any] = {"warmup": warmup}
    try:
        with mock_aws():
            reset_process_state()
            from llm_gateway.local.aws import provision_and_seed

            provision_and_seed()
            import functions.chat.handler as chat_handler

            event, context = _event_and_context()
            handler = chat_handler.lambda_handler

            with env(LLMGW_GOVERNANCE="off", LLMGW_AUDIT_EVENTS="off"), usage_sink():
                _run(handler, event, context, warmup, timer)
                gc.collect()
                out["pipeline"] = _split(_run(handler, event, context, iterations, timer))
                with lambda_observability():
                    _run(handler, event, context, warmup, timer)
                    gc.collect()
                    out["pipeline_lambda"] = _split(_run(handler, event, context, iterations, timer))

            timer.calls.clear()
            _run(handler, event, context, max(50, warmup // 10), timer)
            gc.collect()
            timer.calls.clear()
            full = _run(handler, event, context, full_iterations, timer)
            out["full"] = _split(full)
            n = max(1, len(full["wall"]))
            out["full_calls"] = {op: round(c / n, 2) for op, c in sorted(timer.calls.items())}
    finally:
        timer.uninstall()
        reset_process_state()
    return out


def render(r: dict[str, Any]) -> str:
    def row(label: str, x: dict[str, float]) -> list[str]:
        return [label, ms(x["p50"]), ms(x["p90"]), ms(x["p99"]), ms(x["mean"]), ms(x["max"])]

    p, pl, f = r["pipeline"], r["pipeline_lambda"], r["full"]
    rows = [
        row(f"**pipeline compute** — local/test logging, n={p['total']['n']}", p["compute"]),
        row("  CPU time", p["cpu"]),
        row(f"**pipeline compute** — deployed logging (INFO line + EMF blob), n={pl['total']['n']}", pl["compute"]),
        row("  CPU time", pl["cpu"]),
        row(f"full (governance + audit + usage on moto): total, n={f['total']['n']}", f["total"]),
        row("  AWS calls (botocore + moto; concurrent calls counted once)", f["aws"]),
        row("  **full compute** = total − AWS", f["compute"]),
        row("  CPU time, AWS calls' CPU excluded", f["cpu"]),
    ]
    calls = ", ".join(f"{op} {n:g}" for op, n in r["full_calls"].items()) or "none"
    notes = [f"AWS calls per request in the full configuration: {calls}."]
    if max(p["aws"]["max"], pl["aws"]["max"]) > 0:
        notes.append(f"Store calls left in the pipeline configuration were subtracted (P99 {ms(p['aws']['p99'])} ms).")
    try:
        if os.getloadavg()[0] > (os.cpu_count() or 1):
            notes.append("The machine was busy (1-min load average above its CPU count): wall-clock tails include "
                         "time other processes held the CPU; the CPU-time rows show the gateway's own cost.")
    except OSError:
        pass
    return "\n".join([
        "## Compute overhead (in-process, zero-latency provider)",
        "",
        "`POST /chat/completions` as an API Gateway v2 event through `functions/chat/handler.lambda_handler` "
        "(Powertools resolver, auth, parsing, model resolution, `mock::echo`, rendering, usage report) with moto "
        f"in-process (`mock_aws`); sequential, after {r['warmup']} warm-up requests; AWS time subtracted per request. "
        f"Machine: {machine()}.",
        "",
        table(["ms per request", "P50", "P90", "P99", "mean", "max"], rows),
        "",
        *notes,
        "",
        f"Target compute P99 ≤ {TARGET_P99_MS:g} ms (wall time; CPU time):",
        *[f"- {label}: **{ms(x['compute']['p99'])} ms** {verdict(x['compute']['p99'] <= TARGET_P99_MS)}; "
          f"CPU {ms(x['cpu']['p99'])} ms {verdict(x['cpu']['p99'] <= TARGET_P99_MS)}"
          for label, x in (("pipeline", p), ("pipeline, deployed logging", pl), ("full, governance included", f))],
        "",
        "AWS rows are moto's in-process emulation, not AWS latency.",
        "",
    ])


def main() -> str:
    return render(measure())


if __name__ == "__main__":
    print(main())
