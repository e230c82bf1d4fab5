"""Lambda authorizer for the HTTP API (and WebSocket `$connect`): checks the API key.

Thin: the event goes to the authorizer service, its answer goes back to API Gateway. JWTs do
not come here — the HTTP API's built-in JWT authorizer validates them.
"""

from aws_lambda_powertools.utilities.typing import LambdaContext

from llm_gateway.observability import logger
from llm_gateway.service.authorizer import authorizer_service


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return authorizer_service().authorize(event)
