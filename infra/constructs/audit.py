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
- ``<prefix>-access-log`` (reads are audited, ``ferry/access_log.py``): the event store's key
  schema and ``by-customer-time`` index, no stream, regional (a read is recorded where it is
  answered), customer-managed key, point-in-time recovery, deletion protection. Every API
  function may append to it (PutItem — the recorder's conditional put — and Query/GetItem for a
  stream's head) and is denied DeleteItem/UpdateItem/BatchWriteItem on it: an entry, once
  written, is never changed by Ferry. The query API lists it (GET /audit/access); the checkpoint
  Lambda verifies and anchors it (``access-checkpoints/``).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from events.dynamodb import CUSTOMER_TIME_INDEX
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
        api_functions: list[lambda_.IFunction],
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

        self.access_log = ddb.TableV2(
            self,
            "AccessLog",
            table_name=names.access_log_table,
            partition_key=ddb.Attribute(name="stream_id", type=ddb.AttributeType.STRING),
            sort_key=ddb.Attribute(name="version", type=ddb.AttributeType.NUMBER),
            global_secondary_indexes=[
                ddb.GlobalSecondaryIndexPropsV2(
                    index_name=CUSTOMER_TIME_INDEX,
                    partition_key=ddb.Attribute(name="customer_id", type=ddb.AttributeType.STRING),
                    sort_key=ddb.Attribute(name="at_key", type=ddb.AttributeType.STRING),
                )
            ],
            billing=ddb.Billing.on_demand(),
            encryption=ddb.TableEncryptionV2.customer_managed_key(key),
            point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for fn in {id(f): f for f in (*api_functions, query_api)}.values():
            fn.add_environment(n.ENV_ACCESS_LOG_TABLE, names.access_log_table)  # type: ignore[union-attr,attr-defined,unused-ignore]
            self.access_log.grant_read_data(fn)  # a stream's head; the listing
            self.access_log.grant(fn, "dynamodb:PutItem")  # the recorder's conditional append
            key.grant_encrypt_decrypt(fn)
            assert fn.role is not None
            fn.role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="NeverChangeTheAccessLog",
                    effect=iam.Effect.DENY,
                    actions=[
                        "dynamodb:DeleteItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:BatchWriteItem",
                    ],
                    resources=[self.access_log.table_arn],
                )
            )
        self.function.add_environment(n.ENV_ACCESS_LOG_TABLE, names.access_log_table)
        self.access_log.grant_read_data(self.function)

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
