"""Projections: apply published events to read models (``Projector``) and answer queries
(``Queries``). Storage is behind the small ``ReadModelStore`` port (adapters.py); the event store
is an eventsourcing ``AggregateRecorder`` (catch-up after a gap, the two /events routes).

Why one module over 400 lines: the projector (write side) and the queries (read side) of the
same read models, sharing the ``ReadModelStore`` port and the item shapes. Splitting them into a
projector module and a queries module (with re-exports here) is the natural next step; it was
not done in issue 13.
"""

from __future__ import annotations

import base64
import binascii
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import AggregateRecorder
from pydantic import BaseModel, Field

from events.aggregate import transfer_stream_id
from events.contract import EndpointRegistered, FerryEvent, JobRequested, JobStatus
from events.translate import audit_record, merge_in_time_order, to_integration
from ferry.errors import BadRequest, Invalid, NotFound
from services.projections import readmodels
from services.projections.readmodels import ENDPOINTS, JOBS, Item
from services.projections.tables import (
    ENDPOINTS_CUSTOMER_INDEX,
    JOBS_CUSTOMER_CREATED_INDEX,
    JOBS_CUSTOMER_STATUS_INDEX,
)

# --------------------------------------------------------------------------- the port


class ConcurrentUpdate(Exception):
    """A conditional write lost: another consumer changed the item since it was read."""


class CatchUpIncomplete(Exception):
    """The event store does not (yet) hold the events of a gap; the message is retried."""


@dataclass(frozen=True)
class IndexQuery:
    """Items of one partition of a read model's GSI (sort key ``created_at``)."""

    kind: str
    index: str
    partition_attribute: str
    partition_value: str
    limit: int
    since: str | None = None
    until: str | None = None
    start_key: dict[str, str] | None = None
    newest_first: bool = True


@dataclass(frozen=True)
class Page:
    items: list[Item]
    last_key: dict[str, str] | None


class ReadModelStore(ABC):
    """Read-model items by kind ("endpoints" | "jobs"), key, and GSI partition."""

    @abstractmethod
    def get(self, kind: str, key: str) -> Item | None: ...

    @abstractmethod
    def put(self, kind: str, item: Item, expected: dict[str, int] | None) -> None:
        """Write ``item`` (top-level None values are dropped). ``expected`` None: the item must
        not exist; else each version attribute must still have the given value. Raises
        ``ConcurrentUpdate`` otherwise."""

    def get_many(self, kind: str, keys: Iterable[str]) -> dict[str, Item]:
        """The existing items among ``keys`` (strongly consistent, like ``get``), by key. One
        round trip where the store can (DynamoDB BatchGetItem); this default asks one by one."""
        found = {}
        for key in keys:
            item = self.get(kind, key)
            if item is not None:
                found[key] = item
        return found

    @abstractmethod
    def query(self, query: IndexQuery) -> Page: ...

    @abstractmethod
    def scan(self, kind: str) -> list[Item]:
        """Every item (tests and rebuild checks)."""


def strip_none(item: Item) -> Item:
    return {k: v for k, v in item.items() if v is not None}


# --------------------------------------------------------------------------- projector


def _stream_key(stream_id: str) -> UUID | str:
    try:
        return UUID(stream_id)
    except ValueError:
        return stream_id


@dataclass(frozen=True)
class Delivery:
    """One delivered record of a batch: its id (the SQS messageId) and its event."""

    record_id: str
    event: FerryEvent


@dataclass
class ItemOutcome:
    """What ``Projector.apply_item`` did to one read-model item."""

    kind: str
    key: str
    record_ids: list[str]
    applied: int = 0  # events folded in (delivered and caught up)
    caught_up: int = 0  # of which read from the event store (a gap)
    duplicates: int = 0  # delivered events at or below the applied version, or repeated
    conflicts: int = 0  # conditional writes lost (then re-read and re-applied)
    written: bool = False
    error: Exception | None = None


@dataclass
class BatchOutcome:
    items: list[ItemOutcome] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # record ids without a read model
    read_errors: list[str] = field(default_factory=list)  # get_many failures (then per item)

    @property
    def failed(self) -> list[str]:
        """Record ids of the groups that failed (exactly those records)."""
        return [r for i in self.items if i.error is not None for r in i.record_ids]


_UNREAD = object()


class Projector:
    """Applies each stream's events to its read model once and in version order."""

    def __init__(
        self, store: ReadModelStore, recorder: AggregateRecorder | None, max_conflicts: int = 20
    ):
        self.store = store
        self.recorder = recorder
        self.max_conflicts = max_conflicts

    def handle(self, event: FerryEvent) -> str:
        """Apply one delivered event: "applied", "caught_up" (a gap was filled from the event
        store), "duplicate" (at or below the applied version) or "ignored" (no read model)."""
        target = readmodels.target_of(event)
        if target is None:
            return "ignored"
        kind, key, version_attribute = target
        for _ in range(self.max_conflicts):
            item = self.store.get(kind, key)
            last = int(item.get(version_attribute, 0)) if item else 0
            if event.version <= last:
                return "duplicate"
            batch = [event] if event.version == last + 1 else self._missing(event, last)
            try:
                self._write(kind, item, batch)
            except ConcurrentUpdate:
                continue
            return "applied" if len(batch) == 1 else "caught_up"
        raise ConcurrentUpdate(f"gave up on {kind}/{key} after {self.max_conflicts} conflicts")

    def apply_stream(self, events: Sequence[FerryEvent]) -> int:
        """Apply one stream's published events (in version order: the whole stream, as in a
        rebuild, or a suffix of it) in one conditional write; returns the events applied."""
        if not events:
            return 0
        target = readmodels.target_of(events[0])
        if target is None:
            return 0
        kind, key, version_attribute = target
        for _ in range(self.max_conflicts):
            item = self.store.get(kind, key)
            last = int(item.get(version_attribute, 0)) if item else 0
            batch = [e for e in events if e.version > last]
            if not batch:
                return 0
            try:
                self._write(kind, item, batch)
            except ConcurrentUpdate:
                continue
            return len(batch)
        raise ConcurrentUpdate(f"gave up on {kind}/{key} after {self.max_conflicts} conflicts")

    def handle_batch(self, deliveries: Sequence[Delivery]) -> BatchOutcome:
        """Apply one delivered batch (an SQS batch, any size) item by item: the deliveries are
        grouped by target read-model item; per item one read (all items of a kind are read in
        one ``get_many`` up front), every event of the group folded in stream order, one
        conditional write (``apply_item``). A group that fails (gap not in the event store yet,
        conflicts without end, a store error) fails exactly its own deliveries; the other
        groups are applied. Deliveries without a read model are ignored (they succeed)."""
        groups: dict[tuple[str, str], list[Delivery]] = {}
        ignored: list[str] = []
        for delivery in deliveries:
            target = readmodels.target_of(delivery.event)
            if target is None:
                ignored.append(delivery.record_id)
            else:
                groups.setdefault(target[:2], []).append(delivery)
        prefetched: dict[str, dict[str, Item]] = {}
        read_errors: list[str] = []
        for kind in dict.fromkeys(kind for kind, _ in groups):
            try:
                prefetched[kind] = self.store.get_many(kind, [k for t, k in groups if t == kind])
            except Exception as error:  # each group then reads (and fails) on its own
                read_errors.append(f"{kind}: {type(error).__name__}: {error}")
        outcome = BatchOutcome(ignored=ignored, read_errors=read_errors)
        for (kind, key), group in groups.items():
            result = ItemOutcome(kind=kind, key=key, record_ids=[d.record_id for d in group])
            current = prefetched[kind].get(key) if kind in prefetched else _UNREAD
            try:
                self.apply_item([d.event for d in group], current, result)
            except Exception as error:  # reported as this group's failure
                result.error = error
            outcome.items.append(result)
        return outcome

    def apply_item(
        self,
        events: Sequence[FerryEvent],
        current: Item | object | None = _UNREAD,
        outcome: ItemOutcome | None = None,
    ) -> ItemOutcome:
        """Apply delivered events of ONE read-model item (one or two streams, any order,
        duplicates allowed) in one conditional write. Per stream: sort by version, drop
        repeats and versions at or below the item's applied version; if what remains does not
        follow on from it without a gap, read the whole missing range from the event store
        (one read per stream, ``CatchUpIncomplete`` if it is not there yet). ``current`` is the
        item as already read (None: absent); omit it to read here. A conditional-write
        conflict re-reads and re-applies, at most ``max_conflicts`` times."""
        items = {t[:2] if t else None for t in map(readmodels.target_of, events)}
        if len(items) != 1 or None in items:
            raise ValueError(f"events of one read-model item expected, got {items}")
        kind, key = next(t for t in items if t is not None)
        outcome = outcome or ItemOutcome(kind=kind, key=key, record_ids=[])
        streams: dict[str, dict[int, FerryEvent]] = {}  # version attribute -> version -> event
        stream_ids: dict[str, str] = {}
        for event in events:
            target = readmodels.target_of(event)
            assert target is not None
            attribute = target[2]
            if stream_ids.setdefault(attribute, event.stream_id) != event.stream_id:
                raise ValueError(f"{kind}/{key}: two streams feed {attribute}")
            streams.setdefault(attribute, {}).setdefault(event.version, event)
        item = self.store.get(kind, key) if current is _UNREAD else current
        for attempt in range(self.max_conflicts):
            if attempt:
                item = self.store.get(kind, key)
            assert item is None or isinstance(item, dict)
            batch: list[FerryEvent] = []
            outcome.caught_up = 0
            fresh = 0
            for attribute, by_version in streams.items():
                last = int(item.get(attribute, 0)) if item else 0
                versions = sorted(v for v in by_version if v > last)
                fresh += len(versions)
                if not versions:
                    continue
                if versions == list(range(last + 1, versions[-1] + 1)):
                    batch.extend(by_version[v] for v in versions)
                else:
                    batch.extend(self._missing(by_version[versions[-1]], last))
                    outcome.caught_up += versions[-1] - last - len(versions)
            outcome.duplicates = len(events) - fresh
            outcome.applied = len(batch)
            if not batch:
                return outcome
            try:
                self._write(kind, item, batch)
            except ConcurrentUpdate:
                outcome.conflicts += 1
                continue
            outcome.written = True
            return outcome
        raise ConcurrentUpdate(f"gave up on {kind}/{key} after {self.max_conflicts} conflicts")

    def _write(self, kind: str, item: Item | None, batch: Sequence[FerryEvent]) -> None:
        new = item
        for event in batch:
            new = readmodels.fold(new, event)
        assert new is not None
        expected = (
            None
            if item is None
            else {a: int(item.get(a, 0)) for a in readmodels.VERSION_ATTRIBUTES[kind]}
        )
        self.store.put(kind, new, expected)

    def _missing(self, event: FerryEvent, last: int) -> list[FerryEvent]:
        """Events last+1..event.version of the event's stream, read from the event store."""
        if self.recorder is None:
            raise CatchUpIncomplete(f"no event store to fill the gap before {event.stream_id}")
        stored = self.recorder.select_events(
            _stream_key(event.stream_id), gt=last, lte=event.version
        )
        versions = [s.originator_version for s in stored]
        if versions != list(range(last + 1, event.version + 1)):
            raise CatchUpIncomplete(
                f"stream {event.stream_id}: expected versions {last + 1}..{event.version}, "
                f"the event store has {versions}"
            )
        # Internal (unpublished) events, if any ever exist, are skipped.
        return [e for e in (to_integration(s) for s in stored) if e is not None]


# --------------------------------------------------------------------------- queries (DTOs)


class Location(BaseModel):
    endpoint_id: str
    path: str


class EndpointView(BaseModel):
    endpoint_id: str
    name: str | None = None
    type: str | None = None
    direction: str | None = None
    max_concurrency: int | None = None
    status: str | None = None
    status_reason: str | None = None
    config: dict[str, Any] = {}
    secret_arn: str | None = None
    host_key_fingerprint: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    validated_at: str | None = None
    version: int = 0


class JobView(BaseModel):
    job_id: str
    status: str | None = None
    flow: str | None = None
    source: Location | None = None
    target: Location | None = None
    options: dict[str, Any] = {}
    attempt: int | None = None
    max_attempts: int | None = None
    bytes_total: int | None = None
    bytes_committed: int | None = None
    chunks_committed: int | None = None
    chunk_count: int | None = None
    leg: int | None = None
    legs: int | None = None
    progress_percent: float = 0.0
    size: int | None = None
    sha256: str | None = None
    duration_seconds: float | None = None
    throughput_bytes_per_second: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    next_attempt_at: str | None = None
    executor_id: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    redrive_of: str | None = None
    redriven_to: str | None = None
    route_id: str | None = None
    cancel_requested: bool = Field(
        default=False,
        description="A cancel was requested; until the job is final the executor decides.",
    )
    cancel_outcome: str | None = Field(
        default=None,
        description="too_late: the cancel came after the file was delivered (SUCCEEDED).",
    )


class EndpointList(BaseModel):
    endpoints: list[EndpointView]
    next_token: str | None = None


class JobList(BaseModel):
    jobs: list[JobView]
    next_token: str | None = None


def endpoint_view(item: Item) -> EndpointView:
    fields = {k: v for k, v in item.items() if k in EndpointView.model_fields and v is not None}
    return EndpointView.model_validate(fields)


def job_view(item: Item) -> JobView:
    fields = {k: v for k, v in item.items() if k in JobView.model_fields and v is not None}
    fields["progress_percent"] = readmodels.progress_percent(item)
    return JobView.model_validate(fields)


# --------------------------------------------------------------------------- pagination tokens


def encode_token(last_key: dict[str, str] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(last_key, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, expected: IndexQuery, key_attribute: str) -> dict[str, str]:
    """The LastEvaluatedKey in ``token``, if it is one of this query's partition (so that a
    customer cannot page into another customer's partition); else 400 on next_token."""
    invalid = BadRequest("next_token is invalid or belongs to another query", field="next_token")
    try:
        padded = token + "=" * (-len(token) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    attributes = {key_attribute, expected.partition_attribute, "created_at"}
    if (
        not isinstance(key, dict)
        or set(key) != attributes
        or not all(isinstance(v, str) and v for v in key.values())
        or key[expected.partition_attribute] != expected.partition_value
    ):
        raise invalid
    return key


# --------------------------------------------------------------------------- queries


def _utc(value: datetime | None, field: str) -> datetime | None:
    """Naive query times are taken as UTC; a time that has no UTC equivalent (0001-01-01 at
    +01:00, 9999-12-31 at -01:00) is a 422 on its field, never an OverflowError."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise Invalid(
            f"{field}: out of range once converted to UTC", field=field, code="validation_error"
        ) from None


def _canonical(value: str) -> bool:
    """Ferry ids are canonical (lower-case, hyphenated) UUIDs: anything else is not looked up
    (DynamoDB refuses keys over 2048 bytes; an upper-case id would read a partial history)."""
    try:
        return str(UUID(value)) == value
    except ValueError:
        return False


class Queries:
    """Read models for the GET routes; the event store only for the two /events routes."""

    def __init__(self, store: ReadModelStore, recorder: AggregateRecorder):
        self.store = store
        self.recorder = recorder

    def get_endpoint(self, customer_id: str, endpoint_id: str) -> EndpointView:
        if not _canonical(endpoint_id):
            raise NotFound(f"endpoint {endpoint_id} not found", field="endpoint_id")
        item = self.store.get(ENDPOINTS, endpoint_id)
        if item is None or item.get("customer_id") != customer_id or not item.get("created_at"):
            raise NotFound(f"endpoint {endpoint_id} not found", field="endpoint_id")
        return endpoint_view(item)

    def list_endpoints(self, customer_id: str, limit: int, next_token: str | None) -> EndpointList:
        query = IndexQuery(
            kind=ENDPOINTS,
            index=ENDPOINTS_CUSTOMER_INDEX,
            partition_attribute="customer_id",
            partition_value=customer_id,
            limit=limit,
        )
        page = self._page(query, "endpoint_id", next_token)
        return EndpointList(
            endpoints=[endpoint_view(i) for i in page.items],
            next_token=encode_token(page.last_key),
        )

    def get_job(self, customer_id: str, job_id: str) -> JobView:
        if not _canonical(job_id):
            raise NotFound(f"job {job_id} not found", field="job_id")
        item = self.store.get(JOBS, job_id)
        if item is None or item.get("customer_id") != customer_id or not item.get("created_at"):
            raise NotFound(f"job {job_id} not found", field="job_id")
        return job_view(item)

    def list_jobs(
        self,
        customer_id: str,
        *,
        status: JobStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        next_token: str | None = None,
    ) -> JobList:
        since, until = _utc(since, "since"), _utc(until, "until")
        if since is not None and until is not None and since > until:
            raise BadRequest("since must not be after until", field="since")
        if status is None:
            index, attribute, value = JOBS_CUSTOMER_CREATED_INDEX, "customer_id", customer_id
        else:
            index, attribute = JOBS_CUSTOMER_STATUS_INDEX, "customer_status"
            value = readmodels.customer_status(customer_id, status.value)
        query = IndexQuery(
            kind=JOBS,
            index=index,
            partition_attribute=attribute,
            partition_value=value,
            limit=limit,
            since=readmodels.timestamp(since) if since else None,
            until=readmodels.timestamp(until) if until else None,
        )
        page = self._page(query, "job_id", next_token)
        return JobList(
            jobs=[job_view(i) for i in page.items], next_token=encode_token(page.last_key)
        )

    def _page(self, query: IndexQuery, key_attribute: str, next_token: str | None) -> Page:
        if next_token:
            start = decode_token(next_token, query, key_attribute)
            query = IndexQuery(**{**query.__dict__, "start_key": start})
        return self.store.query(query)

    def job_events(self, customer_id: str, job_id: str) -> list[dict[str, Any]]:
        job = self._stream(job_id)
        if not job or job[0].customer_id != customer_id or not isinstance(job[0], JobRequested):
            raise NotFound(f"job {job_id} not found", field="job_id")
        transfer = self._stream(str(transfer_stream_id(job_id)))
        transfer = [e for e in transfer if e.customer_id == customer_id]
        return [audit_record(e) for e in merge_in_time_order(job, transfer)]

    def endpoint_events(self, customer_id: str, endpoint_id: str) -> list[dict[str, Any]]:
        events = self._stream(endpoint_id)
        first = events[0] if events else None
        if not isinstance(first, EndpointRegistered) or first.customer_id != customer_id:
            raise NotFound(f"endpoint {endpoint_id} not found", field="endpoint_id")
        return [audit_record(e) for e in events]

    def _stream(self, stream_id: str) -> list[FerryEvent]:
        if not _canonical(stream_id):
            return []  # not an id Ferry issues
        key = UUID(stream_id)
        out = []
        for stored in self.recorder.select_events(key):
            event = to_integration(stored)
            if event is not None:
                out.append(event)
        return out
