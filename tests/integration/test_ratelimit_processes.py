"""The rate limit holds across OS processes: several processes, each its own 'Lambda instance'
with its own caches and clients, hit one tenant's limit at once through the chat handler,
against one embedded AWS (moto's threaded server) — exactly the limit is admitted.

The tenant and its key are made with the `llm-gateway` console script against the same
endpoint, as an operator would against the local server's embedded AWS.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

import pytest

LIMIT = 25
PROCESSES = 4
REQUESTS_EACH = 12


def _worker(endpoint: str, key: str, start: "mp.synchronize.Barrier", out: "mp.Queue") -> None:
    os.environ.update(LLMGW_AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
                      AWS_DEFAULT_REGION="us-east-1", LLMGW_LOCAL="1", POWERTOOLS_METRICS_DISABLED="true",
                      POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_LOG_LEVEL="ERROR", LLMGW_AUDIT_EVENTS="0")
    import importlib

    from llm_gateway.local.server import LambdaContext, apigw_v2_event

    handler = importlib.import_module("functions.chat.handler").lambda_handler
    body = json.dumps({"model": "mock::echo", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    handler(apigw_v2_event("GET", "/models", "", headers, b"", "warm", "127.0.0.1"), LambdaContext("chat", "warm"))  # caches
    start.wait()
    statuses = []
    for i in range(REQUESTS_EACH):
        event = apigw_v2_event("POST", "/chat/completions", "", headers, body, f"req_{os.getpid()}_{i}", "127.0.0.1")
        statuses.append(handler(event, LambdaContext("chat", event["requestContext"]["requestId"]))["statusCode"])
    out.put(statuses)


@pytest.fixture
def embedded_aws(monkeypatch):
    from llm_gateway.local.aws import provision_and_seed, start_embedded_aws

    monkeypatch.delenv("LLMGW_AWS_ENDPOINT_URL", raising=False)
    server, endpoint = start_embedded_aws()
    try:
        provision_and_seed()
        yield endpoint
    finally:
        server.stop()
        os.environ.pop("LLMGW_AWS_ENDPOINT_URL", None)
        from tests.conftest import reset_process_state

        reset_process_state()


def _cli(endpoint: str, *argv: str) -> str:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    env.pop("AWS_ACCESS_KEY_ID")
    env.pop("AWS_SECRET_ACCESS_KEY")
    done = subprocess.run([sys.executable, "-m", "llm_gateway.cli", "--endpoint-url", endpoint, *argv],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_processes_sharing_one_limit_admit_exactly_the_limit(embedded_aws):
    _cli(embedded_aws, "tenants", "create", "race", "--models", "mock::*", "--rpm", str(LIMIT))
    key = _cli(embedded_aws, "keys", "issue", "race", "--user", "runner").strip()

    ctx = mp.get_context("spawn")
    start = ctx.Barrier(PROCESSES + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(embedded_aws, key, start, out)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    # all workers warm; keep the burst inside one one-minute window
    while time.time() % 60 > 45:
        time.sleep(0.5)
    start.wait(timeout=120)
    statuses = [s for _ in procs for s in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=30)
    assert len(statuses) == PROCESSES * REQUESTS_EACH
    assert statuses.count(200) == LIMIT, statuses
    assert statuses.count(429) == PROCESSES * REQUESTS_EACH - LIMIT

    status = _cli(embedded_aws, "tenants", "status", "race")
    assert f"this minute, tenant: {LIMIT}/{LIMIT} requests" in status
