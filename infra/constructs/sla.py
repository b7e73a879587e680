"""Delivery SLA checks on Ferry's scheduler (issue 12).

- Route deadlines (``expect``) and late schedule ticks: checked by the routes scanner on every
  tick (services/routes/scanner.py), so they need nothing here beyond the scanner's own grants
  (it already appends to the event store and reads the routes read model).
- JobSlow: the ``SlowCheck`` Lambda (services/jobs/slow_check.py:handler), invoked by an EventBridge
  Scheduler schedule every minute. It reads job streams and appends JobSlow (event store), and
  reads / clears the slow watch on the idempotency table, where the jobs process manager puts
  started jobs with a max_duration. Nothing else: no read-model writes, no endpoint secrets;
  the scheduler's role may only invoke this one function.
"""

from __future__ import annotations

from aws_cdk import Duration
from constructs import Construct

from infra.constructs.schedules import Retry, lambda_schedule
from infra.constructs.services import _Common, deny_secret_reads, deny_writes, secrets_arn
from infra.constructs.tables import Tables

SLOW_CHECK_HANDLER = "services/jobs/slow_check.py:handler"
SLOW_CHECK_RATE = "rate(1 minute)"


class SlaChecks(Construct):
    def __init__(
        self, scope: Construct, cid: str, *, common: _Common, tables: Tables, active: bool
    ) -> None:
        super().__init__(scope, cid)
        t = tables
        self.slow_check = common.function(
            self,
            "SlowCheck",
            SLOW_CHECK_HANDLER,
            "jobs",
            timeout=Duration.seconds(60),
            reserved_concurrency=1,  # one check at a time (a second would find nothing new)
        )
        t.events.grant_read_write_data(self.slow_check)
        t.idempotency.grant_read_write_data(self.slow_check)
        deny_secret_reads(self.slow_check.role, secrets_arn(self, common.names))
        deny_writes(self.slow_check.role, t.read_models, "NeverWriteReadModels")

        self.scheduler_role, self.schedule = lambda_schedule(
            self,
            "SlowCheckSchedule",
            function=self.slow_check,
            name=common.names.jobs_slow_check_schedule,
            expression=SLOW_CHECK_RATE,
            description="JobSlow: jobs running past their max_duration (services/jobs/sla.py)",
            role_description="EventBridge Scheduler: invoke the JobSlow check",
            sid="InvokeSlowCheck",
            active=active,
            # a missed run is caught up by the next (the watch keeps a cursor)
            retry=Retry(max_age_seconds=60, attempts=0),
        )
