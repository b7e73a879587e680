"""One construct per Ferry service: its Lambdas/task, their triggers and least-privilege grants.

IAM boundaries (tested in tests/infra):
- endpoints API: appends to the event store; *writes* endpoint secrets (create/put), never reads them.
- endpoints verdict consumer: reads and appends endpoint streams (the event store); nothing else.
- jobs API + process manager: append to the event store; read the read models.
- projections (query API + consumer): *read* the event store; only the consumer writes read models.
- publisher: reads the event store's stream, puts events on the bus.
- executor (Fargate): appends to the event store; reads the read models (never writes them);
  reads endpoint secrets; uses the leases table and the staging bucket.
Every Lambda role carries an explicit deny on reading endpoint secrets.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

import ferry.names as n
from ferry.names import ResourceNames
from infra.constructs.api import ENDPOINTS_HANDLER, JOBS_HANDLER, QUERIES_HANDLER
from infra.constructs.functions import FerryFunction
from infra.constructs.multi_region import PUBLICATION_ITEM_ACTIONS
from infra.constructs.tables import Tables, data_key_alias

PROCESS_MANAGER_HANDLER = "services/jobs/process_manager.py:handler"
ENDPOINT_CHECKS_HANDLER = "services/endpoints/consumer.py:handler"
CONSUMER_HANDLER = "services/projections/consumer.py:handler"
PUBLISHER_HANDLER = "events/publisher.py:handler"
EXECUTOR_MODULE = "services.executor"  # python -m services.executor

CONSUMER_TIMEOUT = Duration.seconds(60)
# The endpoints service creates/puts secret values and, to undo a failed command, moves the
# AWSCURRENT stage back or deletes the secret; DescribeSecret shows version ids, never values.
SECRET_WRITE_ACTIONS = [
    "secretsmanager:CreateSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:DescribeSecret",
    "secretsmanager:DeleteSecret",
    "secretsmanager:TagResource",
]
SECRET_READ_ACTIONS = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
# Active-active (ferry/secret_regions.py): each new secret is created with a replica in the
# peer region, and its replicas are removed before it is deleted.
SECRET_REPLICA_ACTIONS = [
    "secretsmanager:ReplicateSecretToRegions",
    "secretsmanager:RemoveRegionsFromReplication",
]
DDB_WRITE_ACTIONS = [
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
]


def secrets_arn(scope: Construct, names: ResourceNames, region: str | None = None) -> str:
    """Every endpoint secret of the deployment in ``region`` (default: the stack's):
    ``<prefix>/endpoints/*``."""
    return Stack.of(scope).format_arn(
        service="secretsmanager",
        region=region,
        resource="secret",
        resource_name=f"{names.secrets_prefix}*",
        arn_format=_colon(),
    )


def peer_data_key_via_secrets(
    scope: Construct, names: ResourceNames, peer: str, actions: list[str], sid: str
) -> iam.PolicyStatement:
    """``actions`` on the peer region's data key (its id is only known in the peer's stack: any
    key there, but only the one behind Ferry's alias), and only through Secrets Manager."""
    return iam.PolicyStatement(
        sid=sid,
        actions=actions,
        resources=[
            Stack.of(scope).format_arn(
                service="kms", region=peer, resource="key", resource_name="*"
            )
        ],
        conditions={
            "StringEquals": {"kms:ViaService": f"secretsmanager.{peer}.amazonaws.com"},
            "ForAnyValue:StringEquals": {"kms:ResourceAliases": data_key_alias(names)},
        },
    )


def _colon() -> ArnFormat:
    return ArnFormat.COLON_RESOURCE_NAME


def secrets_kms_env() -> str:
    """The env var the endpoints service reads its secrets' KMS key from (its settings model)."""
    from services.endpoints.settings import EndpointsSettings

    alias = EndpointsSettings.model_fields["secrets_kms_key_id"].validation_alias
    return str(alias.choices[0])  # type: ignore[union-attr]


def deny_secret_reads(role: iam.IRole | None, *arns: str) -> None:
    assert role is not None
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="NeverReadEndpointSecrets",
            effect=iam.Effect.DENY,
            actions=["secretsmanager:GetSecretValue"],
            resources=list(arns),
        )
    )


def region_sid(region: str) -> str:
    """``us-east-2`` → ``UsEast2`` (a statement id part)."""
    return "".join(part.capitalize() for part in region.split("-"))


def deny_writes(role: iam.IRole | None, tables: list[ddb.ITableV2], sid: str) -> None:
    assert role is not None
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid=sid,
            effect=iam.Effect.DENY,
            actions=DDB_WRITE_ACTIONS,
            resources=[t.table_arn for t in tables],
        )
    )


class _Common:
    def __init__(
        self,
        *,
        names: ResourceNames,
        environment: dict[str, str],
        layer: lambda_.ILayerVersion,
        key: kms.IKey,
    ) -> None:
        self.names = names
        self.environment = environment
        self.layer = layer
        self.key = key

    def function(
        self, scope: Construct, cid: str, entry: str, service: str, **kw: object
    ) -> FerryFunction:
        return FerryFunction(
            scope,
            cid,
            entry=entry,
            service=service,
            environment=self.environment,
            layer=self.layer,
            key=self.key,
            **kw,  # type: ignore[arg-type]
        )


class EndpointsService(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        common: _Common,
        tables: Tables,
        checks_queue: sqs.IQueue,
        reserved_concurrency: int,
        peer_regions: Sequence[str] = (),
    ) -> None:
        """``peer_regions`` (active-active): every new secret gets a replica in each, encrypted
        with that region's data key (same alias); a rotation or retire taken here of an
        endpoint created in a peer region writes the primary there."""
        super().__init__(scope, cid)
        t = tables
        self.api_function = common.function(self, "Api", ENDPOINTS_HANDLER, "endpoints")
        # endpoint secrets are encrypted with the deployment's data key
        self.api_function.add_environment(secrets_kms_env(), common.key.key_arn)
        common.key.grant_encrypt(self.api_function)
        t.events.grant_read_write_data(self.api_function)
        t.api_keys.grant_read_data(self.api_function)
        t.endpoints.grant_read_data(self.api_function)
        t.idempotency.grant_read_write_data(self.api_function)
        arn = secrets_arn(self, common.names)
        peers = [secrets_arn(self, common.names, r) for r in peer_regions]
        self.api_function.add_to_role_policy(
            iam.PolicyStatement(
                sid="WriteEndpointSecrets",
                actions=SECRET_WRITE_ACTIONS + (SECRET_REPLICA_ACTIONS if peers else []),
                resources=[arn, *peers],
            )
        )
        if peer_regions:
            self.api_function.add_environment(n.ENV_SECRETS_REPLICA_REGIONS, ",".join(peer_regions))
            self.api_function.add_environment(
                n.ENV_SECRETS_REPLICA_KMS_KEY_ID, data_key_alias(common.names)
            )
            for peer in peer_regions:
                self.api_function.add_to_role_policy(
                    peer_data_key_via_secrets(
                        self,
                        common.names,
                        peer,
                        ["kms:Encrypt", "kms:GenerateDataKey"],
                        f"EncryptSecretsWithDataKey{region_sid(peer)}",
                    )
                )
        deny_secret_reads(self.api_function.role, arn, *peers)
        # the validator's verdicts (EndpointCheckCompleted) -> EndpointValidated / ...Failed
        self.checks_consumer = common.function(
            self,
            "ChecksConsumer",
            ENDPOINT_CHECKS_HANDLER,
            "endpoints",
            timeout=CONSUMER_TIMEOUT,
            reserved_concurrency=reserved_concurrency,
        )
        t.events.grant_read_write_data(self.checks_consumer)
        deny_secret_reads(self.checks_consumer.role, arn)
        deny_writes(self.checks_consumer.role, t.read_models, "NeverWriteReadModels")
        self.checks_consumer.add_event_source(_sqs_source(checks_queue, reserved_concurrency))


class JobsService(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        common: _Common,
        tables: Tables,
        queue: sqs.IQueue,
        reserved_concurrency: int,
    ) -> None:
        super().__init__(scope, cid)
        t = tables
        arn = secrets_arn(self, common.names)
        self.api_function = common.function(self, "Api", JOBS_HANDLER, "jobs")
        self.process_manager = common.function(
            self,
            "ProcessManager",
            PROCESS_MANAGER_HANDLER,
            "jobs",
            timeout=CONSUMER_TIMEOUT,
            reserved_concurrency=reserved_concurrency,
        )
        for fn in (self.api_function, self.process_manager):
            t.events.grant_read_write_data(fn)
            t.idempotency.grant_read_write_data(fn)
            for rm in t.read_models:
                rm.grant_read_data(fn)
            deny_secret_reads(fn.role, arn)
            deny_writes(fn.role, t.read_models, "NeverWriteReadModels")
        t.api_keys.grant_read_data(self.api_function)
        self.process_manager.add_event_source(_sqs_source(queue, reserved_concurrency))


class ProjectionsService(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        common: _Common,
        tables: Tables,
        queue: sqs.IQueue,
        reserved_concurrency: int,
    ) -> None:
        super().__init__(scope, cid)
        t = tables
        arn = secrets_arn(self, common.names)
        self.api_function = common.function(self, "Api", QUERIES_HANDLER, "projections")
        self.consumer = common.function(
            self,
            "Consumer",
            CONSUMER_HANDLER,
            "projections",
            timeout=CONSUMER_TIMEOUT,
            reserved_concurrency=reserved_concurrency,
        )
        for fn in (self.api_function, self.consumer):
            t.events.grant_read_data(fn)
            deny_secret_reads(fn.role, arn)
            deny_writes(fn.role, [t.events], "NeverWriteTheEventStore")
        t.api_keys.grant_read_data(self.api_function)
        for rm in t.read_models:
            rm.grant_read_data(self.api_function)
            rm.grant_read_write_data(self.consumer)
        self.consumer.add_event_source(_sqs_source(queue, reserved_concurrency))


class Publisher(Construct):
    """Event store stream (the outbox) -> events/publisher.py -> the Ferry bus."""

    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        common: _Common,
        tables: Tables,
        bus: events.IEventBus,
        dlq: sqs.IQueue,
        peer_bus_arns: list[str] | None = None,
        subscribe: bool = True,
    ) -> None:
        """``peer_bus_arns`` (active-active): the other regions' buses; the publisher claims
        each event in the publications table and the winner puts it to every bus.
        ``subscribe=False`` (active-active bootstrap): no trigger on the event store's stream."""
        super().__init__(scope, cid)
        t = tables
        self.function = common.function(
            self, "Function", PUBLISHER_HANDLER, "publisher", timeout=Duration.seconds(60)
        )
        bus.grant_put_events_to(self.function)
        if t.publications is not None:
            role = self.function.role
            assert role is not None
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="PublicationClaims",
                    actions=PUBLICATION_ITEM_ACTIONS,
                    resources=[t.publications.table_arn],
                )
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="PublicationClaimsKey",
                    actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                    resources=[common.key.key_arn],
                )
            )
        if peer_bus_arns:
            role = self.function.role
            assert role is not None
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="PutEventsToPeerBuses",
                    actions=["events:PutEvents"],
                    resources=peer_bus_arns,
                )
            )
        deny_secret_reads(self.function.role, secrets_arn(self, common.names))
        deny_writes(self.function.role, [t.events], "NeverWriteTheEventStore")
        self.dlq = dlq
        if not subscribe:
            return
        self.function.add_event_source(
            sources.DynamoEventSource(
                t.events,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=100,
                max_batching_window=Duration.seconds(1),
                bisect_batch_on_error=True,
                report_batch_item_failures=True,
                retry_attempts=20,
                max_record_age=Duration.days(1),
                parallelization_factor=1,  # per-shard order = per-stream order
                on_failure=sources.SqsDlq(dlq),
            )
        )


def _sqs_source(queue: sqs.IQueue, reserved_concurrency: int) -> sources.SqsEventSource:
    return sources.SqsEventSource(
        queue,
        batch_size=10,
        max_batching_window=Duration.seconds(1),
        report_batch_item_failures=True,
        max_concurrency=max(2, reserved_concurrency) if reserved_concurrency else None,
    )
