"""The routes service (issue 5): three Lambdas, the pull scanner on Fargate, their queues,
rules, the tick schedule and least-privilege grants.

- ``RoutesApi`` (services/routes/handlers.py): the /routes REST routes.
- ``RoutesPush`` (services/routes/push.py): S3 "Object Created" events from the account's
  DEFAULT bus (rule ``routes_rule``) -> the routes queue -> jobs.
- ``RoutesConsumer`` (services/routes/consumer.py): ferry.routes events from the Ferry bus
  (``routes_projections_rule``) -> the routes read model. The only writer of ``<prefix>-routes``.
- the scanner (``python -m services.routes.scanner``): its own Fargate service (desired count 1)
  in the executor's cluster, on the executor's private subnets / egress-only security group, so
  partners see the same static NAT IPs. Not a second container of the executor task: that task
  scales 0..N on the transfer backlog, the scanner must run exactly once whatever the backlog.
  Ticks: an EventBridge Scheduler schedule, rate(1 minute) -> the tick queue.

The routes Lambdas and the scanner create jobs in-process through the jobs application, so they
append to the event store and use the idempotency table; none of them writes the jobs or
endpoints read models (explicit deny), and no routes Lambda can read endpoint secrets (only the
scanner, which lists partner SFTP sources, can).
"""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

import ferry.names as n
from infra.constructs.executor import container_image
from infra.constructs.functions import powertools_environment
from infra.constructs.messaging import FerryQueue
from infra.constructs.services import (
    CONSUMER_TIMEOUT,
    _Common,
    _sqs_source,
    deny_secret_reads,
    deny_writes,
    secrets_arn,
)
from infra.constructs.tables import Tables

ROUTES_API_HANDLER = "services/routes/handlers.py:handler"
ROUTES_PUSH_HANDLER = "services/routes/push.py:handler"
ROUTES_CONSUMER_HANDLER = "services/routes/consumer.py:handler"
SCANNER_COMMAND = ["python", "-m", "services.routes.scanner"]
TICK_RATE = "rate(1 minute)"
SCANNER_STOP_TIMEOUT = Duration.seconds(60)


def routes_environment(names: n.ResourceNames, queues: dict[str, FerryQueue]) -> dict[str, str]:
    """The routes-specific environment (services/routes/settings.py) on top of the common one."""
    return {
        n.ENV_RESOURCE_PREFIX: names.prefix,
        n.ENV_ROUTES_TABLE: names.routes_table,
        n.ENV_ROUTE_SCAN_TABLE: names.route_scan_table,
        n.ENV_ROUTES_QUEUE_URL: queues["routes_queue"].queue.queue_url,
        n.ENV_ROUTES_PROJECTIONS_QUEUE_URL: queues["routes_projections_queue"].queue.queue_url,
        n.ENV_ROUTES_TICK_QUEUE_URL: queues["routes_tick_queue"].queue.queue_url,
    }


class RoutesService(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        common: _Common,
        tables: Tables,
        ferry_bus: events.IEventBus,
        cluster: ecs.ICluster,
        security_group: ec2.ISecurityGroup,
        image: str,
        scanner_environment: dict[str, str],
        grant_partner_access: Callable[[iam.IRole], None],
        reserved_concurrency: int,
        active: bool,
    ) -> None:
        super().__init__(scope, cid)
        names, key, t = common.names, common.key, tables
        lambda_visibility = Duration.seconds(6 * CONSUMER_TIMEOUT.to_seconds())
        self.queues: dict[str, FerryQueue] = {
            attr: FerryQueue(
                self,
                "".join(p.capitalize() for p in attr.split("_")),
                name=getattr(names, attr),
                key=key,
                visibility_timeout=visibility,
                max_receive_count=receives,
            )
            for attr, visibility, receives in (
                ("routes_queue", lambda_visibility, 5),
                ("routes_projections_queue", lambda_visibility, 5),
                # a tick is worth nothing late: short retention, the scanner deletes on receipt
                ("routes_tick_queue", Duration.seconds(60), 3),
            )
        }
        env = routes_environment(names, self.queues)

        # --- rules: routes_rule on the DEFAULT bus, routes_projections_rule on the Ferry bus ----
        self.rules: dict[str, events.Rule] = {}
        for rule_attr, (bus_kind, pattern, queue_attr) in n.ROUTES_RULES.items():
            bus = (
                events.EventBus.from_event_bus_name(self, "DefaultBus", n.DEFAULT_BUS)
                if bus_kind == n.DEFAULT_BUS
                else ferry_bus
            )
            self.rules[rule_attr] = events.Rule(
                self,
                "".join(p.capitalize() for p in rule_attr.split("_")),
                rule_name=getattr(names, rule_attr),
                event_bus=bus,
                event_pattern=events.EventPattern(
                    source=pattern["source"], detail_type=pattern.get("detail-type")
                ),
                # passive region (global tables): only the read model keeps running
                enabled=active or queue_attr == "routes_projections_queue",
                targets=[
                    targets.SqsQueue(
                        self.queues[queue_attr].queue,
                        retry_attempts=185,
                        max_event_age=Duration.hours(24),
                    )
                ],
            )

        # --- tick schedule (EventBridge Scheduler) -> tick queue -----------------------------
        tick_queue = self.queues["routes_tick_queue"].queue
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            ),
            description="EventBridge Scheduler: send scanner ticks to the routes tick queue",
        )
        tick_queue.grant_send_messages(self.scheduler_role)
        self.schedule = scheduler.CfnSchedule(
            self,
            "TickSchedule",
            name=names.routes_tick_schedule,
            description="Scanner tick: the scanner decides per route whether it is due",
            schedule_expression=TICK_RATE,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED" if active else "DISABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=tick_queue.queue_arn,
                role_arn=self.scheduler_role.role_arn,
                input='{"source": "scheduler"}',
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=60, maximum_retry_attempts=0
                ),
            ),
        )

        # --- Lambdas ------------------------------------------------------------------------
        self.api_function = common.function(self, "Api", ROUTES_API_HANDLER, "routes")
        self.push = common.function(
            self,
            "Push",
            ROUTES_PUSH_HANDLER,
            "routes",
            timeout=CONSUMER_TIMEOUT,
            reserved_concurrency=reserved_concurrency,
        )
        self.consumer = common.function(
            self,
            "Consumer",
            ROUTES_CONSUMER_HANDLER,
            "routes",
            timeout=CONSUMER_TIMEOUT,
            reserved_concurrency=reserved_concurrency,
        )
        arn = secrets_arn(self, names)
        never_write: list[ddb.ITableV2] = [t.endpoints, t.jobs]  # jobs/endpoints read models
        for fn in (self.api_function, self.push, self.consumer):
            for k, v in env.items():
                fn.add_environment(k, v)
            deny_secret_reads(fn.role, arn)
        # job creators (API, push): append to the event store, idempotency, read what they need
        for fn in (self.api_function, self.push):
            t.events.grant_read_write_data(fn)
            t.idempotency.grant_read_write_data(fn)
            t.endpoints.grant_read_data(fn)
            t.jobs.grant_read_data(fn)
            t.routes.grant_read_data(fn)
            deny_writes(fn.role, [*never_write, t.routes], "NeverWriteReadModels")
        t.api_keys.grant_read_data(self.api_function)
        # the routes index (name claims, push buckets, unrouted objects) lives in the scan
        # table: the API writes it before a command's event, the push consumer reads it
        t.route_scan.grant_read_write_data(self.api_function)
        t.route_scan.grant_read_write_data(self.push)
        # the read-model consumer: reads the event store, writes the routes read model only
        t.events.grant_read_data(self.consumer)
        t.routes.grant_read_write_data(self.consumer)
        deny_writes(self.consumer.role, [t.events], "NeverWriteTheEventStore")
        deny_writes(self.consumer.role, never_write, "NeverWriteReadModels")
        self.push.add_event_source(
            _sqs_source(self.queues["routes_queue"].queue, reserved_concurrency)
        )
        self.consumer.add_event_source(
            _sqs_source(self.queues["routes_projections_queue"].queue, reserved_concurrency)
        )

        # --- the scanner: a singleton Fargate service in the executor's cluster ---------------
        self.scanner_task = ecs.FargateTaskDefinition(
            self,
            "ScannerTask",
            cpu=512,
            memory_limit_mib=1024,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.scanner_logs = logs.LogGroup(
            self, "ScannerLogs", retention=logs.RetentionDays.THREE_MONTHS
        )
        self.scanner_task.add_container(
            "scanner",
            image=container_image(self, image),
            command=SCANNER_COMMAND,
            environment={
                **scanner_environment,
                **env,
                **powertools_environment("routes-scanner"),
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="scanner", log_group=self.scanner_logs),
            stop_timeout=SCANNER_STOP_TIMEOUT,
            readonly_root_filesystem=False,
        )
        self.scanner = ecs.FargateService(
            self,
            "Scanner",
            cluster=cluster,
            task_definition=self.scanner_task,
            desired_count=1 if active else 0,
            assign_public_ip=False,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[security_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            min_healthy_percent=0,  # one scanner at a time: stop the old before the new starts
            max_healthy_percent=100,
        )
        role = self.scanner_task.task_role
        t.events.grant_read_write_data(role)
        t.idempotency.grant_read_write_data(role)
        t.route_scan.grant_read_write_data(role)
        for table in (t.endpoints, t.jobs, t.routes):
            table.grant_read_data(role)
        deny_writes(role, [*never_write, t.routes], "NeverWriteReadModels")
        tick_queue.grant_consume_messages(role)
        grant_partner_access(role)
