"""The workflow worker: one entry for every Task state of `workflow.asl.json`.

Events: `{"step": "start" | "poll" | "chunk" | "finish" | "fail", "kind": "job" | "batch",
"id": ..., "attempt"?: n, "chunk"?: k, "error"?: {Error, Cause}}`. Each step returns
`{"next": "done" | "poll" | "map", "wait_s", "attempt", "chunks", "max_concurrency"}` (chunk steps
return `{"done": n}`). A step raises only for unexpected failures; the state machine then runs
the `fail` step, which marks the job or batch failed.
"""

from __future__ import annotations

from typing import Any

from llm_gateway import resets
from llm_gateway.observability import logger


class WorkflowWorker:
    def __init__(self, jobs: Any = None, batches: Any = None) -> None:
        self._jobs = jobs
        self._batches = batches

    @property
    def jobs(self) -> Any:
        if self._jobs is None:
            from llm_gateway.jobs.jobrunner import job_runner

            return job_runner()
        return self._jobs

    @property
    def batches(self) -> Any:
        if self._batches is None:
            from llm_gateway.jobs.batchrunner import batch_runner

            return batch_runner()
        return self._batches

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        step, kind, work_id = event.get("step"), event.get("kind"), event.get("id")
        if not isinstance(work_id, str) or kind not in ("job", "batch"):
            raise ValueError("workflow event needs 'kind' (job | batch) and 'id'")
        attempt = int(event.get("attempt") or 0)
        logger.info("workflow step", extra={"step": step, "kind": kind, "work_id": work_id, "attempt": attempt})
        if kind == "job":
            runner = self.jobs
            if step == "start":
                return runner.start(work_id)
            if step == "poll":
                return runner.poll(work_id, attempt)
            if step == "fail":
                return runner.fail(work_id, event.get("error"))
        else:
            runner = self.batches
            if step == "start":
                return runner.start(work_id)
            if step == "poll":
                return runner.poll(work_id, attempt)
            if step == "chunk":
                return runner.chunk(work_id, int(event["chunk"]))
            if step == "finish":
                return runner.finish(work_id)
            if step == "fail":
                return runner.fail(work_id, event.get("error"))
        raise ValueError(f"unknown workflow step {step!r} for a {kind}")


_worker: WorkflowWorker | None = None


def workflow_worker() -> WorkflowWorker:
    global _worker
    if _worker is None:
        _worker = WorkflowWorker()
    return _worker


@resets.register
def reset_workflow_worker() -> None:
    global _worker
    _worker = None
