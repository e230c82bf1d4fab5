"""The audit event bus (EventBridge): request metadata events for SIEM / billing consumers.

Functions get its name as `LLMGW_EVENT_BUS` and may only `PutEvents` on it. Consumers add their
own rules (e.g. to a log group, Firehose or another account's bus) outside this stack.
"""

from __future__ import annotations

from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra import spec


class AuditEvents(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", description="LLM Gateway audit events (metadata only)")

    def environment(self) -> dict[str, str]:
        return {spec.EVENT_BUS_ENV: self.bus.event_bus_name}

    def grant_put(self, grantee: iam.IGrantable) -> None:
        self.bus.grant_put_events_to(grantee)
