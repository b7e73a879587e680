"""FerryStack: every Ferry resource of one region, composed from the per-service constructs."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

import ferry.names as n
from infra.config import FerryConfig
from infra.constructs.api import Api
from infra.constructs.audit import AuditTrail
from infra.constructs.audit_exports import AuditExports
from infra.constructs.code import dependencies_layer
from infra.constructs.executor import Executor, Network, executor_settings_environment
from infra.constructs.expiry import ExpirySweep
from infra.constructs.messaging import Messaging
from infra.constructs.monitoring import (
    EXECUTOR_OLDEST_MESSAGE_SECONDS,
    LAMBDA_QUEUE_OLDEST_MESSAGE_SECONDS,
    Monitoring,
)
from infra.constructs.multi_region import (
    ENV_PEER_BUS_ARNS,
    ENV_PUBLICATIONS_TABLE,
    peer_bus_arn,
    staging_replication,
)
from infra.constructs.notifications import NotificationsService
from infra.constructs.routes import RoutesService
from infra.constructs.services import (
    CONSUMER_TIMEOUT,
    DDB_WRITE_ACTIONS,
    SECRET_READ_ACTIONS,
    EndpointsService,
    JobsService,
    ProjectionsService,
    Publisher,
    _Common,
    peer_data_key_via_secrets,
    region_sid,
    secrets_arn,
)
from infra.constructs.sla import SlaChecks
from infra.constructs.storage import Storage
from infra.constructs.tables import Tables, data_key_alias, publications_table_name
from infra.nag import suppress

CUSTOMER_S3_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "s3:ListBucket",
    "s3:GetBucketLocation",
]
"""What a customer's role (delegated S3 endpoint) must allow on its bucket (README)."""

EXTERNAL_ID_PATTERN = "ferry-*"
"""Every external id Ferry generates (services/endpoints/application.py new_external_id)."""


def stack_name(prefix: str, region: str) -> str:
    return f"{prefix.capitalize()}-{region}"


class FerryStack(Stack):
    def __init__(self, scope: Construct, cfg: FerryConfig, region: str) -> None:
        super().__init__(
            scope,
            stack_name(cfg.prefix, region),
            env=Environment(account=cfg.account, region=region),
            description=f"Ferry managed file transfer ({cfg.prefix}, {region})",
            termination_protection=False,
        )
        names = cfg.names
        self.cfg = cfg
        active = cfg.is_active(region)

        self.key = kms.Key(
            self,
            "DataKey",
            alias=data_key_alias(names),
            enable_key_rotation=True,
            description="Ferry data: event store, tables, queues, staging bucket, alarms topic",
            removal_policy=RemovalPolicy.RETAIN,
        )
        shared_tables = cfg.global_tables or cfg.active_active
        owns_global = shared_tables and region == cfg.home_region
        self.tables = Tables(
            self,
            "Tables",
            names=names,
            key=self.key,
            replica_regions=[r for r in cfg.regions if r != region] if owns_global else None,
            import_global=shared_tables and not owns_global,
            # active-active: MRSC tables, the third region a witness (docs/multi-region.md)
            witness_region=cfg.witness_region if cfg.active_active else None,
            stream_lookup=not cfg.bootstraps(region),
        )
        self.messaging = Messaging(
            self,
            "Messaging",
            names=names,
            key=self.key,
            archive_retention_days=cfg.archive_retention_days,
            consumer_accounts=cfg.consumer_accounts,
            lease_seconds=cfg.lease_seconds,
            lambda_consumer_timeout=CONSUMER_TIMEOUT,
            active=active,
        )
        self.storage = Storage(
            self,
            "Storage",
            names=names,
            key=self.key,
            multipart_abort_days=cfg.multipart_abort_days,
            staging_expiry_days=cfg.staging_expiry_days,
            versioned=cfg.active_active,
        )
        peers = cfg.peers(region) if cfg.active_active else ()
        self.staging_replication_role = None
        if cfg.active_active and not cfg.bootstraps(region):
            # staged chunks are readable in the other region at takeover (docs/multi-region.md)
            [peer] = peers
            self.staging_replication_role = staging_replication(
                self.storage,
                names=names,
                bucket=self.storage.staging,
                key=self.key,
                peer_region=peer,
                key_alias=data_key_alias(names).removeprefix("alias/"),
            )
        self.peer_bus_arns = [peer_bus_arn(self, names, r) for r in peers]
        q = self.messaging.queues
        environment = {
            n.ENV_PERSISTENCE_MODULE: "events.dynamodb",
            n.ENV_EVENTS_TABLE: names.events_table,
            n.ENV_ENDPOINTS_TABLE: names.endpoints_table,
            n.ENV_JOBS_TABLE: names.jobs_table,
            n.ENV_JOB_STATS_TABLE: names.job_stats_table,
            n.ENV_ROUTES_TABLE: names.routes_table,
            n.ENV_IDEMPOTENCY_TABLE: names.idempotency_table,
            n.ENV_LEASES_TABLE: names.leases_table,
            n.ENV_API_KEYS_TABLE: names.api_keys_table,
            n.ENV_BUS_NAME: names.bus,
            n.ENV_EXECUTOR_QUEUE_URL: q["executor_queue"].queue.queue_url,
            n.ENV_VALIDATOR_QUEUE_URL: q["validator_queue"].queue.queue_url,
            n.ENV_PROJECTIONS_QUEUE_URL: q["projections_queue"].queue.queue_url,
            n.ENV_JOBS_QUEUE_URL: q["jobs_queue"].queue.queue_url,
            n.ENV_STAGING_BUCKET: self.storage.staging.bucket_name,
            n.ENV_SECRETS_PREFIX: names.secrets_prefix,
            n.ENV_DEPLOYMENT_REGION: region,
        }
        environment.update(cfg.customer_limits)  # read by the jobs API and the executor
        if cfg.active_active:
            environment[ENV_PUBLICATIONS_TABLE] = publications_table_name(names)
            environment[ENV_PEER_BUS_ARNS] = ",".join(self.peer_bus_arns)
        self.service_environment = environment
        layer = dependencies_layer(self, "Dependencies", bundle=cfg.bundle)
        common = _Common(names=names, environment=environment, layer=layer, key=self.key)
        reserved = cfg.consumer_reserved_concurrency
        self.endpoints = EndpointsService(
            self,
            "Endpoints",
            common=common,
            tables=self.tables,
            checks_queue=q["endpoint_checks_queue"].queue,
            reserved_concurrency=reserved,
            peer_regions=peers,  # endpoint secrets replicated there (ferry/secret_regions.py)
        )
        self.jobs = JobsService(
            self,
            "Jobs",
            common=common,
            tables=self.tables,
            queue=q["jobs_queue"].queue,
            reserved_concurrency=reserved,
        )
        self.projections = ProjectionsService(
            self,
            "Projections",
            common=common,
            tables=self.tables,
            queue=q["projections_queue"].queue,
            reserved_concurrency=reserved,
        )
        self.publisher_dlq = sqs.Queue(
            self,
            "PublisherDlq",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.publisher = Publisher(
            self,
            "Publisher",
            common=common,
            tables=self.tables,
            bus=self.messaging.bus,
            dlq=self.publisher_dlq,
            peer_bus_arns=self.peer_bus_arns,
            subscribe=not cfg.bootstraps(region),
        )
        self.network = Network(self, "Network")
        self.executor = Executor(
            self,
            "Executor",
            vpc=self.network.vpc,
            environment={
                **environment,
                **executor_settings_environment(names.prefix, cfg.lease_seconds),
            },
            image=cfg.executor_image,
            cpu=cfg.executor_cpu,
            memory_mib=cfg.executor_memory_mib,
            max_tasks=cfg.executor_max_tasks,
            queues=[q["executor_queue"].queue, q["validator_queue"].queue],
        )
        self._grant_executor(names)

        self.routes = RoutesService(
            self,
            "Routes",
            common=common,
            tables=self.tables,
            ferry_bus=self.messaging.bus,
            cluster=self.executor.cluster,
            security_group=self.executor.security_group,
            image=cfg.executor_image,
            scanner_environment=environment,
            grant_partner_access=lambda role: self._grant_partner_access(names, role),
            reserved_concurrency=reserved,
            active=active,
        )
        # delivery SLAs: route deadlines run in the scanner's tick; JobSlow on its own schedule
        self.sla = SlaChecks(self, "Sla", common=common, tables=self.tables, active=active)
        # active-active: MRSC tables have no TTL, so an hourly sweep deletes expired items
        self.expiry_sweep = (
            ExpirySweep(self, "ExpirySweep", common=common, tables=self.tables, active=active)
            if cfg.active_active
            else None
        )
        # push matching heads objects with the route's source endpoint's credentials
        if self.routes.push.role is not None:
            self._grant_assume_customer_roles(self.routes.push.role)
        self.notifications = NotificationsService(
            self,
            "Notifications",
            common=common,
            tables=self.tables,
            ferry_bus=self.messaging.bus,
            reserved_concurrency=reserved,
            active=active,
            peer_regions=peers,  # signing secrets replicated there; the MRSC subscriptions
        )
        # issue 11: the checkpoint bucket (Object Lock) and the hourly AuditCheckpoint
        self.audit = AuditTrail(
            self,
            "Audit",
            common=common,
            tables=self.tables,
            key=self.key,
            access_logs=self.storage.access_logs,
            query_api=self.projections.api_function,
            api_functions=[
                self.endpoints.api_function,
                self.jobs.api_function,
                self.projections.api_function,
                self.routes.api_function,
                self.notifications.api_function,
            ],
            active=active,
        )
        # POST /audit/exports: the exports table, the exporter's queue and function
        self.audit_exports = AuditExports(
            self,
            "AuditExports",
            common=common,
            tables=self.tables,
            key=self.key,
            bucket=self.audit.bucket,
            query_api=self.projections.api_function,
        )
        # DELETE /endpoints/{id} refuses while jobs that are not final / enabled routes use it
        self.tables.jobs.grant_read_data(self.endpoints.api_function)
        self.tables.routes.grant_read_data(self.endpoints.api_function)

        self.api = Api(
            self,
            "Api",
            api_name=f"{names.prefix}-api",
            functions={
                self.endpoints.api_function.entry: self.endpoints.api_function,
                self.jobs.api_function.entry: self.jobs.api_function,
                self.projections.api_function.entry: self.projections.api_function,
                self.routes.api_function.entry: self.routes.api_function,
                self.notifications.api_function.entry: self.notifications.api_function,
            },
            rate_limit=cfg.api_rate_limit,
            burst_limit=cfg.api_burst_limit,
            quota_per_day=cfg.api_quota_per_day,
            write_routes=active,
        )

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            key=self.key,
            dashboard_name=f"{names.prefix}-{region}",
            alarm_email=cfg.alarm_email,
        )
        m = self.monitoring
        all_queues = {**q, **self.routes.queues, **self.notifications.queues}
        for attr, fq in all_queues.items():
            cid = "".join(p.capitalize() for p in attr.split("_"))
            m.dlq(cid, fq.dlq)
            m.oldest_message(
                cid,
                fq.queue,
                EXECUTOR_OLDEST_MESSAGE_SECONDS
                if attr == "executor_queue"
                else LAMBDA_QUEUE_OLDEST_MESSAGE_SECONDS,
            )
        m.dlq("Publisher", self.publisher_dlq)
        for cid, fn in self.functions.items():
            m.function(cid, fn)
        m.publisher_lag(self.publisher.function)
        m.job_failure_rate()
        m.access_log_failures()
        m.fargate_task_failures(self.executor.cluster)
        m.widgets(
            queues={attr: fq.queue for attr, fq in all_queues.items()},
            executor_backlog=self.executor.backlog,
        )

        CfnOutput(self, "ApiUrl", value=self.api.api.url)
        CfnOutput(self, "BusArn", value=self.messaging.bus.event_bus_arn)
        CfnOutput(self, "StagingBucket", value=self.storage.staging.bucket_name)
        CfnOutput(self, "AlarmTopic", value=self.monitoring.topic.topic_arn)
        CfnOutput(self, "UsagePlanId", value=self.api.usage_plan.usage_plan_id)
        CfnOutput(
            self,
            "RoutesPushRoleArn",
            value=self.routes.push.role.role_arn if self.routes.push.role else "",
            description="Name it in the trust policy of customer roles (delegated S3 endpoints)",
        )
        CfnOutput(
            self,
            "ExecutorTaskRoleArn",
            value=self.executor.task_definition.task_role.role_arn,
            description="Name it in the trust policy of customer roles (sts:ExternalId condition)",
        )
        CfnOutput(
            self,
            "ScannerTaskRoleArn",
            value=self.routes.scanner_task.task_role.role_arn,
            description="Name it in the trust policy of customer roles (pull routes' S3 sources)",
        )
        suppress(self, names)

    @property
    def functions(self) -> dict:
        return {
            "EndpointsApi": self.endpoints.api_function,
            "EndpointChecks": self.endpoints.checks_consumer,
            "JobsApi": self.jobs.api_function,
            "QueriesApi": self.projections.api_function,
            "ProcessManager": self.jobs.process_manager,
            "ProjectionsConsumer": self.projections.consumer,
            "Publisher": self.publisher.function,
            "RoutesApi": self.routes.api_function,
            "RoutesPush": self.routes.push,
            "RoutesConsumer": self.routes.consumer,
            "NotificationsApi": self.notifications.api_function,
            "NotificationsFanout": self.notifications.fanout,
            "NotificationsDeliver": self.notifications.deliver,
            "AuditCheckpoint": self.audit.function,
            "AuditExporter": self.audit_exports.function,
        }

    def _grant_executor(self, names: n.ResourceNames) -> None:
        role = self.executor.task_definition.task_role
        t = self.tables
        t.events.grant_read_write_data(role)
        t.leases.grant_read_write_data(role)
        for rm in t.read_models:
            rm.grant_read_data(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="NeverWriteReadModels",
                effect=iam.Effect.DENY,
                actions=DDB_WRITE_ACTIONS,
                resources=[rm.table_arn for rm in t.read_models],
            )
        )
        self.storage.staging.grant_read_write(role)
        self.storage.staging.grant_delete(role)
        for attr in ("executor_queue", "validator_queue"):
            self.messaging.queues[attr].queue.grant_consume_messages(role)
        # fair sharing puts a waiting customer's job back as a fresh copy (executor/fairness.py)
        self.messaging.queues["executor_queue"].queue.grant_send_messages(role)
        self._grant_partner_access(names, role)

    def _grant_assume_customer_roles(self, role: iam.IRole) -> None:
        """Delegated S3 access (issue 8): no S3 permission on any customer bucket — every S3
        call for a customer endpoint runs as the customer's own role, assumed with the
        endpoint's Ferry-generated external id (the customer's trust policy names this role
        and requires that id). Same-account buckets without a role are reached only when their
        bucket policy grants this role (and Ferry's tag/setting grant allows the customer)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="AssumeCustomerRoles",
                actions=["sts:AssumeRole"],
                resources=["arn:" + self.partition + ":iam::*:role/*"],
                conditions={"StringLike": {"sts:ExternalId": EXTERNAL_ID_PATTERN}},
            )
        )

    def _grant_partner_access(self, names: n.ResourceNames, role: iam.IRole) -> None:
        """Endpoint secrets and customers' S3 buckets: the executor and the routes scanner."""
        # active-active: the local replica first, the primary in the peer region only while the
        # replica is not there yet (ferry/secret_regions.py)
        peers = self.cfg.peers(self.region) if self.cfg.active_active else ()
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadEndpointSecrets",
                actions=SECRET_READ_ACTIONS,
                resources=[secrets_arn(self, names), *(secrets_arn(self, names, r) for r in peers)],
            )
        )
        for peer in peers:
            role.add_to_principal_policy(
                peer_data_key_via_secrets(
                    self, names, peer, ["kms:Decrypt"], f"DecryptPeerSecrets{region_sid(peer)}"
                )
            )
        self._grant_assume_customer_roles(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="CustomerS3EndpointsKms",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{self.region}.amazonaws.com"}},
            )
        )
