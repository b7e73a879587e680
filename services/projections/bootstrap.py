"""Build the projections service from adapters (production defaults inside; nothing at import):
adapters in, :class:`ProjectionsContext` out. Entry points (handlers, consumer, rebuild) import
this module, never the reverse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import AggregateRecorder, InfrastructureFactory

from ferry.api import ApiKeyStore
from services.projections.application import Projector, Queries, ReadModelStore
from services.projections.settings import ProjectionsSettings


@dataclass(frozen=True)
class ProjectionsContext:
    """What the projections entry points need: the projector (consumer, rebuild), the queries
    (HTTP), the API keys, the settings."""

    projector: Projector
    queries: Queries
    keys: ApiKeyStore
    settings: ProjectionsSettings | None = None


def event_store_recorder(settings: ProjectionsSettings) -> AggregateRecorder:
    """The event store's aggregate recorder, through the persistence module (PERSISTENCE_MODULE)."""
    factory: Any = InfrastructureFactory.construct(settings.persistence_env())
    return factory.aggregate_recorder()


def bootstrap(
    *,
    settings: ProjectionsSettings | None = None,
    store: ReadModelStore | None = None,
    recorder: AggregateRecorder | None = None,
    keys: ApiKeyStore | None = None,
    dynamodb_client: Any = None,
) -> ProjectionsContext:
    settings = settings or ProjectionsSettings()
    if store is None or keys is None:
        import boto3

        from ferry.api import DynamoKeyStore
        from services.projections.adapters import DynamoReadModelStore

        client = dynamodb_client or boto3.client("dynamodb", region_name=settings.region)
        if store is None:
            store = DynamoReadModelStore(
                client,
                endpoints_table=settings.endpoints_table,
                jobs_table=settings.jobs_table,
                job_stats_table=settings.job_stats_table,
            )
        if keys is None:
            keys = DynamoKeyStore(settings.api_keys_table, client=client)
    if recorder is None:
        recorder = event_store_recorder(settings)
    return ProjectionsContext(
        projector=Projector(store, recorder),
        queries=Queries(store, recorder),
        keys=keys,
        settings=settings,
    )
