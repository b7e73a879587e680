"""Builds the executor from adapters (production defaults inside)."""

from __future__ import annotations

import threading
from typing import Any

from services.executor.adapters import DynamoJobStatus, DynamoSemaphore, EndpointAccess, SqsQueue
from services.executor.application import TransferApplication
from services.executor.settings import ExecutorSettings
from services.executor.worker import Executor


def bootstrap(
    settings: ExecutorSettings | None = None,
    *,
    app: TransferApplication | None = None,
    endpoints: Any = None,
    semaphore: Any = None,
    job_status: Any = None,
    queue: Any = None,
    stop_event: threading.Event | None = None,
) -> Executor:
    settings = settings or ExecutorSettings()
    if app is None:
        env: dict[str, str] = {}
        if settings.persistence_module:
            env["PERSISTENCE_MODULE"] = settings.persistence_module
            env["FERRY_EVENTS_TABLE"] = settings.table("events")
        app = TransferApplication(env=env)
    if endpoints is None:
        from services.executor.endpoint_access import DynamoEndpointDirectory, SecretsReader

        endpoints = EndpointAccess(
            DynamoEndpointDirectory(settings.table("endpoints")),
            SecretsReader(),
            sftp_timeout=settings.sftp_timeout,
        )
    return Executor(
        settings=settings,
        app=app,
        endpoints=endpoints,
        semaphore=semaphore or DynamoSemaphore(settings.table("leases")),
        job_status=job_status or DynamoJobStatus(settings.table("jobs")),
        queue=queue or SqsQueue(settings.queue_url),
        stop_event=stop_event,
    )
