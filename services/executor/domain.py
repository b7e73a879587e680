"""The Transfer aggregate (one per job), the EndpointCheck aggregate (one per checked endpoint
configuration: the validator's verdict) and the pure rules of the data plane.

Stream: ``events.aggregate.transfer_stream_id(job_id)``; correlation_id = job_id. Events are the
executor's contract events (``events/contract.py``): LeaseAcquired, LeaseRenewed,
TransferStarted, ChunkCommitted, TransferVerified, PostActionCompleted, TransferAttemptFailed,
LeaseReleased. The first LeaseAcquired of a stream is the aggregate's "created" event
(``Transfer.Opened.LeaseAcquired``: same detail-type, a different class only because
eventsourcing needs a created event); every later lease is ``Transfer.LeaseAcquired``.

The lease is the stream itself: LeaseAcquired is appended at the expected version, so two
executors racing for one job conflict in the event store and exactly one wins.

Resume: a leg's chunks are committed independently and out of order (K chunks in flight,
``services/executor/transfer``), so a leg's resume point is the *set* of committed chunk indices:
only the missing ones are moved again. S3 multipart resumes with the same upload id and the
recorded (part number, ETag) pairs. Streams written before chunks went out of order hold
contiguous prefixes, which fold the same way.

Why one module over 400 lines: the Transfer aggregate's event classes and the pure resume rules
that fold them. Stored event topics are this module's path (``module:Class.Event``): moving the
event classes out would change the topic of every stored event and need a ``register_topic``
alias for each (events/aggregate.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from events import contract as c
from events.aggregate import FerryAggregate, transfer_stream_id

MiB = 1024 * 1024
S3_MIN_PART = 5 * MiB
S3_MAX_PARTS = 10_000
S3_MAX_PART = 5 * 1024 * MiB

OUTCOMES = ("succeeded", "failed", "retry", "cancelled", "abandoned")
FINAL_OUTCOMES = ("succeeded", "failed", "cancelled")


class LeaseHeld(Exception):
    """Another executor holds an unexpired lease on this transfer."""

    def __init__(self, owner_id: str, expires_at: datetime) -> None:
        super().__init__(f"lease held by {owner_id} until {expires_at.isoformat()}")
        self.owner_id = owner_id
        self.expires_at = expires_at


class TransferFinished(Exception):
    """The transfer already ended (released succeeded/failed/cancelled)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- chunk planning ---------------------------------------------------------------------------
def plan_chunk_size(size: int, chunk_size: int, *, s3_parts: bool) -> int:
    """The chunk size for a file: the setting, raised to S3's 5 MiB minimum part size when the
    chunks are S3 parts, and grown (whole MiB) so a file never needs more than 10,000 parts."""
    chunk = max(chunk_size, S3_MIN_PART) if s3_parts else chunk_size
    if size > chunk * S3_MAX_PARTS:
        per_part = -(-size // S3_MAX_PARTS)
        chunk = -(-per_part // MiB) * MiB
    return chunk


def chunk_count(size: int, chunk_size: int) -> int:
    """Chunks of a leg; an empty file is one empty chunk (so it still gets a ChunkCommitted)."""
    return max(1, -(-size // chunk_size))


@dataclass
class Chunk:
    index: int
    offset: int
    length: int
    sha256: str
    part_number: int | None = None
    etag: str | None = None


@dataclass
class Leg:
    leg: int
    legs: int
    size: int
    chunk_size: int
    chunk_count: int
    source_version: str | None
    upload_id: str | None
    temp_path: str | None
    committed: dict[int, Chunk] = field(default_factory=dict)

    @property
    def chunks(self) -> list[Chunk]:
        """The committed chunks in index order (there may be holes)."""
        return [self.committed[i] for i in sorted(self.committed)]

    def missing(self) -> list[int]:
        """Indices not committed yet, ascending: what an attempt still has to move."""
        return [i for i in range(self.chunk_count) if i not in self.committed]

    def span(self, index: int) -> tuple[int, int]:
        """(offset, length) of chunk ``index``."""
        offset = index * self.chunk_size
        return offset, max(0, min(self.chunk_size, self.size - offset))

    @property
    def next_index(self) -> int:
        """The first missing index (``chunk_count`` when none is missing)."""
        return next(
            (i for i in range(self.chunk_count) if i not in self.committed), self.chunk_count
        )

    @property
    def next_offset(self) -> int:
        """End of the contiguous committed prefix."""
        return min(self.size, self.next_index * self.chunk_size)

    @property
    def bytes_committed(self) -> int:
        return sum(c.length for c in self.committed.values())

    @property
    def complete(self) -> bool:
        return len(self.committed) >= self.chunk_count

    def parts(self) -> list[dict[str, Any]]:
        return [
            {"PartNumber": c.part_number, "ETag": c.etag}
            for c in self.chunks
            if c.part_number is not None
        ]


# --- the aggregate ---------------------------------------------------------------------------
class Transfer(FerryAggregate):
    """A job's data-plane history: leases, legs, chunks, verification, outcome."""

    job_id: str
    lease_owner: str | None
    lease_expires_at: datetime | None
    lease_held: bool
    attempt: int
    legs: dict[int, Leg]
    verified: dict[str, Any] | None
    post_action_done: bool
    outcome: str | None
    failures: list[dict[str, Any]]
    started_at: datetime | None

    def __init__(
        self,
        job_id: str,
        customer_id: str,
        correlation_id: str,
        owner_id: str,
        region: str,
        expires_at: datetime,
        attempt: int,
        takeover_from: str | None,
    ) -> None:
        """Applies the stream's first LeaseAcquired (``Opened.LeaseAcquired``)."""
        self.customer_id = customer_id
        self.correlation_id = correlation_id
        self._reset(job_id)
        self._take_lease(owner_id, expires_at, attempt)

    def _reset(self, job_id: str) -> None:
        self.job_id = job_id
        self.lease_owner = None
        self.lease_expires_at = None
        self.lease_held = False
        self.attempt = 0
        self.legs = {}
        self.verified = None
        self.post_action_done = False
        self.outcome = None
        self.failures = []
        self.started_at = None

    def _take_lease(self, owner_id: str, expires_at: datetime, attempt: int) -> None:
        self.lease_owner = owner_id
        self.lease_expires_at = expires_at
        self.lease_held = True
        self.attempt = attempt
        self.outcome = None

    # --- events: fields from the contract model; each @event body applies it --------------
    class Opened:
        """Namespace of the created event (eventsourcing needs a distinct created class)."""

        class LeaseAcquired(FerryAggregate.Created):
            contract = c.LeaseAcquired  # applied by __init__

    class LeaseAcquired(FerryAggregate.Event):
        contract = c.LeaseAcquired

    class LeaseRenewed(FerryAggregate.Event):
        contract = c.LeaseRenewed

    class LeaseReleased(FerryAggregate.Event):
        contract = c.LeaseReleased

    class TransferStarted(FerryAggregate.Event):
        contract = c.TransferStarted

    class ChunkCommitted(FerryAggregate.Event):
        contract = c.ChunkCommitted

    class TransferVerified(FerryAggregate.Event):
        contract = c.TransferVerified

    class PostActionCompleted(FerryAggregate.Event):
        contract = c.PostActionCompleted

    class TransferAttemptFailed(FerryAggregate.Event):
        contract = c.TransferAttemptFailed

    @event(LeaseAcquired)
    def _lease_acquired(
        self,
        job_id: str,
        owner_id: str,
        region: str,
        expires_at: datetime,
        attempt: int,
        takeover_from: str | None,
    ) -> None:
        self._take_lease(owner_id, expires_at, attempt)

    @event(LeaseRenewed)
    def _lease_renewed(self, job_id: str, owner_id: str, expires_at: datetime) -> None:
        self.lease_expires_at = expires_at

    @event(LeaseReleased)
    def _lease_released(self, job_id: str, owner_id: str, outcome: str) -> None:
        self.lease_held = False
        self.outcome = outcome

    @event(TransferStarted)
    def _transfer_started(
        self,
        job_id: str,
        flow: str,
        leg: int,
        legs: int,
        size: int,
        chunk_size: int,
        chunk_count: int,
        source_version: str | None,
        upload_id: str | None,
        temp_path: str | None,
        timestamp: datetime | None = None,  # the event's (set by trigger_event)
    ) -> None:
        self.legs[leg] = Leg(
            leg=leg,
            legs=legs,
            size=size,
            chunk_size=chunk_size,
            chunk_count=chunk_count,
            source_version=source_version,
            upload_id=upload_id,
            temp_path=temp_path,
        )
        self.verified = None
        if self.started_at is None:
            self.started_at = timestamp

    @event(ChunkCommitted)
    def _chunk_committed(
        self,
        job_id: str,
        leg: int,
        index: int,
        offset: int,
        length: int,
        sha256: str,
        part_number: int | None,
        etag: str | None,
        bytes_committed: int,
        bytes_total: int,
        chunks_committed: int | None = None,
    ) -> None:
        self.legs[leg].committed[index] = Chunk(index, offset, length, sha256, part_number, etag)

    @event(TransferVerified)
    def _transfer_verified(
        self,
        job_id: str,
        size: int,
        sha256: str,
        verify: str,
        target_checksum: str | None,
        duration_seconds: float,
        throughput_bytes_per_second: float,
    ) -> None:
        self.verified = {
            "size": size,
            "sha256": sha256,
            "duration_seconds": duration_seconds,
            "throughput_bytes_per_second": throughput_bytes_per_second,
        }

    @event(PostActionCompleted)
    def _post_action_completed(self, job_id: str, action: str, moved_to: str | None) -> None:
        self.post_action_done = True

    @event(TransferAttemptFailed)
    def _attempt_failed(
        self,
        job_id: str,
        attempt: int,
        error_code: str,
        error_message: str,
        transient: bool,
        bytes_committed: int,
    ) -> None:
        self.failures.append({"attempt": attempt, "code": error_code, "transient": transient})

    # --- commands ----------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        *,
        job_id: str,
        customer_id: str,
        owner_id: str,
        region: str,
        attempt: int,
        lease_for: timedelta,
        now: datetime | None = None,
    ) -> Transfer:
        expires = (now or utcnow()) + lease_for
        return cls._create(
            cls.Opened.LeaseAcquired,
            id=transfer_stream_id(job_id),
            customer_id=customer_id,
            correlation_id=job_id,
            job_id=job_id,
            owner_id=owner_id,
            region=region,
            expires_at=expires,
            attempt=attempt,
            takeover_from=None,
        )

    @property
    def finished(self) -> bool:
        return not self.lease_held and self.outcome in FINAL_OUTCOMES

    def acquire(
        self,
        *,
        owner_id: str,
        region: str,
        attempt: int,
        lease_for: timedelta,
        now: datetime | None = None,
    ) -> None:
        now = now or utcnow()
        if self.finished:
            raise TransferFinished(f"transfer of job {self.job_id} ended: {self.outcome}")
        takeover: str | None = None
        if self.lease_held and self.lease_owner is not None:
            assert self.lease_expires_at is not None
            if self.lease_owner != owner_id and self.lease_expires_at > now:
                raise LeaseHeld(self.lease_owner, self.lease_expires_at)
            takeover = self.lease_owner
        self._lease_acquired(
            job_id=self.job_id,
            owner_id=owner_id,
            region=region,
            expires_at=now + lease_for,
            attempt=max(attempt, self.attempt),
            takeover_from=takeover,
        )

    def renew(self, *, owner_id: str, lease_for: timedelta, now: datetime | None = None) -> None:
        self._check_owner(owner_id)
        self._lease_renewed(
            job_id=self.job_id,
            owner_id=owner_id,
            expires_at=(now or utcnow()) + lease_for,
        )

    def release(self, *, owner_id: str, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        self._check_owner(owner_id)
        self._lease_released(job_id=self.job_id, owner_id=owner_id, outcome=outcome)

    def start_leg(
        self,
        *,
        flow: str,
        leg: int,
        legs: int,
        size: int,
        chunk_size: int,
        source_version: str | None = None,
        upload_id: str | None = None,
        temp_path: str | None = None,
    ) -> Leg:
        self._transfer_started(
            job_id=self.job_id,
            flow=flow,
            leg=leg,
            legs=legs,
            size=size,
            chunk_size=chunk_size,
            chunk_count=chunk_count(size, chunk_size),
            source_version=source_version,
            upload_id=upload_id,
            temp_path=temp_path,
        )
        return self.legs[leg]

    def commit_chunk(
        self,
        *,
        leg: int,
        offset: int,
        length: int,
        sha256: str,
        part_number: int | None = None,
        etag: str | None = None,
        index: int | None = None,
    ) -> Chunk:
        """Record one chunk durable at the target, in any order. ``index`` defaults to the
        chunk at ``offset``; a chunk is committed once, at its own offset and length."""
        state = self.legs[leg]
        if index is None:
            index = offset // state.chunk_size if state.chunk_size else 0
        if index in state.committed or not 0 <= index < state.chunk_count:
            raise ValueError(f"chunk {index} of leg {leg} is committed already or out of range")
        if (offset, length) != state.span(index):
            raise ValueError(f"chunk {index} is at {state.span(index)}, not ({offset}, {length})")
        self._chunk_committed(
            job_id=self.job_id,
            leg=leg,
            index=index,
            offset=offset,
            length=length,
            sha256=sha256,
            part_number=part_number,
            etag=etag,
            bytes_committed=state.bytes_committed + length,
            bytes_total=state.size,
            chunks_committed=len(state.committed) + 1,
        )
        return state.committed[index]

    def verify(
        self,
        *,
        size: int,
        sha256: str,
        verify: str,
        target_checksum: str | None,
        duration_seconds: float,
    ) -> None:
        self._transfer_verified(
            job_id=self.job_id,
            size=size,
            sha256=sha256,
            verify=verify,
            target_checksum=target_checksum,
            duration_seconds=round(duration_seconds, 6),
            throughput_bytes_per_second=round(size / duration_seconds, 3)
            if duration_seconds > 0
            else 0.0,
        )

    def post_action(self, *, action: str, moved_to: str | None) -> None:
        self._post_action_completed(job_id=self.job_id, action=action, moved_to=moved_to)

    def fail_attempt(self, *, code: str, message: str, transient: bool) -> None:
        self._attempt_failed(
            job_id=self.job_id,
            attempt=self.attempt,
            error_code=code,
            error_message=message[:1000],
            transient=transient,
            bytes_committed=self.bytes_committed,
        )

    @property
    def bytes_committed(self) -> int:
        if not self.legs:
            return 0
        return self.legs[max(self.legs)].bytes_committed

    def _check_owner(self, owner_id: str) -> None:
        if self.lease_owner != owner_id or not self.lease_held:
            raise LeaseHeld(self.lease_owner or "-", self.lease_expires_at or utcnow())


# --- the endpoint validator's verdicts ---------------------------------------------------------
_CHECK_NS = uuid5(NAMESPACE_URL, "https://ferry.invalid/endpoint-check")


def endpoint_check_id(endpoint_id: str, checked_version: int) -> UUID:
    """The stream of the check of one endpoint configuration: deterministic, so a second check
    of the same configuration (a redelivered message, two validators) conflicts in the store."""
    return uuid5(_CHECK_NS, f"{endpoint_id}:{checked_version}")


class EndpointCheck(FerryAggregate):
    """The validator's verdict on one configuration of an endpoint: a stream of exactly one
    event, ``EndpointCheckCompleted``, which the endpoints service applies to the endpoint
    (services/endpoints/consumer.py). correlation_id = endpoint_id."""

    class EndpointCheckCompleted(FerryAggregate.Created):
        contract = c.EndpointCheckCompleted  # applied by __init__

    def __init__(
        self,
        *,
        customer_id: str,
        correlation_id: str,
        endpoint_id: str,
        checked_version: int,
        ok: bool,
        checks: list[str],
        host_key_fingerprint: str | None,
        reason_code: str | None,
        message: str | None,
    ) -> None:
        self.customer_id = customer_id
        self.correlation_id = correlation_id
        self.endpoint_id = endpoint_id
        self.checked_version = checked_version
        self.ok = ok
        self.checks = list(checks)
        self.host_key_fingerprint = host_key_fingerprint
        self.reason_code = reason_code
        self.message = message

    @classmethod
    def complete(
        cls,
        *,
        customer_id: str,
        endpoint_id: str,
        checked_version: int,
        ok: bool,
        checks: list[str],
        host_key_fingerprint: str | None = None,
        reason_code: str | None = None,
        message: str | None = None,
    ) -> EndpointCheck:
        return cls._create(
            cls.EndpointCheckCompleted,
            id=endpoint_check_id(endpoint_id, checked_version),
            customer_id=customer_id,
            correlation_id=endpoint_id,
            endpoint_id=endpoint_id,
            checked_version=checked_version,
            ok=ok,
            checks=list(checks),
            host_key_fingerprint=host_key_fingerprint,
            reason_code=reason_code,
            message=message,
        )
