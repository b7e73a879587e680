"""The Job aggregate: one file transfer requested by a customer, from request to a final state.

Status machine: RECEIVED → QUEUED → RUNNING → VERIFYING → SUCCEEDED | FAILED | CANCELLED, never
backward. A retry keeps the job RUNNING (or VERIFYING, if the failure came after verification)
with the next attempt number and ``next_attempt_at``.

The executor reports through its own Transfer stream; the process manager turns those events into
the commands below. Delivery is at least once and unordered, so every executor-driven command is
idempotent: it returns False and records nothing when the event is a duplicate, stale (an older
attempt) or arrives after a final state.

Cancel is a request honoured at commit points. ``request_cancel`` records JobCancelRequested
(the status stays what it is); the executor reads the job stream before every chunk commit and
before it publishes (rename / multipart completion / copy), so the job's final state follows what
the executor did: LeaseReleased(cancelled) → JobCancelled; LeaseReleased(succeeded) →
JobSucceeded with ``cancel_outcome="too_late"``. A job no executor holds and none started
writing (see :func:`cancellable_at_once`) is cancelled at once, after the request is stored:
any executor that takes the job later sees the request at its first commit point.

Pure: no boto3, no clock, no randomness (the application passes ``next_attempt_at`` in).

Why one module over 400 lines: the status machine, the executor-driven idempotent commands and
the event classes of one aggregate. Stored event topics are this module's path
(``module:Class.Event``): moving the event classes out would change the topic of every stored
event and need a ``register_topic`` alias for each (events/aggregate.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from events import contract as c
from events.aggregate import FerryAggregate
from events.contract import (
    ChunkCommitted,
    FerryEvent,
    JobStatus,
    LeaseAcquired,
    LeaseReleased,
    TransferStarted,
    TransferVerified,
)
from ferry.errors import Conflict

TOO_LATE = "too_late"


class JobError(Conflict):
    """A command the job's current state does not allow (409)."""

    code = "job_conflict"


class JobAlreadyFinal(JobError):
    pass


class JobNotRedrivable(JobError):
    pass


class VerificationPending(JobError):
    """LeaseReleased(succeeded) arrived before TransferVerified: try again later."""


def backoff_seconds(attempt: int, base: float, cap: float, rand: float) -> float:
    """Exponential backoff with full jitter after failed attempt ``attempt`` (1-based).

    ``rand`` is a uniform sample in [0, 1); the delay is in [0, min(cap, base * 2**(attempt-1))].
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    if not 0.0 <= rand <= 1.0:
        raise ValueError("rand must be in [0, 1]")
    ceiling = min(cap, base * (2 ** min(attempt - 1, 62)))
    return rand * ceiling


def cancellable_at_once(transfer_events: list[FerryEvent]) -> bool:
    """From a job's Transfer stream (read strongly consistent, *after* the cancel request was
    stored): True when the job can be CANCELLED right now — no executor holds its lease,
    nothing can have been published, and nothing is left at the target for an executor to
    clean up. Any executor that takes the lease later sees the request at its first commit
    point and releases it cancelled without writing.

    That is: no Transfer stream yet (never leased), or the last lease was released with
    ``retry`` / ``abandoned`` before any leg started (no temp file, multipart upload or staging
    object exists). Everything else — a lease held (even an expired one: its holder may be
    slow rather than dead), a leg started (partial state to clean, or already published), a
    release with succeeded / failed / cancelled — is left to the executor, whose outcome
    decides: CANCELLED after it cleaned up, or SUCCEEDED too_late.
    """
    if not transfer_events:
        return True
    held = False
    outcome: str | None = None
    for seen in transfer_events:
        if isinstance(seen, LeaseAcquired):
            held, outcome = True, None
        elif isinstance(seen, LeaseReleased):
            held, outcome = False, seen.outcome
        elif isinstance(seen, TransferStarted | ChunkCommitted | TransferVerified):
            return False
    return not held and outcome in ("retry", "abandoned")


class Job(FerryAggregate):
    def __init__(
        self,
        customer_id: str,
        correlation_id: str,
        job_id: str,
        spec: dict[str, Any],
        idempotency_key: str,
        request_hash: str,
        actor: str,
        redrive_of: str | None = None,
        route_id: str | None = None,
    ) -> None:
        self.customer_id = customer_id
        self.correlation_id = correlation_id
        self.job_id = job_id
        self.spec = spec
        self.idempotency_key = idempotency_key
        self.request_hash = request_hash
        self.actor = actor
        self.redrive_of = redrive_of
        self.route_id = route_id
        self.status = JobStatus.RECEIVED
        self.attempt = 0
        self.max_attempts = int(spec.get("options", {}).get("max_attempts", 5))
        self.next_attempt_at: datetime | None = None
        self.executor_id: str | None = None
        self.started: set[tuple[int, str]] = set()
        self.verified: dict[str, Any] | None = None
        self.error_code: str | None = None
        self.error_message: str | None = None
        self.redriven_to: str | None = None
        self.cancel_requested = False
        self.cancel_actor: str | None = None
        self.cancel_reason: str | None = None
        self.cancel_outcome: str | None = None

    # -- events: fields from the contract model; each @event body applies it ---------------

    class JobRequested(FerryAggregate.Created):
        contract = c.JobRequested  # applied by __init__

    class JobQueued(FerryAggregate.Event):
        contract = c.JobQueued

    class JobStarted(FerryAggregate.Event):
        contract = c.JobStarted

    class JobVerified(FerryAggregate.Event):
        contract = c.JobVerified

    class JobRetryScheduled(FerryAggregate.Event):
        contract = c.JobRetryScheduled

    class JobSucceeded(FerryAggregate.Event):
        contract = c.JobSucceeded

    class JobFailed(FerryAggregate.Event):
        contract = c.JobFailed

    class JobCancelRequested(FerryAggregate.Event):
        contract = c.JobCancelRequested

    class JobCancelled(FerryAggregate.Event):
        contract = c.JobCancelled

    class JobSlow(FerryAggregate.Event):
        contract = c.JobSlow

    class JobRedriven(FerryAggregate.Event):
        contract = c.JobRedriven

    @event(JobQueued)
    def _queued(self, job_id: str, spec: dict[str, Any], attempt: int) -> None:
        self._advance(JobStatus.QUEUED)
        self.attempt = attempt

    @event(JobStarted)
    def _started(self, job_id: str, attempt: int, executor_id: str) -> None:
        self._advance(JobStatus.RUNNING)
        self.attempt = attempt
        self.executor_id = executor_id
        self.next_attempt_at = None
        self.started.add((attempt, executor_id))

    @event(JobVerified)
    def _verified(
        self,
        job_id: str,
        size: int,
        sha256: str,
        duration_seconds: float,
        throughput_bytes_per_second: float,
    ) -> None:
        self._advance(JobStatus.VERIFYING)
        self.verified = {
            "size": size,
            "sha256": sha256,
            "duration_seconds": duration_seconds,
            "throughput_bytes_per_second": throughput_bytes_per_second,
        }

    @event(JobRetryScheduled)
    def _retry_scheduled(
        self,
        job_id: str,
        spec: dict[str, Any],
        attempt: int,
        next_attempt_at: datetime,
        error_code: str,
        error_message: str,
    ) -> None:
        self._advance(JobStatus.RUNNING)
        self.attempt = attempt
        self.next_attempt_at = next_attempt_at
        self.executor_id = None
        self.error_code = error_code
        self.error_message = error_message

    @event(JobSucceeded)
    def _succeeded(
        self,
        job_id: str,
        size: int,
        sha256: str,
        duration_seconds: float,
        throughput_bytes_per_second: float,
        attempts: int,
        cancel_outcome: str | None,
    ) -> None:
        self._advance(JobStatus.SUCCEEDED)
        self.cancel_outcome = cancel_outcome

    @event(JobFailed)
    def _failed(self, job_id: str, error_code: str, error_message: str, attempts: int) -> None:
        self._advance(JobStatus.FAILED)
        self.error_code = error_code
        self.error_message = error_message

    @event(JobCancelRequested)
    def _cancel_requested(self, job_id: str, actor: str, reason: str | None) -> None:
        self.cancel_requested = True
        self.cancel_actor = actor
        self.cancel_reason = reason

    @event(JobCancelled)
    def _cancelled(self, job_id: str, actor: str, reason: str | None) -> None:
        self._advance(JobStatus.CANCELLED)

    @event(JobRedriven)
    def _redriven(self, job_id: str, new_job_id: str, actor: str) -> None:
        self.redriven_to = new_job_id

    @event(JobSlow)
    def _slow(
        self,
        job_id: str,
        max_duration_seconds: int,
        started_at: datetime,
        running_seconds: float,
    ) -> None:
        self.slow_reported = True

    def report_slow(
        self, max_duration_seconds: int, started_at: datetime, running_seconds: float
    ) -> bool:
        """JobSlow, once per job, only while it is not final (services/jobs/sla.py decides)."""
        if self.is_final or getattr(self, "slow_reported", False):
            return False
        self._slow(
            job_id=self.job_id,
            max_duration_seconds=max_duration_seconds,
            started_at=started_at,
            running_seconds=round(running_seconds, 3),
        )
        return True

    # -- state helpers -----------------------------------------------------------------------

    def _advance(self, to: JobStatus) -> None:
        if self.status.is_final:
            return
        if to.rank >= self.status.rank:
            self.status = to

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    # -- commands: API -----------------------------------------------------------------------

    @classmethod
    def request(
        cls,
        *,
        job_id: UUID,
        customer_id: str,
        spec: dict[str, Any],
        idempotency_key: str,
        request_hash: str,
        actor: str,
        redrive_of: str | None = None,
        route_id: str | None = None,
    ) -> Job:
        """A new job, already queued (JobRequested + JobQueued: save them together)."""
        job = cls._create(
            cls.JobRequested,
            id=job_id,
            customer_id=customer_id,
            correlation_id=str(job_id),
            job_id=str(job_id),
            spec=spec,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            actor=actor,
            redrive_of=redrive_of,
            route_id=route_id,
        )
        job._queued(job_id=job.job_id, spec=spec, attempt=1)
        return job

    def request_cancel(self, actor: str, reason: str | None = None) -> bool:
        """Record the request (JobCancelRequested); False when it was already requested."""
        if self.is_final:
            raise JobAlreadyFinal(f"job is {self.status.value}; it can no longer be cancelled")
        if self.cancel_requested:
            return False
        self._cancel_requested(job_id=self.job_id, actor=actor, reason=reason)
        return True

    def cancel_now(self) -> bool:
        """JobCancelled for a requested cancel whose delivery is impossible (the application
        checked the Transfer stream after the request was stored)."""
        if self.is_final or not self.cancel_requested:
            return False
        self._cancelled(
            job_id=self.job_id, actor=self.cancel_actor or "-", reason=self.cancel_reason
        )
        return True

    def mark_redriven(self, new_job_id: str, actor: str) -> None:
        if self.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise JobNotRedrivable(
                f"job is {self.status.value}; only FAILED or CANCELLED jobs can be redriven"
            )
        if self.redriven_to is not None:
            raise JobNotRedrivable(f"job was already redriven to {self.redriven_to}")
        self._redriven(job_id=self.job_id, new_job_id=new_job_id, actor=actor)

    # -- commands: process manager (idempotent; True when an event was recorded) -------------

    def start(self, attempt: int, executor_id: str) -> bool:
        if self.is_final or self.status == JobStatus.VERIFYING:
            return False
        if attempt < self.attempt or (attempt, executor_id) in self.started:
            return False
        self._started(job_id=self.job_id, attempt=attempt, executor_id=executor_id)
        return True

    def verify(
        self, size: int, sha256: str, duration_seconds: float, throughput_bytes_per_second: float
    ) -> bool:
        if self.is_final or self.verified is not None:
            return False
        self._verified(
            job_id=self.job_id,
            size=size,
            sha256=sha256,
            duration_seconds=duration_seconds,
            throughput_bytes_per_second=throughput_bytes_per_second,
        )
        return True

    def succeed(self) -> bool:
        if self.is_final:
            return False
        if self.verified is None:
            raise VerificationPending("the transfer's verification has not been applied yet")
        self._succeeded(
            job_id=self.job_id,
            attempts=max(self.attempt, 1),
            cancel_outcome=TOO_LATE if self.cancel_requested else None,
            **self.verified,
        )
        return True

    def executor_cancelled(self) -> bool:
        """LeaseReleased(cancelled): the executor stopped before publishing and cleaned up."""
        if self.is_final:
            return False
        self._cancelled(
            job_id=self.job_id, actor=self.cancel_actor or "executor", reason=self.cancel_reason
        )
        return True

    def attempt_failed(
        self,
        attempt: int,
        error_code: str,
        error_message: str,
        transient: bool,
        next_attempt_at: datetime,
    ) -> bool:
        """Schedule the next attempt (transient, attempts left) or fail the job.

        Only a failure of the current (or a newer) attempt counts: a duplicate, or an older
        attempt's failure arriving late, is ignored (after handling, the attempt number has moved
        on or the job is final).
        """
        if self.is_final or attempt < self.attempt:
            return False
        if transient and attempt < self.max_attempts:
            self._retry_scheduled(
                job_id=self.job_id,
                spec=self.spec,
                attempt=attempt + 1,
                next_attempt_at=next_attempt_at,
                error_code=error_code,
                error_message=error_message,
            )
        else:
            self._failed(
                job_id=self.job_id,
                error_code=error_code,
                error_message=error_message,
                attempts=attempt,
            )
        return True
