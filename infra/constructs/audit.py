"""Audit anchors (issue 11, docs/audit.md): the checkpoint bucket and the hourly AuditCheckpoint.

- ``<prefix>-audit-<account>-<region>``: S3 Object Lock in COMPLIANCE mode (default retention
  ``retention_days``; nobody, not even the root user, can delete or overwrite a checkpoint
  version before it ends), versioned (Object Lock requires it), SSE-KMS, TLS only, server access
  logs, public access blocked.
- ``AuditCheckpoint`` Lambda (``services/projections/audit_checkpoints.py:handler``), invoked
  hourly by an EventBridge Scheduler schedule. Least privilege: it reads the event store (and its
  ``by-customer-time`` index) and the API keys table (the customer list), may seal legacy
  events (UpdateItem on the event store only: no Put, no Delete), may put and read checkpoint
  objects (no delete, no lock or retention changes), and is denied endpoint secrets.
- The query API (GET /audit/verify, /audit/events, POST /audit/checkpoint) may read and put
  checkpoint objects; it still never writes the event store.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from ferry import names as n
from infra.constructs.schedules import Retry, lambda_schedule
from infra.constructs.services import _Common, deny_secret_reads, secrets_arn
from infra.constructs.tables import Tables

CHECKPOINT_HANDLER = "services/projections/audit_checkpoints.py:handler"
CHECKPOINT_RATE = "rate(1 hour)"


class AuditTrail(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        common: _Common,
        tables: Tables,
        key: kms.IKey,
        access_logs: s3.IBucket,
        query_api: lambda_.IFunction,
        active: bool,
        retention_days: int = 2557,  # 7 years
    ) -> None:
        super().__init__(scope, cid)
        stack = Stack.of(self)
        names = common.names
        self.bucket = s3.Bucket(
            self,
            "Checkpoints",
            bucket_name=f"{names.audit_bucket}-{stack.account}-{stack.region}",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_lock_enabled=True,
            object_lock_default_retention=s3.ObjectLockRetention.compliance(
                Duration.days(retention_days)
            ),
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="audit/",
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.function = common.function(
            self,
            "Checkpoint",
            CHECKPOINT_HANDLER,
            "audit",
            timeout=Duration.minutes(5),
            reserved_concurrency=1,  # one run at a time: checkpoint numbers never race
        )
        self.function.add_environment(n.ENV_AUDIT_BUCKET, self.bucket.bucket_name)
        query_api.add_environment(n.ENV_AUDIT_BUCKET, self.bucket.bucket_name)  # type: ignore[attr-defined]
        t = tables
        t.events.grant_read_data(self.function)
        t.events.grant(self.function, "dynamodb:UpdateItem")  # sealing legacy events only
        t.api_keys.grant_read_data(self.function)
        deny_secret_reads(self.function.role, secrets_arn(self, names))
        for fn in (self.function, query_api):
            self.bucket.grant_read(fn)
            self.bucket.grant_put(fn)
            assert fn.role is not None
            fn.role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="NeverDeleteOrUnlockCheckpoints",
                    effect=iam.Effect.DENY,
                    actions=[
                        "s3:DeleteObject",
                        "s3:DeleteObjectVersion",
                        "s3:PutObjectRetention",
                        "s3:PutObjectLegalHold",
                        "s3:BypassGovernanceRetention",
                        "s3:PutBucketObjectLockConfiguration",
                    ],
                    resources=[self.bucket.bucket_arn, self.bucket.arn_for_objects("*")],
                )
            )

        self.scheduler_role, self.schedule = lambda_schedule(
            self,
            "CheckpointSchedule",
            function=self.function,
            name=names.audit_checkpoint_schedule,
            expression=CHECKPOINT_RATE,
            description="AuditCheckpoint: the head hash of every changed stream, per customer",
            role_description="EventBridge Scheduler: invoke the hourly AuditCheckpoint",
            sid="InvokeAuditCheckpoint",
            active=active,
            retry=Retry(max_age_seconds=3600, attempts=2),
        )
