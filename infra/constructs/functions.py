"""Lambda functions, one per operation family, all from `spec.FUNCTIONS`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import spec
from infra.constructs.audit import AuditEvents
from infra.constructs.data import DataStore
from infra.constructs.layer import ASSET_EXCLUDE, runtime
from infra.constructs.observability import Observability
from infra.nag import acknowledge, finding_resource


@dataclass(frozen=True)
class SharedDeps:
    """What every gateway function is wired to."""

    layer: lambda_.ILayerVersion
    data: DataStore
    audit: AuditEvents
    observability: Observability
    environment: dict[str, str]  # extra plain settings (context extraEnv / providerEnv)
    provider_secret_prefix: str  # "" = no Secrets Manager access
    hook_function_prefix: str  # "" = may not invoke hook functions
    # infra/constructs/jobs.py WorkOrchestration, for families with `job_control` (None until built)
    work: Any = None


def construct_id(family: str) -> str:
    """`chat_stream` -> `ChatStream`."""
    return "".join(part.capitalize() for part in family.split("_"))


class GatewayFunction(Construct):
    """One family's function: ARM64, the gateway layer, Powertools env, X-Ray, its own log group
    and role, the resource names in env and only the grants its spec lists."""

    def __init__(
        self,
        scope: Construct,
        construct_id_: str,
        *,
        fn_spec: spec.FunctionSpec,
        code: Path,
        deps: SharedDeps,
        extra_layers: tuple[lambda_.ILayerVersion, ...] = (),
        extra_environment: dict[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id_)
        self.spec = fn_spec
        stack = Stack.of(self)
        self.log_group = deps.observability.log_group(f"{construct_id_}Logs")
        # Own role instead of AWSLambdaBasicExecutionRole: logs go to this function's group only.
        self.role = iam.Role(
            self, "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"LLM Gateway {fn_spec.family} function",
        )
        self.log_group.grant_write(self.role)
        environment = {**spec.POWERTOOLS_ENV, **deps.data.environment()}
        if fn_spec.audit_events:
            environment.update(deps.audit.environment())
        if fn_spec.job_control:
            if deps.work is None:
                raise SystemExit(f"{fn_spec.family}: job_control needs the work state machine (build it first)")
            environment.update(deps.work.environment())
        environment.update(deps.environment)
        environment.update(extra_environment or {})
        self.function = lambda_.Function(
            self, "Function",
            description=fn_spec.description,
            runtime=runtime(),
            architecture=lambda_.Architecture.ARM_64,
            handler=fn_spec.handler,
            code=lambda_.Code.from_asset(str(code), exclude=ASSET_EXCLUDE),
            memory_size=fn_spec.memory_mb,
            timeout=Duration.seconds(fn_spec.timeout_s),
            layers=[deps.layer, *extra_layers],
            environment=environment,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            role=self.role,
        )
        deps.data.grant(self.function, fn_spec.tables, fn_spec.bucket)
        if fn_spec.audit_events:
            deps.audit.grant_put(self.function)
        if fn_spec.job_control:
            deps.work.grant_control(self)

        acknowledge(self, "IAM5[Resource::*]",
                    "X-Ray tracing (active): xray:PutTraceSegments/PutTelemetryRecords accept no resource scope.")
        acknowledge(self, "L1", f"Python {spec.PYTHON_VERSION} is pinned: the layer's binary wheels are built for "
                    "this ABI (infra/spec.py PYTHON_VERSION); runtime and wheels move together.")
        if fn_spec.bucket:
            acknowledge(self, f"IAM5[Resource::{finding_resource(self, deps.data.bucket.arn_for_objects('*'))}]",
                        "Object keys are per tenant and per request; object actions are limited to "
                        "GetObject/PutObject on the gateway's own bucket, and FileStorage enforces the tenant prefix.")
        if fn_spec.provider_secrets and deps.provider_secret_prefix:
            secrets = stack.format_arn(
                service="secretsmanager", resource="secret",
                resource_name=f"{deps.provider_secret_prefix}*", arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            self.function.add_to_role_policy(iam.PolicyStatement(
                sid="ReadProviderCredentials", actions=["secretsmanager:GetSecretValue"], resources=[secrets],
            ))
            acknowledge(self, f"IAM5[Resource::{finding_resource(self, secrets)}]",
                        "Provider credentials are secrets the operator names under one prefix; "
                        "read-only (GetSecretValue) and limited to that prefix.")
        if fn_spec.hooks and deps.hook_function_prefix:
            hooks = stack.format_arn(
                service="lambda", resource="function",
                resource_name=f"{deps.hook_function_prefix}*", arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            self.function.add_to_role_policy(iam.PolicyStatement(
                sid="InvokeTenantHooks", actions=["lambda:InvokeFunction"], resources=[hooks],
            ))
            acknowledge(self, f"IAM5[Resource::{finding_resource(self, hooks)}]",
                        "Tenants' pre/post hooks are functions the operator deploys under one name prefix; "
                        "invoke only, limited to that prefix.")
        deps.observability.watch_function(fn_spec.family, self.function)


class Functions(Construct):
    """Every family served by the HTTP API."""

    def __init__(
        self,
        scope: Construct,
        construct_id_: str,
        *,
        specs: tuple[spec.FunctionSpec, ...],
        code_paths: dict[str, Path],
        deps: SharedDeps,
        extra_environment: dict[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id_)
        self.by_family: dict[str, lambda_.Function] = {}
        for fs in specs:
            fn = GatewayFunction(self, construct_id(fs.family), fn_spec=fs, code=code_paths[fs.family], deps=deps,
                                 extra_environment=extra_environment)
            self.by_family[fs.family] = fn.function
