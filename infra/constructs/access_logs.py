"""API Gateway v2 access logs (HTTP and WebSocket stages): a log group and a JSON line format."""

from __future__ import annotations

import jsii
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_logs as logs


@jsii.implements(apigwv2.IAccessLogSettings)
class AccessLogs:
    def __init__(self, log_group: logs.ILogGroup, line_format: str) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)
        self._format = line_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(self._format)
