"""Lambda entry point for the realtime family: the WebSocket API's `$connect`, `$default` and
`$disconnect` routes, and the realtime worker (`{"realtime_task": ...}` events, invoked
asynchronously by the routes — deploy the same code as a second function with a longer timeout).

Thin: pick the route, call the realtime service, return its answer.
"""

from aws_lambda_powertools.utilities.typing import LambdaContext

from llm_gateway.observability import logger, metrics, tracer
from llm_gateway.realtime.service import realtime_service


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    if "realtime_task" in event:
        from llm_gateway.realtime.worker import handle

        return handle(event)
    return realtime_service().handle(event)
