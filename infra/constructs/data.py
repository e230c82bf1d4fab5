"""DynamoDB tables (from `provision.TABLES`) and the S3 files bucket, with least-privilege grants."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import spec
from infra.nag import acknowledge


def table_construct_id(setting: str) -> str:
    """`keys_table` -> `KeysTable` (stable: it names the CloudFormation resource)."""
    return "".join(part.capitalize() for part in setting.split("_"))


class DataStore(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        tables: dict[str, tuple[str, str | None]],
        ttls: dict[str, str],
        file_expiry_days: dict[str, int],
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        unknown = set(ttls) - set(tables)
        if unknown:
            raise SystemExit(f"TTL attributes name tables that provision.TABLES lacks: {sorted(unknown)}")
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.tables: dict[str, dynamodb.Table] = {}
        for setting, (pk, sk) in tables.items():
            self.tables[setting] = dynamodb.Table(
                self, table_construct_id(setting),
                partition_key=dynamodb.Attribute(name=pk, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=sk, type=dynamodb.AttributeType.STRING) if sk else None,
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                encryption=dynamodb.TableEncryption.AWS_MANAGED,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True,
                ),
                time_to_live_attribute=ttls.get(setting),
                removal_policy=removal,
            )

        rules = [s3.LifecycleRule(id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(1))]
        for prefix, days in sorted(file_expiry_days.items()):
            rules.append(s3.LifecycleRule(
                id=f"expire-{prefix.strip('/').replace('/', '-') or 'all'}",
                prefix=prefix, expiration=Duration.days(days),
            ))
        self.bucket = s3.Bucket(
            self, "FilesBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=rules,
            removal_policy=removal,
        )
        acknowledge(self.bucket, "S1",
                    "Only the gateway's functions touch objects (clients get short-lived presigned URLs); "
                    "use CloudTrail S3 data events for an object-level audit trail.")

    def environment(self) -> dict[str, str]:
        """The names llm_gateway/config.py reads, set to the deployed resources."""
        env = {spec.table_env_var(setting): table.table_name for setting, table in self.tables.items()}
        env[spec.FILES_BUCKET_ENV] = self.bucket.bucket_name
        return env

    def grant(self, grantee: iam.IGrantable, tables: dict[str, str], bucket: str | None) -> None:
        for setting, access in tables.items():
            table = self.tables.get(setting)
            if table is None:  # named ahead of its provision.TABLES entry: nothing to grant yet
                continue
            if access in (spec.READ, spec.READ_WRITE):
                table.grant_read_data(grantee)
            if access in (spec.WRITE, spec.READ_WRITE):
                table.grant_write_data(grantee)
        # Explicit object actions instead of grant_read/grant_put (which add s3:List*, GetBucket*,
        # Abort*...). Keys are per tenant and per object, so the object ARN ends in /*; tenant
        # scoping is enforced by the gateway's FileStorage (tenant prefix on every key).
        objects = self.bucket.arn_for_objects("*")
        if bucket in (spec.READ, spec.READ_WRITE):
            grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
                sid="ReadFiles", actions=["s3:GetObject"], resources=[objects]))
            grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
                sid="ListFiles", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn]))
        if bucket in (spec.WRITE, spec.READ_WRITE):
            grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
                sid="WriteFiles", actions=["s3:PutObject"], resources=[objects]))
