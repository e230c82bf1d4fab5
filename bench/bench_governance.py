"""Governance cost: DynamoDB calls and sequential round trips per request, the governance
compute added per request, and the latency it adds end to end on the local server.

1. **DynamoDB per request** — in this process, the chat handler against the embedded AWS (moto's
   threaded server on loopback, so calls that run side by side really overlap), Lambda mode
   (post-call writes waited for), in exact mode (leases and budget view off: the worst case)
   and as shipped. A tenant with tenant and user limits (requests and tokens) and
   two budgets, warm caches. botocore's `before-call` / `after-call` events time every DynamoDB
   call; a request's *sequential round trips* = the number of groups of overlapping calls.
2. **Compute added** — the same handler, governance on vs `LLMGW_GOVERNANCE=off` (the skeleton's
   path: auth + usage record), with the time the request thread waits on AWS (DynamoDB, the
   post-call writes) subtracted: what governance costs the CPU, independent of the emulator.
3. **End to end on the local server** — three `python -m llm_gateway.local` processes (each with
   its embedded moto), requests rotating between them: governance off; the dev tenant as seeded
   (limits + budget: admitted from a rate-limit lease and the budget view once warm, a round
   trip when a lease is claimed synchronously); and a tenant that also has PII + moderation
   hooks before and after the call. `mock::echo` answers instantly, so the difference is what
   governance adds.

Targets (issue 8): ≤ 3 ms P99 added; ≤ 2 sequential DynamoDB round trips per request.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from typing import Any

from bench._common import REPO, machine, ms, pct, setup_env, summary, table, verdict

TARGET_ADDED_P99_MS = 3.0
TARGET_ROUND_TRIPS = 2
N_CALLS = int(os.environ.get("BENCH_GOV_CALLS_N", "100"))
N_COMPUTE = int(os.environ.get("BENCH_GOV_COMPUTE_N", "400"))
N_E2E = int(os.environ.get("BENCH_GOV_E2E_N", "500"))
WARMUP = 30

GOVERNED = {
    "approved_models": ["*"],
    "limits": {"tenant": {"rpm": 1_000_000, "tpm": 10**9}, "user": {"rpm": 1_000_000, "tpm": 10**9}},
    "budgets": [{"scope": "tenant", "period": "monthly", "limit_usd": 10**6},
                {"scope": "user", "period": "daily", "limit_usd": 10**6}],
}
HOOKS = {"pre_call": [{"type": "pii"}, {"type": "moderation", "blocklist": ["forbidden", "never say this"]}],
         "post_response": [{"type": "pii"}, {"type": "moderation", "blocklist": ["forbidden"]}]}
BODY = {"model": "mock::echo", "messages": [
    {"role": "system", "content": [{"type": "text", "text": "You are a terse assistant."}]},
    {"role": "user", "content": [{"type": "text", "text": "Summarize the benefits of a gateway in one line, please."}]}]}


def _event(key: str, rid: str) -> dict[str, Any]:
    from llm_gateway.local.server import apigw_v2_event

    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    return apigw_v2_event("POST", "/chat/completions", "", headers, json.dumps(BODY).encode(), rid, "127.0.0.1")


def _groups(intervals: list[tuple[float, float]]) -> int:
    """How many groups of overlapping intervals (= sequential round trips)."""
    groups, end = 0, -1.0
    for s, e in sorted(intervals):
        if s > end:
            groups += 1
            end = e
        else:
            end = max(end, e)
    return groups


class CallTimer:
    """Times every DynamoDB call through botocore's events (any thread)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, float]] = []
        self._start: dict[int, tuple[str, float]] = {}
        self.on = False

    def install(self, client: Any) -> None:
        client.meta.events.register("before-call.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def _before(self, model: Any, **_: Any) -> None:
        if self.on:
            self._start[threading.get_ident()] = (model.name, time.perf_counter())

    def _after(self, model: Any, **_: Any) -> None:
        started = self._start.pop(threading.get_ident(), None)
        if self.on and started:
            self.calls.append((started[0], started[1], time.perf_counter()))


def calls_per_request(key: str, *, exact: bool) -> dict[str, Any]:
    """DynamoDB calls and round trips per request. `exact`: leases and the budget view off, so
    every request pays its own pre-call round trip (the worst case); else as shipped, where a
    busy instance admits from its lease (refills run in the background, not counted)."""
    import importlib

    from llm_gateway.config import reset_settings
    from llm_gateway.pipeline.governance import reset_governance

    for name in ("LLMGW_RATE_LEASE_S", "LLMGW_BUDGET_FRESH_S"):
        if exact:
            os.environ[name] = "0"
        else:
            os.environ.pop(name, None)
    reset_settings()
    reset_governance()
    from llm_gateway.service.chat import reset_chat_service

    reset_chat_service()

    from llm_gateway.local.server import LambdaContext
    from llm_gateway.stores.aws import client

    from llm_gateway.pipeline import parallel

    handler = importlib.import_module("functions.chat.handler").lambda_handler
    timer = CallTimer()
    timer.install(client("dynamodb"))
    # structural count: each `run_all` batch is one wait on AWS; a call outside any batch is its own
    batch = {"id": None, "n": 0}
    original = parallel.run_all

    def tagged(tasks):  # type: ignore[no-untyped-def]
        batch["n"] += 1
        batch["id"] = batch["n"]
        try:
            return original(tasks)
        finally:
            batch["id"] = None

    tags: list[Any] = []
    request_thread = threading.get_ident()

    def tag(**_: Any) -> None:
        if not timer.on:
            return
        if batch["id"] is not None:
            tags.append(batch["id"])
        elif threading.get_ident() == request_thread:
            tags.append(object())
        # else: background work (a lease refill, a budget view refresh) the request does not wait for

    client("dynamodb").meta.events.register("before-call.dynamodb.*", tag)
    parallel.run_all = tagged
    for i in range(WARMUP):
        handler(_event(key, f"w{i}"), LambdaContext("chat", f"w{i}"))
    per_request: list[tuple[int, int, dict[str, int]]] = []
    update_ms: list[float] = []
    structural: list[int] = []
    try:
        for i in range(N_CALLS):
            timer.calls.clear()
            tags.clear()
            timer.on = True
            assert handler(_event(key, f"r{i}"), LambdaContext("chat", f"r{i}"))["statusCode"] == 200
            timer.on = False
            names: dict[str, int] = {}
            for n, s, e in timer.calls:
                names[n] = names.get(n, 0) + 1
                if n == "UpdateItem":
                    update_ms.append((e - s) * 1000)
            per_request.append((len(timer.calls), _groups([(s, e) for _, s, e in timer.calls]), names))
            structural.append(len(set(tags)))  # ints: batches; objects: lone calls (each unique)
    finally:
        parallel.run_all = original
    counts = [c for c, _, _ in per_request]
    trips = [t for _, t, _ in per_request]
    return {"calls": statistics.mode(counts), "max_calls": max(counts), "trips": statistics.mode(trips),
            "max_trips": max(trips), "structural": max(structural), "names": per_request[-1][2], "update": summary(update_ms),
            "overlap_share": sum(1 for t in trips if t <= TARGET_ROUND_TRIPS) / len(trips)}


def compute_added(keys: dict[str, str]) -> dict[str, dict[str, float]]:
    """Handler wall time minus the time the request thread waits on AWS, per configuration."""
    import importlib

    from botocore.client import BaseClient

    from llm_gateway.config import reset_settings
    from llm_gateway.local.server import LambdaContext
    from llm_gateway.pipeline import parallel

    local = threading.local()
    original_run_all = parallel.run_all
    original_call = BaseClient._make_api_call

    def timed_run_all(tasks):  # type: ignore[no-untyped-def]
        if getattr(local, "depth", 0):
            return original_run_all(tasks)
        local.depth = 1
        t = time.perf_counter()
        try:
            return original_run_all(tasks)
        finally:
            local.waited = getattr(local, "waited", 0.0) + time.perf_counter() - t
            local.depth = 0

    def timed_call(self, operation, params):  # type: ignore[no-untyped-def]
        if getattr(local, "depth", 0) or not getattr(local, "request", False):
            return original_call(self, operation, params)
        t = time.perf_counter()
        try:
            return original_call(self, operation, params)
        finally:
            local.waited = getattr(local, "waited", 0.0) + time.perf_counter() - t

    parallel.run_all = timed_run_all
    BaseClient._make_api_call = timed_call
    handler = importlib.import_module("functions.chat.handler").lambda_handler
    configs = [("governance off", keys["governed"], "off"), ("limits + budgets", keys["governed"], "on"),
               ("+ PII and moderation hooks", keys["hooks"], "on")]
    samples: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    try:
        for i in range(WARMUP + N_COMPUTE):
            for name, key, mode in configs:
                os.environ["LLMGW_GOVERNANCE"] = mode
                reset_settings()
                local.waited, local.request = 0.0, True
                t = time.perf_counter()
                resp = handler(_event(key, f"c{i}"), LambdaContext("chat", f"c{i}"))
                wall = time.perf_counter() - t
                local.request = False
                assert resp["statusCode"] == 200, resp
                if i >= WARMUP:
                    samples[name].append((wall - local.waited) * 1000)
    finally:
        parallel.run_all = original_run_all
        BaseClient._make_api_call = original_call
        os.environ.pop("LLMGW_GOVERNANCE", None)
        reset_settings()
    base = samples["governance off"]
    out = {name: summary(v) for name, v in samples.items()}
    for name, v in samples.items():
        diffs = [a - b for a, b in zip(v, base)]
        out[name]["paired_p50"] = pct(diffs, 50)
        out[name]["paired_p99"] = pct(diffs, 99)
    return out


def _cli(endpoint: str, *argv: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run([sys.executable, "-m", "llm_gateway.cli", "--endpoint-url", endpoint, *argv],
                          capture_output=True, text=True, env={**env, "PYTHONPATH": str(REPO)}, timeout=60, cwd=str(REPO))
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return done.stdout


def end_to_end() -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    import httpx

    from bench.bench_e2e import local_gateway
    from llm_gateway.local.aws import DEV_API_KEY, free_port

    catalog = str(REPO / "layers" / "gateway" / "llm_gateway" / "catalog" / "default.json")
    with ExitStack() as stack:
        off = stack.enter_context(local_gateway(catalog, extra_env={"LLMGW_GOVERNANCE": "off"}))
        on = stack.enter_context(local_gateway(catalog))
        aws_port = free_port()
        hooked = stack.enter_context(local_gateway(catalog, extra_env={"LLMGW_AWS_PORT": str(aws_port)}))
        endpoint = f"http://127.0.0.1:{aws_port}"
        _cli(endpoint, "tenants", "create", "hooked", "--config", _write_config({**GOVERNED, "hooks": HOOKS}))
        hook_key = _cli(endpoint, "keys", "issue", "hooked", "--user", "bench").strip()
        targets = [("governance off", off.url, DEV_API_KEY), ("limits + budgets", on.url, DEV_API_KEY),
                   ("+ PII and moderation hooks", hooked.url, hook_key)]
        clients = [stack.enter_context(httpx.Client(base_url=u, trust_env=False, timeout=10,
                                                    headers={"Authorization": f"Bearer {k}"})) for _, u, k in targets]
        samples: dict[str, list[float]] = {name: [] for name, _, _ in targets}
        for i in range(WARMUP + N_E2E):
            for (name, _, _), c in zip(targets, clients):
                t = time.perf_counter_ns()
                r = c.post("/chat/completions", json=BODY)
                dt_ms = (time.perf_counter_ns() - t) / 1e6
                if r.status_code != 200:
                    raise RuntimeError(f"{name}: {r.status_code} {r.text[:300]}")
                if i >= WARMUP:
                    samples[name].append(dt_ms)
    base = samples["governance off"]
    added = {name: {"p50": pct(v, 50) - pct(base, 50), "p99": pct(v, 99) - pct(base, 99),
                    "paired_p99": pct([a - b for a, b in zip(v, base)], 99)}
             for name, v in samples.items() if name != "governance off"}
    return {name: summary(v) for name, v in samples.items()}, added


def _write_config(config: dict[str, Any]) -> str:
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh)
    return path


def main() -> str:
    setup_env({"LLMGW_TENANT_CACHE_TTL_S": "300", "LLMGW_AUTH_CACHE_TTL_S": "300"})
    os.environ.pop("LLMGW_USAGE_ASYNC", None)
    from llm_gateway.local.aws import provision_and_seed, start_embedded_aws
    from llm_gateway.stores.keys import ApiKeyStore
    from llm_gateway.stores.tenants import TenantConfig, TenantStore

    server, _endpoint = start_embedded_aws()
    try:
        provision_and_seed()
        TenantStore().put(TenantConfig.from_dict("bench", GOVERNED))
        TenantStore().put(TenantConfig.from_dict("bench-hooks", {**GOVERNED, "hooks": HOOKS}))
        keys = {"governed": ApiKeyStore().issue("bench", "bench-user")[1],
                "hooks": ApiKeyStore().issue("bench-hooks", "bench-user")[1]}
        calls = calls_per_request(keys["governed"], exact=True)
        leased = calls_per_request(keys["governed"], exact=False)
        compute = compute_added(keys)
    finally:
        server.stop()
    e2e, added = end_to_end()

    base = compute["governance off"]
    compute_rows = [[name, ms(s["p50"]), ms(s["p90"]), ms(s["p99"]), ms(s["p99"] - base["p99"]),
                     ms(s["paired_p50"]), ms(s["paired_p99"])] for name, s in compute.items()]
    e2e_rows = [[name, ms(s["p50"], 2), ms(s["p90"], 2), ms(s["p99"], 2),
                 ms(added[name]["p99"], 2) if name in added else "—",
                 ms(added[name]["paired_p99"], 2) if name in added else "—"] for name, s in e2e.items()]
    worst_compute = max(min(s["p99"] - base["p99"], s["paired_p99"]) for s in compute.values())
    worst_e2e = max(a["p99"] for a in added.values())
    upd = calls["update"]
    names = ", ".join(f"{n}×{c}" for n, c in sorted(calls["names"].items()))
    return "\n".join([
        "## Governance: DynamoDB round trips and added latency",
        "",
        f"Chat requests with `mock::echo` (instant), warm key and tenant caches; {machine()}. "
        f"Tenant with tenant + user limits (requests and tokens) and a tenant + a user budget.",
        "",
        f"**DynamoDB per request** (Lambda mode, {N_CALLS} requests, moto's server on loopback): "
        f"{calls['calls']} calls ({names}) in **{calls['structural']} sequential round trips** on every request: "
        f"the pre-call rate-limit updates and budget read are issued together and waited for once, then the "
        f"post-call writes (usage record, day aggregate, budget charges, token corrections) likewise. "
        f"{verdict(calls['structural'] <= TARGET_ROUND_TRIPS)} (target ≤ {TARGET_ROUND_TRIPS}). "
        f"Timed: the calls of a round trip overlapped on the wire in {calls['overlap_share']:.0%} of requests "
        f"(median {calls['trips']} groups of overlapping calls, max {calls['max_trips']}: on a busy machine a pool "
        f"thread can start its call after the inline one returned). That is exact mode (`LLMGW_RATE_LEASE_S=0`, "
        f"`LLMGW_BUDGET_FRESH_S=0`: what a quiet instance does); as shipped, this busy instance admits from its "
        f"rate-limit lease and budget view: **at most {leased['structural']} round trip(s)** per request "
        f"(the post-call writes; lease refills run in the background).",
        "",
        f"**Governance compute** (in-process, the request thread's waits on AWS subtracted, {N_COMPUTE} requests "
        f"per configuration, interleaved; ms; 'P99 added' = P99 − P99 of governance off, 'paired' = percentiles of "
        f"the per-round difference):",
        "",
        table(["configuration", "P50", "P90", "P99", "P99 added", "paired P50 added", "paired P99 added"], compute_rows),
        "",
        f"{verdict(worst_compute <= TARGET_ADDED_P99_MS)} governance compute adds ≤ {TARGET_ADDED_P99_MS} ms P99 "
        f"(worst: {ms(worst_compute)} ms).",
        "",
        f"**End to end on the local server** (three `python -m llm_gateway.local`, {N_E2E} rounds, one request to "
        f"each per round; client-side latency, ms; 'added' = P99 − P99 of governance off, and P99 of the per-round "
        f"difference):",
        "",
        table(["configuration", "P50", "P90", "P99", "P99 added", "paired P99 added"], e2e_rows),
        "",
        f"moto's conditional `UpdateItem` over loopback HTTP takes {ms(upd['p50'], 2)} ms P50 / "
        f"{ms(upd['p99'], 2)} ms P99 (DynamoDB in-region: single-digit ms); on the local server a busy tenant far "
        f"from its limits waits for none before the provider call (leases, budget view), and the post-call writes "
        f"run after the response (write-behind). "
        f"{verdict(worst_e2e <= TARGET_ADDED_P99_MS)} ≤ {TARGET_ADDED_P99_MS} ms P99 added end to end on the "
        f"local server (worst: {ms(worst_e2e, 2)} ms).",
    ])


if __name__ == "__main__":
    print(main())
