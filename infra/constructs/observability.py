"""Log groups with retention, alarms on errors and throttles, and one CloudWatch dashboard."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

RETENTION = {
    1: logs.RetentionDays.ONE_DAY, 3: logs.RetentionDays.THREE_DAYS, 5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK, 14: logs.RetentionDays.TWO_WEEKS, 30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS, 90: logs.RetentionDays.THREE_MONTHS, 120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS, 180: logs.RetentionDays.SIX_MONTHS, 365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS, 545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS, 1827: logs.RetentionDays.FIVE_YEARS, 3653: logs.RetentionDays.TEN_YEARS,
}


def retention(days: int) -> logs.RetentionDays:
    try:
        return RETENTION[days]
    except KeyError:
        raise SystemExit(f"logRetentionDays={days} is not a CloudWatch value; use one of {sorted(RETENTION)}") from None


class Observability(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, retention_days: int, retain: bool) -> None:
        super().__init__(scope, construct_id)
        self._retention = retention(retention_days)
        self._removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        self.alarms: list[cw.Alarm] = []

    def log_group(self, construct_id: str) -> logs.LogGroup:
        """A log group owned by the stack (retention applied, removed with it unless retained)."""
        return logs.LogGroup(self, construct_id, retention=self._retention, removal_policy=self._removal)

    def watch_function(self, family: str, fn: lambda_.Function) -> None:
        period = Duration.minutes(5)
        errors = fn.metric_errors(period=period, statistic="Sum")
        throttles = fn.metric_throttles(period=period, statistic="Sum")
        for name, metric in (("Errors", errors), ("Throttles", throttles)):
            self.alarms.append(cw.Alarm(
                self, f"{family}{name}Alarm",
                metric=metric, threshold=1, evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=f"{family}: Lambda {name.lower()} in the last 5 minutes",
            ))
        self.dashboard.add_widgets(
            cw.GraphWidget(title=f"{family}: invocations / errors / throttles",
                           left=[fn.metric_invocations(period=period), errors, throttles]),
            cw.GraphWidget(title=f"{family}: duration p50 / p99 (ms)",
                           left=[fn.metric_duration(period=period, statistic="p50"),
                                 fn.metric_duration(period=period, statistic="p99")]),
        )

    def watch_state_machine(self, name: str, state_machine: sfn.StateMachine) -> None:
        """Executions end Failed only when a step crashed and MarkFailed ran (a job's own errors end
        Succeeded with the job failed), or TimedOut: alarm on either."""
        period = Duration.minutes(5)
        failed = state_machine.metric_failed(period=period, statistic="Sum")
        timed_out = state_machine.metric_timed_out(period=period, statistic="Sum")
        self.alarms.append(cw.Alarm(
            self, f"{name}FailedAlarm",
            metric=cw.MathExpression(expression="failed + timedOut", using_metrics={"failed": failed, "timedOut": timed_out},
                                     period=period),
            threshold=1, evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{name}: executions failed or timed out (a worker step crashed) in the last 5 minutes",
        ))
        self.dashboard.add_widgets(
            cw.GraphWidget(title=f"{name}: executions started / succeeded / failed / timed out",
                           left=[state_machine.metric_started(period=period), state_machine.metric_succeeded(period=period),
                                 failed, timed_out]),
        )

    def watch_http_api(self, api: apigwv2.HttpApi) -> None:
        period = Duration.minutes(5)
        server_errors = api.metric_server_error(period=period, statistic="Sum")
        self.alarms.append(cw.Alarm(
            self, "HttpApi5xxAlarm",
            metric=server_errors, threshold=5, evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description="HTTP API: 5 or more 5xx answers in 5 minutes",
        ))
        self.dashboard.add_widgets(
            cw.GraphWidget(title="HTTP API: requests / 4xx / 5xx",
                           left=[api.metric_count(period=period), api.metric_client_error(period=period), server_errors]),
            cw.GraphWidget(title="HTTP API: latency p99 (ms)",
                           left=[api.metric_latency(period=period, statistic="p99"),
                                 api.metric_integration_latency(period=period, statistic="p99")]),
        )
