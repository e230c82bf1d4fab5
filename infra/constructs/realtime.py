"""Realtime audio: API Gateway's WebSocket API in front of `functions/realtime` (docs/realtime.md).

- `$connect` is authorized by a Lambda REQUEST authorizer running `functions/authorizer` (the
  service answers WebSocket events with an IAM policy and the caller's identity as context). It
  has no identity source: the key may come as `Authorization: Bearer`, `x-api-key` or (browsers)
  the `api_key` query parameter, and API Gateway would refuse a connection lacking a named source
  before the authorizer ran. WebSocket authorizers are not cached. The route then trusts that
  context and checks the scope, the model and the tenant's approval itself.
- `$connect`, `$default` and `$disconnect` go to one route function (29 s integration timeout).
  It never waits for a model: it starts the worker (the same code, a longer timeout) with an
  asynchronous invoke of `{"realtime_task": ...}` events, named by `LLMGW_REALTIME_WORKER_FUNCTION`.
- Both post to clients through this stage's `@connections` management API only; the endpoint comes
  from each event's `requestContext` (`domainName`/`stage`), so no URL setting is needed.
- Sessions and their buffered audio live in the sessions table (no bucket).
- API Gateway's own limits: integration 29 s, idle connection 10 min, connection 2 h, frame 32 KB,
  message 128 KB. They are not settings; `LLMGW_REALTIME_MAX_S` matches the 2 h cap.
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk.aws_apigatewayv2_authorizers import WebSocketLambdaAuthorizer
from aws_cdk.aws_apigatewayv2_integrations import WebSocketLambdaIntegration
from constructs import Construct

from infra import spec
from infra.constructs.access_logs import AccessLogs
from infra.constructs.functions import GatewayFunction, SharedDeps, construct_id
from infra.nag import acknowledge, finding_resource

# Metadata only: no headers, query strings (`api_key`!) or message bodies.
ACCESS_LOG_FORMAT = json.dumps({
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "connectionId": "$context.connectionId",
    "messageId": "$context.messageId",
    "status": "$context.status",
    "authorizeStatus": "$context.authorize.status",
    "integrationStatus": "$context.integration.status",
    "integrationLatencyMs": "$context.integration.latency",
    "error": "$context.error.message",
})


def realtime_environment(extra_env: dict[str, str]) -> dict[str, str]:
    """The session settings (spec.REALTIME_ENV) unless extraEnv sets them; refuses a turn timeout
    the worker could not finish in."""
    env = {k: v for k, v in spec.REALTIME_ENV.items() if k not in extra_env}
    turn_s = int(extra_env.get("LLMGW_REALTIME_TURN_TIMEOUT_S", spec.REALTIME_ENV["LLMGW_REALTIME_TURN_TIMEOUT_S"]))
    if turn_s > spec.REALTIME_WORKER.timeout_s - 30:
        raise SystemExit(f"LLMGW_REALTIME_TURN_TIMEOUT_S={turn_s}: the realtime worker times out at "
                         f"{spec.REALTIME_WORKER.timeout_s} s and needs ~30 s to settle a turn")
    return env


class Realtime(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id_: str,
        *,
        code: Path,
        authorizer_code: Path,
        deps: SharedDeps,
    ) -> None:
        super().__init__(scope, construct_id_)
        stack = Stack.of(self)
        settings = realtime_environment(deps.environment)

        worker = GatewayFunction(
            self, construct_id(spec.REALTIME_WORKER.family),
            fn_spec=spec.REALTIME_WORKER, code=code, deps=deps,
            extra_environment=settings,
        )
        self.worker = worker.function
        # A turn or greeting runs at most once: a retry would post its events (and usage) twice,
        # and one that waited in the async queue for a minute is stale anyway.
        self.worker.configure_async_invoke(retry_attempts=0, max_event_age=Duration.seconds(60))

        route = GatewayFunction(
            self, construct_id(spec.REALTIME.family),
            fn_spec=spec.REALTIME, code=code, deps=deps,
            extra_environment={**settings, "LLMGW_REALTIME_WORKER": "lambda",
                               "LLMGW_REALTIME_WORKER_FUNCTION": self.worker.function_name},
        )
        self.function = route.function
        # Start the worker (InvocationType=Event): this function only, no version wildcard.
        self.function.add_to_role_policy(iam.PolicyStatement(
            sid="StartRealtimeWorker", actions=["lambda:InvokeFunction"], resources=[self.worker.function_arn],
        ))

        authorizer = GatewayFunction(
            self, construct_id(spec.REALTIME_AUTHORIZER.family),
            fn_spec=spec.REALTIME_AUTHORIZER, code=authorizer_code, deps=deps,
        )
        self.authorizer_function = authorizer.function

        integration = WebSocketLambdaIntegration(
            "RouteIntegration", self.function, timeout=Duration.seconds(spec.WEBSOCKET_INTEGRATION_TIMEOUT_S),
        )
        self.api = apigwv2.WebSocketApi(
            self, "WebSocketApi",
            api_name=f"{stack.stack_name}-realtime",
            description="LLM Gateway realtime (OpenAI Realtime events over WebSocket)",
            connect_route_options=apigwv2.WebSocketRouteOptions(
                integration=integration,
                authorizer=WebSocketLambdaAuthorizer("ConnectAuthorizer", self.authorizer_function, identity_source=[]),
            ),
            disconnect_route_options=apigwv2.WebSocketRouteOptions(integration=integration),
            default_route_options=apigwv2.WebSocketRouteOptions(integration=integration),
        )
        # No identity source at all (CDK writes `[]` for an empty list): the authorizer runs on
        # every connection attempt, whichever of the three places holds the key.
        for child in self.api.node.find_all():
            if isinstance(child, apigwv2.CfnAuthorizer):
                child.add_property_deletion_override("IdentitySource")
        self.stage = apigwv2.WebSocketStage(
            self, "Stage",
            web_socket_api=self.api, stage_name=spec.REALTIME_STAGE, auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=spec.REALTIME_THROTTLE_RATE,
                                              burst_limit=spec.REALTIME_THROTTLE_BURST),
            access_log_settings=AccessLogs(deps.observability.log_group("RealtimeAccessLogs"), ACCESS_LOG_FORMAT),
        )

        # PostToConnection / DeleteConnection on this stage's connections only.
        connections = stack.format_arn(
            service="execute-api", resource=self.api.api_id,
            resource_name=f"{spec.REALTIME_STAGE}/*/@connections/*", arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        for fn, owner in ((self.function, route), (self.worker, worker)):
            fn.add_to_role_policy(iam.PolicyStatement(
                sid="PostToRealtimeClients", actions=["execute-api:ManageConnections"], resources=[connections],
            ))
            acknowledge(owner, f"IAM5[Resource::{finding_resource(owner, connections)}]",
                        "Connection ids are created per client at run time; ManageConnections is limited to "
                        "this WebSocket API's own stage (@connections of the realtime stage).")

        period = Duration.minutes(5)
        deps.observability.dashboard.add_widgets(
            cw.GraphWidget(title="Realtime WebSocket: connects / messages", left=[
                self.api.metric("ConnectCount", period=period, statistic="Sum"),
                self.api.metric("MessageCount", period=period, statistic="Sum")]),
            cw.GraphWidget(title="Realtime WebSocket: client / integration / execution errors", left=[
                self.api.metric(name, period=period, statistic="Sum")
                for name in ("ClientError", "IntegrationError", "ExecutionError")]),
        )

        acknowledge(self.api, "APIG4",
                    "WebSocket APIs authorize at $connect only (the Lambda authorizer, functions/authorizer); "
                    "$default and $disconnect belong to a connection that was already authorized.")

    @property
    def url(self) -> str:
        """wss://{api-id}.execute-api.{region}.amazonaws.com/{stage}"""
        return self.stage.url

    @property
    def callback_url(self) -> str:
        """https://... : the stage's @connections management endpoint."""
        return self.stage.callback_url
