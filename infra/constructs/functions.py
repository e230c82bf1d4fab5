"""Lambda functions, one per operation family, all from `spec.FUNCTIONS`."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import spec
from infra.nag import acknowledge, logical_ref
from infra.constructs.data import DataStore
from infra.constructs.layer import ASSET_EXCLUDE, runtime
from infra.constructs.observability import Observability


class GatewayFunction(Construct):
    """One family's function: ARM64, the gateway layer, Powertools env, X-Ray, its own log group,
    the table/bucket names in env and only the grants its spec lists."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        fn_spec: spec.FunctionSpec,
        code: Path,
        layers: list[lambda_.ILayerVersion],
        data: DataStore,
        observability: Observability,
        environment: dict[str, str],
        provider_secret_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.spec = fn_spec
        self.log_group = observability.log_group(f"{construct_id}Logs")
        # Own role instead of AWSLambdaBasicExecutionRole: logs go to this function's group only.
        self.role = iam.Role(
            self, "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"LLM Gateway {fn_spec.family} function",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self, "Function",
            description=fn_spec.description,
            runtime=runtime(),
            architecture=lambda_.Architecture.ARM_64,
            handler=fn_spec.handler,
            code=lambda_.Code.from_asset(str(code), exclude=ASSET_EXCLUDE),
            memory_size=fn_spec.memory_mb,
            timeout=Duration.seconds(fn_spec.timeout_s),
            layers=layers,
            environment={**spec.POWERTOOLS_ENV, **data.environment(), **environment},
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            role=self.role,
        )
        data.grant(self.function, fn_spec.tables, fn_spec.bucket)
        if fn_spec.provider_secrets and provider_secret_prefix:
            self.function.add_to_role_policy(iam.PolicyStatement(
                sid="ReadProviderCredentials",
                actions=["secretsmanager:GetSecretValue"],
                resources=[Stack.of(self).format_arn(
                    service="secretsmanager", resource="secret",
                    resource_name=f"{provider_secret_prefix}*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )],
            ))
        observability.watch_function(fn_spec.family, self.function)

        acknowledge(self, "IAM5[Resource::*]",
                    "X-Ray tracing (active): xray:PutTraceSegments/PutTelemetryRecords accept no resource scope.")
        acknowledge(self, "L1", f"Python {spec.PYTHON_VERSION} is pinned: the layer's binary wheels are built for "
                    "this ABI (infra/spec.py PYTHON_VERSION); runtime and wheels move together.")
        if fn_spec.bucket:
            acknowledge(self, f"IAM5[Resource::{logical_ref(data.bucket, 'Arn')}/*]",
                        "Object keys are per tenant and per request; object actions are limited to "
                        "GetObject/PutObject on the gateway's own bucket, and FileStorage enforces the tenant prefix.")
        if fn_spec.provider_secrets and provider_secret_prefix:
            acknowledge(self, "IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:"
                        f"secret:{provider_secret_prefix}*]",
                        "Provider credentials are secrets named by the operator under one prefix; "
                        "read-only (GetSecretValue) and limited to that prefix.")


def construct_id(family: str) -> str:
    """`chat_stream` -> `ChatStream`."""
    return "".join(part.capitalize() for part in family.split("_"))


class Functions(Construct):
    """Every family served by the HTTP API."""

    def __init__(
        self,
        scope: Construct,
        construct_id_: str,
        *,
        specs: tuple[spec.FunctionSpec, ...],
        code_paths: dict[str, Path],
        layer: lambda_.ILayerVersion,
        data: DataStore,
        observability: Observability,
        environment: dict[str, str],
        provider_secret_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id_)
        self.by_family: dict[str, lambda_.Function] = {}
        for fs in specs:
            fn = GatewayFunction(
                self, construct_id(fs.family),
                fn_spec=fs, code=code_paths[fs.family], layers=[layer], data=data,
                observability=observability, environment=environment,
                provider_secret_prefix=provider_secret_prefix,
            )
            self.by_family[fs.family] = fn.function
