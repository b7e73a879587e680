"""Build the jobs service once per cold start / process start: adapters in, application out.

Every adapter is a keyword argument; what is not given is built here from the settings
(DynamoDB tables on AWS or on the local moto server, wherever AWS_ENDPOINT_URL points).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ferry.api import ApiKeyStore, DynamoKeyStore
from ferry.daily_bytes import DeliveredBytes
from services.jobs.application import JobsApplication, JobsPolicy
from services.jobs.ports import EndpointDirectory, IdempotencyStore, QueuedJobs, SourceIdentity
from services.jobs.settings import JobsSettings


@dataclass(frozen=True)
class JobsContext:
    """What the jobs entry points need: the application, the API keys, the settings."""

    app: JobsApplication
    keys: ApiKeyStore
    settings: JobsSettings


def policy_from(settings: JobsSettings) -> JobsPolicy:
    return JobsPolicy(
        dedupe_window_seconds=settings.jobs_dedupe_window_seconds,
        idempotency_key_ttl_seconds=settings.jobs_idempotency_key_ttl_seconds,
        retry_base_seconds=settings.jobs_retry_base_seconds,
        retry_cap_seconds=settings.jobs_retry_cap_seconds,
        max_save_attempts=settings.jobs_max_save_attempts,
        queued_limit=settings.jobs_queued_limit,
        queued_limit_overrides=dict(settings.jobs_queued_limit_overrides),
        queued_retry_after_seconds=settings.jobs_queued_retry_after_seconds,
        daily_bytes_limit=settings.jobs_daily_bytes_limit,
        daily_bytes_limit_overrides=dict(settings.jobs_daily_bytes_limit_overrides),
    )


def bootstrap(
    *,
    settings: JobsSettings | None = None,
    endpoints: EndpointDirectory | None = None,
    idempotency: IdempotencyStore | None = None,
    keys: ApiKeyStore | None = None,
    env: dict[str, str] | None = None,
    clock: Callable[[], datetime] | None = None,
    rand: Callable[[], float] = random.random,
    sources: SourceIdentity | None = None,
    queued: QueuedJobs | None = None,
    daily_bytes: DeliveredBytes | None = None,
) -> JobsContext:
    """The jobs application and the API key store, with production adapters by default.

    ``env`` goes to eventsourcing (PERSISTENCE_MODULE etc.; the process environment otherwise).
    ``sources`` looks up the source's identity for the automatic dedupe key (default: S3
    HeadObject / SFTP stat through the executor's endpoint access). ``queued`` counts a
    customer's waiting jobs for the queued-jobs limit (default: the jobs read model, built
    with the other production adapters; in-memory wiring has no limit unless it is given).
    ``daily_bytes`` reads a customer's bytes delivered today for the bytes-per-day limit
    (default: the job-stats table, likewise, when a limit is set).
    """
    settings = settings or JobsSettings()
    if sources is None:
        from services.jobs.adapters import EndpointSourceIdentity

        sources = EndpointSourceIdentity(settings.endpoints_table)
    if endpoints is None or idempotency is None or keys is None:
        from ferry.endpoint_directory import DynamoEndpointDirectory
        from services.jobs.adapters import DynamoIdempotencyStore

        if endpoints is None:
            endpoints = DynamoEndpointDirectory(settings.endpoints_table)
        if idempotency is None:
            idempotency = DynamoIdempotencyStore(settings.idempotency_table)
        if keys is None:
            keys = DynamoKeyStore(settings.api_keys_table)
        if queued is None:
            from services.jobs.adapters import DynamoQueuedJobs

            queued = DynamoQueuedJobs(settings.jobs_table)
        limited = settings.jobs_daily_bytes_limit is not None or any(
            settings.jobs_daily_bytes_limit_overrides.values()
        )
        if daily_bytes is None and limited:  # no client (cold start) while nobody has a limit
            from ferry.daily_bytes import DynamoDailyBytes

            daily_bytes = DynamoDailyBytes(settings.job_stats_table)
    app = JobsApplication(
        endpoints=endpoints,
        idempotency=idempotency,
        policy=policy_from(settings),
        clock=clock,
        rand=rand,
        env=env,
        sources=sources,
        queued=queued,
        daily_bytes=daily_bytes,
    )
    return JobsContext(app=app, keys=keys, settings=settings)
