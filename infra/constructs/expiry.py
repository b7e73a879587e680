"""The expired-item sweep (events/expiry.py) in active-active deployments.

MRSC global tables have no TTL (docs/multi-region.md §3): the ``ExpirySweep`` Lambda, invoked by an
EventBridge Scheduler schedule every hour in each region, deletes expired idempotency records,
slow-watch minutes and publication claims. Its role may only Scan those two tables and delete
their items (each delete is conditional on the item's expiry, so the two regions' sweeps and
the writers never race into losing a live item), use the data key for them, and nothing else:
no event store, no read models, no secrets.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.constructs.schedules import Retry, lambda_schedule
from infra.constructs.services import _Common, deny_secret_reads, secrets_arn
from infra.constructs.tables import Tables

EXPIRY_SWEEP_HANDLER = "events/expiry.py:handler"
EXPIRY_SWEEP_RATE = "rate(1 hour)"
EXPIRY_SWEEP_ACTIONS = ["dynamodb:Scan", "dynamodb:DeleteItem"]
"""All the sweep may do on the tables it sweeps."""


class ExpirySweep(Construct):
    def __init__(
        self, scope: Construct, cid: str, *, common: _Common, tables: Tables, active: bool
    ) -> None:
        super().__init__(scope, cid)
        assert tables.publications is not None, "the sweep is for active-active (MRSC) tables"
        swept = [tables.idempotency, tables.publications]
        self.function = common.function(
            self,
            "Function",
            EXPIRY_SWEEP_HANDLER,
            "expiry-sweep",
            timeout=Duration.minutes(5),
            reserved_concurrency=1,  # one sweep at a time per region
        )
        role = self.function.role
        assert role is not None
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="SweepExpiredItems",
                actions=EXPIRY_SWEEP_ACTIONS,
                resources=[t.table_arn for t in swept],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="SweptTablesKey",
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                resources=[common.key.key_arn],
            )
        )
        deny_secret_reads(role, secrets_arn(self, common.names))
        self.scheduler_role, self.schedule = lambda_schedule(
            self,
            "Schedule",
            function=self.function,
            name=common.names.expiry_sweep_schedule,
            expression=EXPIRY_SWEEP_RATE,
            description="Delete expired idempotency records and publication claims (no TTL "
            "on MRSC tables; events/expiry.py)",
            role_description="EventBridge Scheduler: invoke the expiry sweep",
            sid="InvokeExpirySweep",
            active=active,
            retry=Retry(max_age_seconds=600, attempts=2),  # a missed run: the next one sweeps
        )
