"""The HTTP API (API Gateway v2): routes from `spec.FUNCTIONS`, one Lambda integration per family,
a `$default` stage with JSON access logs. Each route carries the authorizer `authorizer_for(path)`
names (infra/constructs/auth.py: the Lambda API-key authorizer, the JWT authorizer or none)."""

from __future__ import annotations

import json
from collections.abc import Callable

from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk.aws_apigatewayv2_integrations import HttpLambdaIntegration
from constructs import Construct

from infra.constructs.access_logs import AccessLogs
from infra.nag import acknowledge

# Metadata only: no headers, no query strings, no bodies (they may carry keys or prompts).
ACCESS_LOG_FORMAT = json.dumps({
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "method": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
})


class HttpApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: dict[str, lambda_.IFunction],
        routes: dict[str, tuple[tuple[str, str], ...]],
        access_log_group: logs.ILogGroup,
        authorizer_for: Callable[[str], apigwv2.IHttpRouteAuthorizer | None] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigwv2.HttpApi(
            self, "HttpApi",
            description="LLM Gateway native API",
            create_default_stage=False,
        )
        self.stage = apigwv2.HttpStage(
            self, "DefaultStage",
            http_api=self.api, stage_name="$default", auto_deploy=True,
            access_log_settings=AccessLogs(access_log_group, ACCESS_LOG_FORMAT),
        )
        self.route_keys: list[str] = []
        unauthorized = 0
        for family, family_routes in routes.items():
            integration = HttpLambdaIntegration(f"{family}Integration", functions[family])
            for method, path in family_routes:
                authorizer = authorizer_for(path) if authorizer_for else None
                unauthorized += authorizer is None
                self.api.add_routes(path=path, methods=[apigwv2.HttpMethod(method)], integration=integration,
                                    authorizer=authorizer)
                self.route_keys.append(f"{method} {path}")
        if unauthorized:  # httpAuthorizer=none
            acknowledge(self.api, "APIG4",
                        "httpAuthorizer=none: the gateway authenticates every request itself (API key hash lookup, "
                        "pipeline step 1) and answers RFC 9457 problems.")

    @property
    def url(self) -> str:
        return self.stage.url
