"""The LLM Gateway stack: data, layer, functions, HTTP API, streaming, observability."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra import spec
from infra.config import GatewayConfig
from infra.constructs.api import HttpApi
from infra.constructs.audit import AuditEvents
from infra.constructs.auth import ApiAuth
from infra.constructs.data import DataStore
from infra.constructs.functions import Functions, SharedDeps
from infra.constructs.jobs import WorkOrchestration
from infra.constructs.layer import GatewayLayer
from infra.constructs.observability import Observability
from infra.constructs.realtime import Realtime
from infra.constructs.streaming import Streaming


class GatewayStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: GatewayConfig, **kwargs: Any) -> None:
        kwargs.setdefault("description", "LLM Gateway: one API in front of many LLM providers (HTTP API + streaming Function URL)")
        super().__init__(scope, construct_id, **kwargs)
        self.config = config

        self.observability = Observability(
            self, "Observability", retention_days=config.log_retention_days, retain=config.retain_data,
        )
        self.data = DataStore(
            self, "Data",
            tables=spec.provisioned_tables(), ttls=spec.table_ttls(),
            file_expiry_days=config.file_expiry_days, retain=config.retain_data,
        )
        self.audit = AuditEvents(self, "Audit")
        self.layer = GatewayLayer(self, "GatewayLayer", asset=config.layer_path())

        deps = SharedDeps(
            layer=self.layer.layer, data=self.data, audit=self.audit, observability=self.observability,
            environment={**config.extra_env, **config.provider_env},
            provider_secret_prefix=config.provider_secret_prefix,
            hook_function_prefix=config.hook_function_prefix,
        )
        # Jobs and batches: the workflow function, the state machine, the id key; then every
        # family with `job_control` gets the state machine ARN and its grants through deps.work.
        self.work = WorkOrchestration(
            self, "Work",
            code=config.function_path(spec.WORKFLOW), deps=deps,
            log_group=self.observability.log_group("WorkStateMachineLogs"), retain=config.retain_data,
        )
        self.observability.watch_state_machine("work", self.work.state_machine)
        deps = replace(deps, work=self.work)
        self.auth = ApiAuth(
            self, "Auth",
            mode=config.http_authorizer, cache_ttl_s=config.authorizer_cache_ttl_s,
            jwt_issuer=config.jwt_issuer, jwt_audience=config.jwt_audience,
            code=config.function_path(spec.AUTHORIZER) if config.http_authorizer == "lambda" else None, deps=deps,
        )
        self.functions = Functions(
            self, "Functions",
            specs=spec.FUNCTIONS,
            code_paths={fs.family: config.function_path(fs) for fs in spec.FUNCTIONS},
            deps=deps,
            extra_environment=config.jwt_environment(),
        )
        self.api = HttpApi(
            self, "Api",
            functions=self.functions.by_family, routes=spec.routes(),
            access_log_group=self.observability.log_group("HttpApiAccessLogs"),
            authorizer_for=self.auth.for_route,
        )
        self.observability.watch_http_api(self.api.api)
        self.streaming = Streaming(
            self, "Streaming",
            code=config.function_path(spec.CHAT_STREAM), lwa_layer_version=config.lwa_layer_version, deps=deps,
        )
        self.realtime = Realtime(
            self, "Realtime",
            code=config.function_path(spec.REALTIME), authorizer_code=config.function_path(spec.REALTIME_AUTHORIZER),
            deps=deps,
        )

        CfnOutput(self, "HttpApiUrl", value=self.api.url,
                  description="Native API base URL (POST chat/completions, GET models)")
        CfnOutput(self, "ChatStreamUrl", value=self.streaming.url,
                  description="Streaming endpoint (Function URL): POST <url>chat/completions with stream=true")
        CfnOutput(self, "RealtimeUrl", value=self.realtime.url,
                  description="Realtime WebSocket endpoint: <url>?model=<a realtime model> (docs/realtime.md)")
        CfnOutput(self, "FilesBucketName", value=self.data.bucket.bucket_name)
        for setting, table in self.data.tables.items():
            CfnOutput(self, f"{''.join(p.capitalize() for p in setting.split('_'))}Name", value=table.table_name,
                      description=f"{spec.table_env_var(setting)} for admin tools")
        CfnOutput(self, "AuditEventBusName", value=self.audit.bus.event_bus_name)
        CfnOutput(self, "WorkStateMachineArn", value=self.work.state_machine.state_machine_arn,
                  description="Runs every job and batch (execution name = the job or batch id)")
        CfnOutput(self, "IdKeySecretArn", value=self.work.id_key.secret_arn,
                  description="HMAC key of job and batch ids (generated; functions read it by ARN)")
        CfnOutput(self, "HttpApiAuthorizer", value=config.http_authorizer,
                  description="Authorizer on the HTTP API routes: lambda (API keys), jwt or none")
        CfnOutput(self, "DashboardName", value=self.observability.dashboard.dashboard_name)
