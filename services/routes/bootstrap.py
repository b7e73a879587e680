"""Build the routes service's pieces (once per cold start / process start): adapters in,
application / consumers / scanner out. Production adapters are built here when not given."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from events.translate import stream_events
from ferry.api import ApiKeyStore, DynamoKeyStore
from services.routes.application import RoutesApplication
from services.routes.ports import (
    EndpointDirectory,
    JobStatusReader,
    JobSubmitter,
    ObjectInspector,
    RouteDirectory,
    RouteIndex,
    ScanStateStore,
    SourceOpener,
)
from services.routes.push import PushConsumer
from services.routes.readmodel import RoutesProjector, RoutesReadModel
from services.routes.scanner import Scanner, ScannerPolicy
from services.routes.settings import RoutesSettings


@dataclass(frozen=True)
class RoutesService:
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
        from services.routes.adapters import DynamoEndpointDirectory

        endpoints = DynamoEndpointDirectory(settings.endpoints)
    if jobs is None:
        from services.jobs.bootstrap import bootstrap as jobs_bootstrap
        from services.routes.adapters import JobsApplicationSubmitter

        jobs = JobsApplicationSubmitter(jobs_bootstrap(env=env).app)
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
) -> RoutesService:
    """The HTTP side: application, read model and API keys."""
    settings = settings or RoutesSettings()
    app = app or build_application(settings=settings, env=env)
    if read_model is None:
        from services.routes.adapters import DynamoRoutesReadModel

        read_model = DynamoRoutesReadModel(settings.routes)
    keys = keys or DynamoKeyStore(settings.keys)
    return RoutesService(app=app, read_model=read_model, keys=keys, settings=settings)


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


def _directory(settings: RoutesSettings, routes: RouteDirectory | None) -> RouteDirectory:
    if routes is not None:
        return routes
    from services.routes.adapters import DynamoRoutesReadModel

    return DynamoRoutesReadModel(settings.routes)


def _state(settings: RoutesSettings, state: ScanStateStore | None) -> ScanStateStore:
    if state is not None:
        return state
    from services.routes.adapters import DynamoScanStateStore

    return DynamoScanStateStore(settings.scan)


def build_push_consumer(
    *,
    settings: RoutesSettings | None = None,
    app: RoutesApplication | None = None,
    routes: RouteDirectory | None = None,
    objects: ObjectInspector | None = None,
    state: ScanStateStore | None = None,
) -> PushConsumer:
    settings = settings or RoutesSettings()
    app = app or build_application(settings=settings)
    if objects is None:
        from services.routes.adapters import S3ObjectInspector

        objects = S3ObjectInspector()
    return PushConsumer(
        app=app,
        routes=_directory(settings, routes),
        endpoints=app.endpoints,
        objects=objects,
        state=_state(settings, state),
        staging_bucket=settings.staging,
    )


def build_scanner(
    *,
    settings: RoutesSettings | None = None,
    app: RoutesApplication | None = None,
    routes: RouteDirectory | None = None,
    sources: SourceOpener | None = None,
    state: ScanStateStore | None = None,
    job_status: JobStatusReader | None = None,
) -> Scanner:
    settings = settings or RoutesSettings()
    app = app or build_application(settings=settings)
    if sources is None:
        from services.routes.adapters import EndpointSourceOpener

        sources = EndpointSourceOpener(settings.endpoints)
    if job_status is None:
        from services.routes.adapters import DynamoJobStatusReader

        job_status = DynamoJobStatusReader(settings.jobs)
    return Scanner(
        app=app,
        routes=_directory(settings, routes),
        endpoints=app.endpoints,
        sources=sources,
        state=_state(settings, state),
        job_status=job_status,
        policy=ScannerPolicy(dispatch_limit=settings.dispatch_limit),
    )


def tick_messages(settings: RoutesSettings | None = None) -> Iterator[None]:
    """One item per tick message on the tick queue (long poll; messages are deleted)."""
    import boto3

    settings = settings or RoutesSettings()
    if not settings.tick_queue_url:
        raise SystemExit("FERRY_ROUTES_TICK_QUEUE_URL is not set")
    sqs = boto3.client("sqs")
    while True:
        response = sqs.receive_message(
            QueueUrl=settings.tick_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=20
        )
        messages = response.get("Messages", [])
        if not messages:
            time.sleep(0.1)
            continue
        for message in messages:
            sqs.delete_message(
                QueueUrl=settings.tick_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        yield None  # several queued ticks collapse into one
