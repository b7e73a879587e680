"""Build the routes service (once per cold start / process start): adapters in, the application
and :class:`RoutesContext` out. Production adapters are built here when not given.

Entry points import this module, never the reverse: ``handlers.py`` (HTTP), ``push.py``
(``build_push_consumer``), ``scanner.py`` (``build_scanner``), ``consumer.py`` (the projector)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events.translate import stream_events
from ferry.api import ApiKeyStore, DynamoKeyStore
from services.routes.application import RoutesApplication
from services.routes.ports import (
    EndpointDirectory,
    JobSubmitter,
    RouteDirectory,
    RouteIndex,
    ScanStateStore,
)
from services.routes.readmodel import RoutesProjector, RoutesReadModel
from services.routes.settings import RoutesSettings


@dataclass(frozen=True)
class RoutesContext:
    """What the routes HTTP entry point needs: the application, its read model, the API keys, the
    settings (push and scanner build their adapters from the same settings)."""

    app: RoutesApplication
    read_model: RoutesReadModel
    keys: ApiKeyStore
    settings: RoutesSettings


def build_application(
    *,
    settings: RoutesSettings | None = None,
    endpoints: EndpointDirectory | None = None,
    jobs: JobSubmitter | None = None,
    index: RouteIndex | None = None,
    env: Any = None,
) -> RoutesApplication:
    settings = settings or RoutesSettings()
    if index is None:
        from services.routes.adapters import DynamoRouteIndex

        index = DynamoRouteIndex(settings.scan)
    if endpoints is None:
        from ferry.endpoint_directory import DynamoEndpointDirectory

        endpoints = DynamoEndpointDirectory(settings.endpoints)
    if jobs is None:
        from services.jobs.api import job_commands
        from services.routes.adapters import JobsApplicationSubmitter

        jobs = JobsApplicationSubmitter(job_commands(env))
    from services.routes.adapters import DynamoRoutesReadModel

    listed = DynamoRoutesReadModel(settings.routes)
    return RoutesApplication(
        endpoints=endpoints,
        jobs=jobs,
        staging_bucket=settings.staging,
        index=index,
        env=env,
        listed_names=lambda customer: [
            (str(i["route_id"]), str(i.get("name"))) for i in listed.routes_of(customer)
        ],
    )


def bootstrap(
    *,
    settings: RoutesSettings | None = None,
    app: RoutesApplication | None = None,
    read_model: RoutesReadModel | None = None,
    keys: ApiKeyStore | None = None,
    env: Any = None,
) -> RoutesContext:
    """The HTTP side: application, read model and API keys."""
    settings = settings or RoutesSettings()
    app = app or build_application(settings=settings, env=env)
    if read_model is None:
        from services.routes.adapters import DynamoRoutesReadModel

        read_model = DynamoRoutesReadModel(settings.routes)
    keys = keys or DynamoKeyStore(settings.keys)
    return RoutesContext(app=app, read_model=read_model, keys=keys, settings=settings)


def build_projector(
    *,
    settings: RoutesSettings | None = None,
    read_model: RoutesReadModel | None = None,
    app: RoutesApplication | None = None,
) -> RoutesProjector:
    settings = settings or RoutesSettings()
    if read_model is None:
        from services.routes.adapters import DynamoRoutesReadModel

        read_model = DynamoRoutesReadModel(settings.routes)
    store = app or build_application(settings=settings)
    return RoutesProjector(
        read_model, lambda stream_id: stream_events(store.aggregate_recorder, stream_id)
    )


def route_directory(settings: RoutesSettings, routes: RouteDirectory | None) -> RouteDirectory:
    if routes is not None:
        return routes
    from services.routes.adapters import DynamoRoutesReadModel

    return DynamoRoutesReadModel(settings.routes)


def scan_state(settings: RoutesSettings, state: ScanStateStore | None) -> ScanStateStore:
    if state is not None:
        return state
    from services.routes.adapters import DynamoScanStateStore

    return DynamoScanStateStore(settings.scan)
