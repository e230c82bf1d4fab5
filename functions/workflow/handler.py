"""Lambda entry point for the jobs-and-batches state machine's Task states (not on the HTTP API).

Thin: the event is `{"step", "kind", "id", ...}` from `llm_gateway/jobs/workflow.asl.json`; the
worker runs the step and returns what the state machine routes on (`next`, `wait_s`, ...).
An exception fails the Task; the state machine's Catch then marks the job or batch failed.
"""

from aws_lambda_powertools.utilities.typing import LambdaContext

from llm_gateway.jobs.worker import workflow_worker
from llm_gateway.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return workflow_worker().handle(event)
