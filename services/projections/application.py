"""Projections: apply published events to read models (``Projector``) and answer queries
(``Queries``). Storage is behind the small ``ReadModelStore`` port (adapters.py); the event store
is an eventsourcing ``AggregateRecorder`` (catch-up after a gap, the two /events routes).

Split by concern: the port is ``services.projections.store``, the read side (views, page
tokens, ``Queries``) is ``services.projections.queries``; this module is the projector and
re-exports both, so every import path stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.persistence import AggregateRecorder

from events.contract import FerryEvent
from events.translate import to_integration
from services.projections import readmodels
from services.projections.queries import (  # re-exported: the read side
    EndpointList,
    EndpointView,
    JobList,
    JobView,
    Location,
    Queries,
    decode_token,
    encode_token,
    endpoint_view,
    job_view,
)
from services.projections.readmodels import Item
from services.projections.stats import stats_deltas
from services.projections.store import (  # re-exported: the port
    ConcurrentUpdate,
    IndexQuery,
    Page,
    ReadModelStore,
    strip_none,
)

__all__ = [
    "BatchOutcome",
    "CatchUpIncomplete",
    "ConcurrentUpdate",
    "Delivery",
    "EndpointList",
    "EndpointView",
    "IndexQuery",
    "ItemOutcome",
    "JobList",
    "JobView",
    "Location",
    "Page",
    "Projector",
    "Queries",
    "ReadModelStore",
    "decode_token",
    "encode_token",
    "endpoint_view",
    "job_view",
    "strip_none",
]

# --------------------------------------------------------------------------- projector


class CatchUpIncomplete(Exception):
    """The event store does not (yet) hold the events of a gap; the message is retried."""


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
        deltas = stats_deltas(item, new) if kind == readmodels.JOBS else []
        self.store.put(kind, new, expected, deltas)

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
