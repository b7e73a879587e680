"""DynamoDB: the event store, the read models, idempotency, leases and API keys.

Key schemas and GSIs are exactly those of docs/architecture.md ("Read models", "Other tables").
Every table is encrypted with the deployment's customer-managed key, has point-in-time recovery
and deletion protection. With ``global_tables`` the event store and the API keys are DynamoDB
global tables owned by the home region's stack (replicas elsewhere); the read models, idempotency
records and leases stay regional (see infra/README.md for why).

With ``multi_region=active_active`` (docs/multi-region.md) the event store, API keys, endpoints,
idempotency records, leases, the publication claims (``<prefix>-publications``) and the
notifications' subscriptions (``<prefix>-subscriptions``) are DynamoDB
multi-Region strong consistency (MRSC) global tables: owned by the home region's stack, one
replica in the other region and a witness in the third. MRSC supports no TTL, so those tables have
none (expiry is checked by the conditions that read ``expires_at``/``expiration``). The other
tables (jobs, job stats, routes, route scan) stay regional: read models each region rebuilds.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_kms as kms
from aws_cdk import custom_resources as cr
from constructs import Construct

from events.dynamodb import CUSTOMER_TIME_INDEX
from ferry.names import ResourceNames

S = ddb.AttributeType.STRING
N = ddb.AttributeType.NUMBER


def _attr(name: str, type_: ddb.AttributeType = S) -> ddb.Attribute:
    return ddb.Attribute(name=name, type=type_)


class Tables(Construct):
    """All of Ferry's tables in one region."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        key: kms.IKey,
        replica_regions: list[str] | None = None,
        import_global: bool = False,
        witness_region: str | None = None,
        stream_lookup: bool = True,
    ) -> None:
        """``replica_regions``: this stack owns the global tables and replicates them there.
        ``import_global``: the global tables belong to another region's stack; reference the
        local replicas by name. ``witness_region``: active-active; the global tables are MRSC
        (with ``replica_regions``: owned here; with ``import_global``: imported).
        ``stream_lookup=False`` (active-active bootstrap): the imported event store without its
        stream (the home stack has not created the replica yet); ``events_stream_arn`` is ""."""
        super().__init__(scope, construct_id)
        self._key = key

        def regional(
            construct_id: str, encryption: ddb.TableEncryptionV2 | None = None, **kwargs: object
        ) -> ddb.TableV2:
            return ddb.TableV2(
                self,
                construct_id,
                billing=ddb.Billing.on_demand(),
                encryption=encryption or ddb.TableEncryptionV2.customer_managed_key(key),
                point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                deletion_protection=True,
                removal_policy=RemovalPolicy.RETAIN,
                **kwargs,  # type: ignore[arg-type]
            )

        events_kwargs: dict[str, Any] = {
            "table_name": names.events_table,
            "partition_key": _attr("stream_id"),
            "sort_key": _attr("version", N),
            "dynamo_stream": ddb.StreamViewType.NEW_IMAGE,
            # issue 11: every chained event of a customer by time (events/dynamodb.py)
            "global_secondary_indexes": [
                ddb.GlobalSecondaryIndexPropsV2(
                    index_name=CUSTOMER_TIME_INDEX,
                    partition_key=_attr("customer_id"),
                    sort_key=_attr("at_key"),
                )
            ],
        }
        api_keys_kwargs: dict[str, Any] = {
            "table_name": names.api_keys_table,
            "partition_key": _attr("key_hash"),
        }
        mrsc = witness_region is not None
        self.mrsc = mrsc
        self.events: ddb.ITableV2
        self.api_keys: ddb.ITableV2
        self.events_stream_arn: str
        enc: ddb.TableEncryptionV2 | None = None
        replicas = [ddb.ReplicaTableProps(region=r) for r in replica_regions or []]
        strong: dict[str, Any] = (
            {
                "multi_region_consistency": ddb.MultiRegionConsistency.STRONG,
                "witness_region": witness_region,
            }
            if mrsc
            else {}
        )
        if replicas:
            # replicas need a key per region: the same-alias key of each regional stack
            enc = ddb.TableEncryptionV2.customer_managed_key(
                key,
                replica_key_arns={
                    r: Stack.of(self).format_arn(
                        service="kms", region=r, resource="alias", resource_name=_alias(names)
                    )
                    for r in replica_regions or []
                },
            )

        def shared(construct_id: str, **kwargs: Any) -> ddb.ITableV2:
            """A table of the global set: imported (the other region owns it), replicated from
            here, or regional (no global tables)."""
            if import_global:
                return ddb.TableV2.from_table_attributes(
                    self,
                    construct_id,
                    table_name=kwargs["table_name"],
                    encryption_key=key,
                    global_indexes=[
                        g.index_name for g in kwargs.get("global_secondary_indexes", [])
                    ],
                )
            if replicas:
                return regional(construct_id, **kwargs, replicas=replicas, encryption=enc, **strong)
            return regional(construct_id, **kwargs)

        if import_global:
            # The global tables' replicas in this region; the stream ARN is only known at deploy.
            # (active/passive keeps its API-keys import by name only, as before)
            self.api_keys = (
                shared("ApiKeys", **api_keys_kwargs)
                if mrsc
                else ddb.TableV2.from_table_name(self, "ApiKeys", names.api_keys_table)
            )
            self.events_stream_arn = self._replica_stream_arn(names) if stream_lookup else ""
            self.events = ddb.TableV2.from_table_attributes(
                self,
                "EventsReplica",
                table_name=names.events_table,
                table_stream_arn=self.events_stream_arn or None,
                encryption_key=key,
                global_indexes=[CUSTOMER_TIME_INDEX],
            )
        else:
            if replicas:
                self.events = regional(
                    "Events", **events_kwargs, replicas=replicas, encryption=enc, **strong
                )
                self.api_keys = regional(
                    "ApiKeys", **api_keys_kwargs, replicas=replicas, encryption=enc, **strong
                )
            else:
                self.events = regional("Events", **events_kwargs)
                self.api_keys = regional("ApiKeys", **api_keys_kwargs)
            stream_arn = self.events.table_stream_arn
            assert stream_arn is not None
            self.events_stream_arn = stream_arn

        # MRSC (active-active): the endpoints registry, idempotency and leases are shared too
        mrsc_shared = shared if mrsc else regional
        self.endpoints = mrsc_shared(
            "Endpoints",
            table_name=names.endpoints_table,
            partition_key=_attr("endpoint_id"),
            global_secondary_indexes=[
                ddb.GlobalSecondaryIndexPropsV2(
                    index_name="customer-index",
                    partition_key=_attr("customer_id"),
                    sort_key=_attr("created_at"),
                )
            ],
        )
        self.jobs = regional(
            "Jobs",
            table_name=names.jobs_table,
            partition_key=_attr("job_id"),
            global_secondary_indexes=[
                ddb.GlobalSecondaryIndexPropsV2(
                    index_name="customer-created-index",
                    partition_key=_attr("customer_id"),
                    sort_key=_attr("created_at"),
                ),
                ddb.GlobalSecondaryIndexPropsV2(
                    index_name="customer-status-index",
                    partition_key=_attr("customer_status"),
                    sort_key=_attr("created_at"),
                ),
                ddb.GlobalSecondaryIndexPropsV2(
                    index_name="customer-route-index",
                    partition_key=_attr("customer_route"),
                    sort_key=_attr("created_at"),
                ),
                ddb.GlobalSecondaryIndexPropsV2(
                    index_name="customer-route-status-index",
                    partition_key=_attr("customer_route_status"),
                    sort_key=_attr("created_at"),
                ),
                ddb.GlobalSecondaryIndexPropsV2(
                    index_name="customer-source-index",
                    partition_key=_attr("customer_source"),
                    sort_key=_attr("created_at"),
                    projection_type=ddb.ProjectionType.KEYS_ONLY,
                ),
                ddb.GlobalSecondaryIndexPropsV2(
                    index_name="customer-source-status-index",
                    partition_key=_attr("customer_source_status"),
                    sort_key=_attr("created_at"),
                    projection_type=ddb.ProjectionType.KEYS_ONLY,
                ),
                ddb.GlobalSecondaryIndexPropsV2(
                    index_name="customer-target-index",
                    partition_key=_attr("customer_target"),
                    sort_key=_attr("created_at"),
                    projection_type=ddb.ProjectionType.KEYS_ONLY,
                ),
                ddb.GlobalSecondaryIndexPropsV2(
                    index_name="customer-target-status-index",
                    partition_key=_attr("customer_target_status"),
                    sort_key=_attr("created_at"),
                    projection_type=ddb.ProjectionType.KEYS_ONLY,
                ),
            ],
        )
        # jobs per hour (services/projections/stats.py): exactly its _stats_definition
        self.job_stats = regional(
            "JobStats",
            table_name=names.job_stats_table,
            partition_key=_attr("customer_id"),
            sort_key=_attr("hour_shard"),
        )
        # MRSC supports no TTL: expired records stay until overwritten (the conditions compare
        # `expiration` / `expires_at` with now, so an expired record never blocks anything)
        self.idempotency = mrsc_shared(
            "Idempotency",
            table_name=names.idempotency_table,
            partition_key=_attr("id"),
            **_ttl(None if mrsc else "expiration"),
        )
        self.leases = mrsc_shared(
            "Leases",
            table_name=names.leases_table,
            partition_key=_attr("endpoint_id"),
            sort_key=_attr("slot", N),
            **_ttl(None if mrsc else "ttl"),
        )
        # publication claims (active-active): one conditional item per event, so that exactly
        # one region's publisher puts it to every region's bus (docs/multi-region.md)
        self.publications: ddb.ITableV2 | None = (
            shared(
                "Publications",
                table_name=publications_table_name(names),
                partition_key=_attr("pk"),
            )
            if mrsc
            else None
        )

        # webhook/e-mail subscriptions and their deliveries (issue 12: the notifications service
        # creates a regional one itself). Active-active: shared, so that a subscription made in
        # either region is delivered from both, and each delivery attempt's conditional claim
        # makes exactly one region send it (services/notifications/notifier.py)
        self.subscriptions: ddb.ITableV2 | None = (
            shared(
                "Subscriptions",
                table_name=names.subscriptions_table,
                partition_key=_attr("pk"),
                sort_key=_attr("sk"),
            )
            if mrsc
            else None
        )

        # Routes (issue 5): exactly services.routes.adapters.create_tables
        self.routes = regional(
            "Routes",
            table_name=names.routes_table,
            partition_key=_attr("route_id"),
            sort_key=_attr("sk"),
            global_secondary_indexes=[
                ddb.GlobalSecondaryIndexPropsV2(
                    index_name="customer-index",
                    partition_key=_attr("customer_id"),
                    sort_key=_attr("created_at"),
                )
            ],
        )
        self.route_scan = regional(
            "RouteScan",
            table_name=names.route_scan_table,
            partition_key=_attr("route_id"),
            sort_key=_attr("key"),
            # unrouted-object entries (services.routes.adapters.DynamoRouteIndex) expire
            time_to_live_attribute="ttl",
        )

    def _replica_stream_arn(self, names: ResourceNames) -> str:
        """The local replica's stream ARN (only known at deploy): DescribeTable at deploy."""
        describe = cr.AwsCustomResource(
            self,
            "EventsReplicaStream",
            on_update=cr.AwsSdkCall(
                service="DynamoDB",
                action="describeTable",
                parameters={"TableName": names.events_table},
                physical_resource_id=cr.PhysicalResourceId.of(names.events_table),
                output_paths=["Table.LatestStreamArn"],
            ),
            policy=cr.AwsCustomResourcePolicy.from_sdk_calls(
                resources=[
                    Stack.of(self).format_arn(
                        service="dynamodb", resource="table", resource_name=names.events_table
                    )
                ]
            ),
            install_latest_aws_sdk=False,
        )
        return describe.get_response_field("Table.LatestStreamArn")

    @property
    def read_models(self) -> list[ddb.ITableV2]:
        return [self.endpoints, self.jobs, self.job_stats]


def _ttl(attribute: str | None) -> dict[str, Any]:
    return {"time_to_live_attribute": attribute} if attribute else {}


def publications_table_name(names: ResourceNames) -> str:
    """Publication claims (active-active), env FERRY_PUBLICATIONS_TABLE (ferry/names.py)."""
    return names.publications_table


def _alias(names: ResourceNames) -> str:
    return f"{names.prefix}-data"


def data_key_alias(names: ResourceNames) -> str:
    """The alias of the deployment's customer-managed data key (same in every region)."""
    return "alias/" + _alias(names)
