"""JobSlow: a job that declared ``options.max_duration`` and is still not final that long after
it first started emits JobSlow, once (the job goes on: a warning, not a timeout).

How it is found without scanning every job: when a job with a max_duration starts
(LeaseAcquired → JobStarted, in the jobs process manager), its due time — the start event's
time plus max_duration — goes on the slow watch (:class:`SlowWatch`: per-minute buckets on the
idempotency table, ``services.jobs.adapters.DynamoSlowWatch``). Ferry's scheduler runs
:meth:`SlowJobChecker.check` every minute (AWS: an EventBridge Scheduler schedule invokes
:func:`services.jobs.slow_check.handler`; locally ``python -m services.jobs.slow_check`` is
the stand-in loop): it takes every
bucket up to now — also the ones a late or missed run left — and decides from the job's own
events (its first JobStarted's time), not from when the check runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from aws_lambda_powertools import Logger
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from events.contract import JobStarted
from events.translate import stream_events
from services.jobs.application import JobsApplication
from services.jobs.domain import Job
from services.jobs.requests import duration_seconds

logger = Logger(service="ferry-jobs-sla")


def max_duration_of(spec: dict[str, Any]) -> int | None:
    raw = (spec.get("options") or {}).get("max_duration")
    return None if raw is None else duration_seconds(raw)


class SlowWatch(ABC):
    """Jobs to look at when their max_duration is up (bucketed by minute)."""

    @abstractmethod
    def watch(self, job_id: str, due_at: datetime) -> None: ...

    @abstractmethod
    def due(self, now: datetime) -> list[tuple[int, list[str]]]:
        """(minute bucket, job ids) of every bucket not yet done whose minute has passed."""

    @abstractmethod
    def done(self, bucket: int) -> None:
        """Every job of the bucket was looked at."""

    def checked_until(self, bucket: int) -> None:  # noqa: B027 - optional (a cursor)
        """Every bucket up to ``bucket`` was looked at (the next run starts after it)."""


def minute_of(when: datetime) -> int:
    return int(when.timestamp() // 60)


class SlowJobChecker:
    def __init__(
        self,
        app: JobsApplication,
        watch: SlowWatch,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.app = app
        self.watch = watch
        self.clock = clock

    def started(self, job_id: str) -> bool:
        """A job started: watched (due at its first JobStarted's time + max_duration) if it
        declared a max_duration. Idempotent (a redelivered start adds nothing new)."""
        try:
            job: Job = self.app.repository.get(UUID(job_id))
        except (AggregateNotFoundError, ValueError):
            return False
        limit = max_duration_of(job.spec)
        if limit is None or job.is_final:
            return False
        started = self._first_start(job_id)
        if started is None:
            return False
        self.watch.watch(job_id, started + timedelta(seconds=limit))
        return True

    def check(self, now: datetime | None = None) -> list[str]:
        """Every due bucket: JobSlow for each of its jobs that is still not final (once).
        Returns the job ids that got JobSlow."""
        now = now or self.clock()
        slow: list[str] = []
        for bucket, job_ids in self.watch.due(now):
            for job_id in job_ids:
                try:
                    if self._check_one(job_id, now):
                        slow.append(job_id)
                except Exception:  # one broken job must not stop the others
                    logger.exception("slow check failed", job_id=job_id)
                    return slow  # the bucket stays: looked at again on the next run
            self.watch.done(bucket)
        self.watch.checked_until(minute_of(now) - 1)
        return slow

    def _check_one(self, job_id: str, now: datetime) -> bool:
        for _ in range(5):
            try:
                job: Job = self.app.repository.get(UUID(job_id))
            except AggregateNotFoundError:
                return False
            limit = max_duration_of(job.spec)
            started = self._first_start(job_id)
            if limit is None or started is None or job.is_final:
                return False
            running = (now - started).total_seconds()
            if running < limit:
                self.watch.watch(job_id, started + timedelta(seconds=limit))  # not yet
                return False
            if not job.report_slow(limit, started, running):
                return False  # reported already
            try:
                self.app.save(job)
            except IntegrityError:
                continue  # the job changed meanwhile (it may have finished): decide again
            logger.warning("job slow", job_id=job_id, running_seconds=round(running, 1))
            return True
        return False

    def _first_start(self, job_id: str) -> datetime | None:
        for event in stream_events(self.app.recorder, job_id):
            if isinstance(event, JobStarted):
                return event.occurred_at
        return None
