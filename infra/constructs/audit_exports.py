"""Audit exports as jobs (issue 11, docs/audit.md "Export for an auditor"): POST /audit/exports
on the query API records an export and queues it; the exporter Lambda runs it.

- ``<prefix>-audit-exports`` table (pk ``customer_id``, sk ``sk``; TTL ``expires_at`` for
  Idempotency-Key claims; the deployment's CMK, PITR, deletion protection): one small item per
  export. The query API reads and writes it (Get/Put/Query, ConditionCheck for the claim's
  transaction); the exporter Gets and Puts (its status transitions); nothing deletes.
- ``<prefix>-audit-exports`` SQS queue (KMS, TLS only, DLQ after 3 receives; visibility 6 x the
  exporter's timeout): the query API may only send to it; the exporter consumes it.
- The exporter (``services/projections/audit_exporter.py:handler``, 15 min, reserved
  concurrency 2): Query on the event store's ``by-customer-time`` index only (not the table, no
  write), PutObject on ``exports/*`` of the audit bucket only (never delete, never unlock; the
  bucket's Object Lock retains exports like checkpoints), and denied endpoint secrets.
- The query API presigns GET URLs of ``exports/*``: it already reads the audit bucket
  (``AuditTrail``), which a presigned URL needs (it is the API role's own GetObject).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from constructs import Construct

from events.dynamodb import CUSTOMER_TIME_INDEX
from ferry import names as n
from infra.constructs.messaging import FerryQueue
from infra.constructs.services import _Common, deny_secret_reads, secrets_arn
from infra.constructs.tables import Tables

EXPORTER_HANDLER = "services/projections/audit_exporter.py:handler"
EXPORTER_TIMEOUT = Duration.minutes(15)
EXPORTS_PREFIX = "exports/"


class AuditExports(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        common: _Common,
        tables: Tables,
        key: kms.IKey,
        bucket: s3.IBucket,
        query_api: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, cid)
        names = common.names
        self.table = ddb.TableV2(
            self,
            "Exports",
            table_name=names.audit_exports_table,
            partition_key=ddb.Attribute(name="customer_id", type=ddb.AttributeType.STRING),
            sort_key=ddb.Attribute(name="sk", type=ddb.AttributeType.STRING),
            time_to_live_attribute="expires_at",
            billing=ddb.Billing.on_demand(),
            encryption=ddb.TableEncryptionV2.customer_managed_key(key),
            point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.queue = FerryQueue(
            self,
            "Queue",
            name=names.audit_exports_queue,
            key=key,
            visibility_timeout=Duration.seconds(6 * EXPORTER_TIMEOUT.to_seconds()),
            max_receive_count=3,
        )
        self.function = common.function(
            self,
            "Exporter",
            EXPORTER_HANDLER,
            "audit",
            timeout=EXPORTER_TIMEOUT,
            memory_size=1024,  # one day of lines is held in memory
            reserved_concurrency=2,
        )
        self.function.add_event_source(
            sources.SqsEventSource(self.queue.queue, batch_size=1, report_batch_item_failures=True)
        )
        env = {
            n.ENV_AUDIT_EXPORTS_TABLE: names.audit_exports_table,
            n.ENV_AUDIT_BUCKET: bucket.bucket_name,
        }
        for name, value in env.items():
            self.function.add_environment(name, value)
            query_api.add_environment(name, value)  # type: ignore[attr-defined]
        query_api.add_environment(  # type: ignore[attr-defined]
            n.ENV_AUDIT_EXPORTS_QUEUE_URL, self.queue.queue.queue_url
        )

        # the query API: start (a transaction of two conditional puts), read, list; send
        self.table.grant(
            query_api,
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:ConditionCheckItem",
        )
        self.queue.queue.grant_send_messages(query_api)
        # the exporter: its status transitions, the index, exports/* only
        self.table.grant(self.function, "dynamodb:GetItem", "dynamodb:PutItem")
        role = self.function.role
        assert role is not None
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadTheCustomerTimeIndex",
                actions=["dynamodb:Query"],
                resources=[f"{tables.events.table_arn}/index/{CUSTOMER_TIME_INDEX}"],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="WriteExportsOnly",
                actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(f"{EXPORTS_PREFIX}*")],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="NeverDeleteOrUnlockAudit",
                effect=iam.Effect.DENY,
                actions=[
                    "s3:DeleteObject",
                    "s3:DeleteObjectVersion",
                    "s3:PutObjectRetention",
                    "s3:PutObjectLegalHold",
                    "s3:BypassGovernanceRetention",
                ],
                resources=[bucket.arn_for_objects("*")],
            )
        )
        key.grant_encrypt_decrypt(self.function)  # SSE-KMS objects, the table, the index
        deny_secret_reads(role, secrets_arn(self, names))
