"""Fixtures for tests that execute the jobs-and-batches state machine for real.

`jobs_api`: moto in-process with `stepfunctions.execute_state_machine` on and Lambda without
Docker; the gateway provisioned exactly like local mode (tables, bucket, dev key, the state
machine from `llm_gateway/jobs/workflow.asl.json`); the state machine's Lambda tasks dispatched
to the real `functions/workflow` handler. Polls back off by 1 s (moto's Wait states really wait).
At the end every execution still running is stopped and waited for, so no worker thread
outlives the mock.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from tests.conftest import ApiClient, reset_process_state

FAST_POLLS = {
    "LLMGW_JOB_POLL_INITIAL_S": "1",
    "LLMGW_JOB_POLL_MAX_S": "1",
    "LLMGW_BATCH_POLL_INITIAL_S": "1",
    "LLMGW_BATCH_POLL_MAX_S": "1",
    "LLMGW_SYNC_POLL_INTERVAL_S": "0.05",
}


def _stop_all_executions() -> None:
    from llm_gateway.stores.aws import client

    sfn = client("stepfunctions")
    for sm in sfn.list_state_machines().get("stateMachines", []):
        running = sfn.list_executions(stateMachineArn=sm["stateMachineArn"], statusFilter="RUNNING").get("executions", [])
        for ex in running:
            try:
                sfn.stop_execution(executionArn=ex["executionArn"], cause="test teardown")
            except Exception:  # noqa: BLE001
                pass
    # let in-flight Lambda tasks return before the mock goes away
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        busy = False
        for sm in sfn.list_state_machines().get("stateMachines", []):
            if sfn.list_executions(stateMachineArn=sm["stateMachineArn"], statusFilter="RUNNING").get("executions"):
                busy = True
        if not busy:
            break
        time.sleep(0.1)
    time.sleep(0.3)


@pytest.fixture
def jobs_api(monkeypatch) -> Any:
    from moto import mock_aws

    from llm_gateway.local.workflows import MOTO_CONFIG, install_dispatcher

    monkeypatch.delenv("LLMGW_AWS_ENDPOINT_URL", raising=False)
    for name, value in FAST_POLLS.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config=MOTO_CONFIG):
        reset_process_state()
        install_dispatcher()
        from llm_gateway.local.aws import provision_and_seed

        provision_and_seed()
        try:
            yield ApiClient()
        finally:
            _stop_all_executions()
    reset_process_state()


def wait_for(fetch: Callable[[], Any], until: Callable[[Any], bool], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Call `fetch` until `until(value)` holds; the last value (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not until(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last value: {str(value)[:2000]}")
        time.sleep(interval)
        value = fetch()
    return value


def execution_status(work_id: str) -> str | None:
    from llm_gateway.stores.workflows import Workflows

    return Workflows().status(work_id)


def other_tenant_key(tenant: str = "other-tenant") -> str:
    """An API key of another tenant (seeded in the current mock)."""
    from llm_gateway.stores.keys import ApiKeyStore

    key = f"llmgw_other000_{'x' * 40}"
    ApiKeyStore().put(key, tenant, "other-user", key_id="other000")
    return key
