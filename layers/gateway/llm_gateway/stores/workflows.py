"""Step Functions access: start and stop the execution of a job or batch.

One Standard state machine (`llm_gateway/jobs/workflow.asl.json`) runs every job and batch; the
execution name is the job or batch id, so starting twice is idempotent and the execution ARN
is derived from the id without a lookup. The state machine is `LLMGW_JOB_STATE_MACHINE_ARN`
(set by CDK); without it (local mode, tests) it is found by name (`LLMGW_JOB_STATE_MACHINE_NAME`)
— `provision_state_machine()` creates it there from the same ASL file.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from llm_gateway import resets
from llm_gateway.config import settings
from llm_gateway.stores.aws import client

_arn: str | None = None
_lock = threading.Lock()


@resets.register
def reset_state_machine_cache() -> None:
    global _arn
    _arn = None


def state_machine_arn() -> str:
    global _arn
    configured = settings().job_state_machine_arn
    if configured:
        return configured
    if _arn is not None:
        return _arn
    with _lock:
        if _arn is None:
            name = settings().job_state_machine_name
            sfn = client("stepfunctions")
            kwargs: dict[str, Any] = {}
            while True:
                resp = sfn.list_state_machines(**kwargs)
                for sm in resp.get("stateMachines", []):
                    if sm["name"] == name:
                        _arn = sm["stateMachineArn"]
                        return _arn
                token = resp.get("nextToken")
                if not token:
                    break
                kwargs["nextToken"] = token
            raise RuntimeError(f"state machine {name!r} does not exist (set LLMGW_JOB_STATE_MACHINE_ARN)")
    return _arn


def execution_arn(execution_name: str) -> str:
    """`arn:…:stateMachine:<sm>` → `arn:…:execution:<sm>:<name>` (Standard workflows)."""
    return state_machine_arn().replace(":stateMachine:", ":execution:", 1) + ":" + execution_name


class Workflows:
    def start(self, kind: str, work_id: str) -> str:
        """Start (idempotently) the execution for a job or batch; its execution ARN."""
        resp = client("stepfunctions").start_execution(
            stateMachineArn=state_machine_arn(), name=work_id, input=json.dumps({"kind": kind, "id": work_id}),
        )
        return resp["executionArn"]

    def stop(self, work_id: str, cause: str) -> bool:
        """Stop the execution (best effort: False when it could not be stopped)."""
        sfn = client("stepfunctions")
        try:
            sfn.stop_execution(executionArn=execution_arn(work_id), error="Cancelled", cause=cause[:256])
        except Exception:  # noqa: BLE001 - already finished, never started, or the API failed: the status decides
            return False
        return True

    def status(self, work_id: str) -> str | None:
        try:
            return client("stepfunctions").describe_execution(executionArn=execution_arn(work_id))["status"]
        except Exception:  # noqa: BLE001
            return None


def provision_state_machine(function_arn: str | None = None) -> str:
    """Create the state machine from the packaged ASL file unless it exists (local mode, tests)."""
    global _arn
    from llm_gateway.jobs.definition import render

    s = settings()
    sfn = client("stepfunctions")
    for sm in sfn.list_state_machines().get("stateMachines", []):
        if sm["name"] == s.job_state_machine_name:
            _arn = sm["stateMachineArn"]
            return _arn
    fn = function_arn or f"arn:aws:lambda:{s.region}:123456789012:function:{s.workflow_function}"
    resp = sfn.create_state_machine(
        name=s.job_state_machine_name, definition=render({"WorkflowFunctionArn": fn}),
        roleArn="arn:aws:iam::123456789012:role/llmgw-work-local", type="STANDARD",
    )
    _arn = resp["stateMachineArn"]
    return _arn
