"""Build the executor from adapters (production defaults inside): adapters in,
:class:`ExecutorContext` out; :func:`build_executor` makes the worker loop of a context.

Entry points (``__main__``) import this module, never the reverse."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from services.executor.adapters import DynamoJobStatus, DynamoSemaphore, EndpointAccess, SqsQueue
from services.executor.application import TransferApplication
from services.executor.settings import ExecutorSettings
from services.executor.worker import Executor


@dataclass(frozen=True)
class ExecutorContext:
    """What the executor needs: the application, its adapters (endpoint access, the per-endpoint
    semaphore, the jobs read model, the queue), the settings."""

    app: TransferApplication
    endpoints: Any
    semaphore: Any
    job_status: Any
    queue: Any
    settings: ExecutorSettings


def bootstrap(
    settings: ExecutorSettings | None = None,
    *,
    app: TransferApplication | None = None,
    endpoints: Any = None,
    semaphore: Any = None,
    job_status: Any = None,
    queue: Any = None,
) -> ExecutorContext:
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
    return ExecutorContext(
        app=app,
        endpoints=endpoints,
        semaphore=semaphore or DynamoSemaphore(settings.table("leases")),
        job_status=job_status or DynamoJobStatus(settings.table("jobs")),
        queue=queue or SqsQueue(settings.queue_url),
        settings=settings,
    )


def build_executor(
    context: ExecutorContext, *, stop_event: threading.Event | None = None
) -> Executor:
    """The worker loop over a bootstrapped context (stops when ``stop_event`` is set)."""
    return Executor(
        settings=context.settings,
        app=context.app,
        endpoints=context.endpoints,
        semaphore=context.semaphore,
        job_status=context.job_status,
        queue=context.queue,
        stop_event=stop_event,
    )
