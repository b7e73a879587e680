"""Batched projection: one read and one conditional write per read-model item per SQS batch."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOAggregateRecorder

from events import contract as c
from events.contract import FerryEvent
from services.projections import readmodels
from services.projections.application import (
    CatchUpIncomplete,
    ConcurrentUpdate,
    Delivery,
    Projector,
    Queries,
)
from services.projections.bootstrap import ProjectionsContext
from services.projections.consumer import make_handler
from services.projections.readmodels import ENDPOINTS, JOBS, Item
from services.projections.samples import History, to_stored
from services.projections.store import StatsDelta
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.fakes.projections import InMemoryReadModelStore
from tests.support.sqs import eventbridge_body, sqs_batch


class CountingStore(InMemoryReadModelStore):
    """The in-memory store, counting round trips (what costs on DynamoDB)."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[tuple[str, str]] = []
        self.batch_gets: list[tuple[str, list[str]]] = []
        self.puts: list[tuple[str, str]] = []

    def get(self, kind: str, key: str) -> Item | None:
        self.gets.append((kind, key))
        return super().get(kind, key)

    def get_many(self, kind: str, keys: Iterable[str]) -> dict[str, Item]:
        keys = list(keys)
        self.batch_gets.append((kind, keys))
        found = {}
        for key in keys:
            item = super().get(kind, key)
            if item is not None:
                found[key] = item
        return found

    def put(
        self,
        kind: str,
        item: Item,
        expected: dict[str, int] | None,
        stats: Sequence[StatsDelta] = (),
    ) -> None:
        self.puts.append((kind, item[readmodels.KEY_ATTRIBUTE[kind]]))
        super().put(kind, item, expected, stats)


class CountingRecorder(POPOAggregateRecorder):
    def __init__(self) -> None:
        super().__init__()
        self.selects: list[tuple[UUID, int | None, int | None]] = []

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        assert isinstance(originator_id, UUID)
        self.selects.append((originator_id, gt, lte))
        return super().select_events(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)


def recorder_with(events: list[FerryEvent]) -> CountingRecorder:
    recorder = CountingRecorder()
    by_stream: dict[str, list[FerryEvent]] = {}
    for event in events:
        by_stream.setdefault(event.stream_id, []).append(event)
    for stream in by_stream.values():
        recorder.insert_events([to_stored(e) for e in stream])
    return recorder


NO_EVENTS = POPOAggregateRecorder()  # the queries are not used here


def snapshot(store: InMemoryReadModelStore) -> dict[str, Any]:
    return {kind: dict(store.items[kind]) for kind in (ENDPOINTS, JOBS)}


def in_order(events: list[FerryEvent]) -> dict[str, Any]:
    """The reference: the pre-batching path, one event at a time, in publication order."""
    store = InMemoryReadModelStore()
    projector = Projector(store, None)
    for event in events:
        projector.handle(event)
    return snapshot(store)


def deliveries(events: list[FerryEvent], prefix: str = "m") -> list[Delivery]:
    return [Delivery(f"{prefix}{i}", e) for i, e in enumerate(events)]


def two_jobs_and_an_endpoint() -> tuple[History, str, str, str]:
    h = History()
    endpoint = h.endpoint("acme")
    first = h.job("acme", endpoint, endpoint, size=4 * 1024, chunk_size=1024)
    second = h.job("acme", endpoint, endpoint, outcome="failed")
    return h, endpoint, first, second


def key_of(event: FerryEvent) -> str:
    target = readmodels.target_of(event)
    assert target is not None
    return target[1]


# --------------------------------------------------------------------------- grouping


def test_a_batch_reads_each_kind_once_and_writes_each_item_once() -> None:
    # Given the whole history of one endpoint and two jobs (job + Transfer streams)
    h, endpoint, first, second = two_jobs_and_an_endpoint()
    store = CountingStore()
    # When it arrives as one batch
    outcome = Projector(store, None).handle_batch(deliveries(h.events))
    # Then: one BatchGet per read model, one conditional write per item, no single reads
    assert outcome.failed == [] and outcome.ignored == []
    assert sorted((k, sorted(keys)) for k, keys in store.batch_gets) == [
        (ENDPOINTS, [endpoint]),
        (JOBS, sorted([first, second])),
    ]
    assert store.gets == []
    assert sorted(store.puts) == sorted([(ENDPOINTS, endpoint), (JOBS, first), (JOBS, second)])
    assert snapshot(store) == in_order(h.events)
    by_key = {i.key: i for i in outcome.items}
    job_records = [e for e in h.events if e.correlation_id == first]
    assert by_key[first].applied == len(job_records) and by_key[first].written


def test_events_without_a_read_model_are_ignored_and_succeed() -> None:
    h = History()
    route = h.add(c.RouteCreated, "r1", "acme", "r1", route_id="r1", definition={}, actor="k")
    store = CountingStore()
    outcome = Projector(store, None).handle_batch([Delivery("m0", route)])
    assert outcome.ignored == ["m0"] and outcome.items == [] and outcome.failed == []
    assert store.puts == [] and store.batch_gets == []


# --------------------------------------------------------------------------- order and duplicates


def test_any_order_inside_a_batch_is_folded_in_stream_order_without_the_event_store() -> None:
    # Given a batch holding every event of the streams, reversed
    h, *_ = two_jobs_and_an_endpoint()
    store = CountingStore()
    recorder = recorder_with(h.events)
    # When it is projected
    outcome = Projector(store, recorder).handle_batch(deliveries(list(reversed(h.events))))
    # Then the items are the in-order ones, and no gap had to be read from the event store
    assert outcome.failed == []
    assert snapshot(store) == in_order(h.events)
    assert recorder.selects == []
    assert all(i.caught_up == 0 for i in outcome.items)


def test_duplicates_in_a_batch_and_already_applied_events_are_dropped() -> None:
    h, *_ = two_jobs_and_an_endpoint()
    store = CountingStore()
    projector = Projector(store, None)
    half = len(h.events) // 2
    assert projector.handle_batch(deliveries(h.events[:half])).failed == []
    store.puts.clear()
    # A redelivery of the first half, each event twice, plus the rest twice
    again = h.events[:half] * 2 + h.events[half:] * 2
    outcome = projector.handle_batch(deliveries(again))
    assert outcome.failed == []
    assert snapshot(store) == in_order(h.events)
    assert sum(i.duplicates for i in outcome.items) == len(again) - (len(h.events) - half)
    # Items whose events were all applied already are not written again
    fully_applied = {
        i.key for i in outcome.items if i.applied == 0 and i.duplicates == len(i.record_ids)
    }
    assert not fully_applied & {key for _, key in store.puts}
    # And a batch of nothing but duplicates writes nothing
    store.puts.clear()
    assert projector.handle_batch(deliveries(h.events)).failed == []
    assert store.puts == []


def test_gaps_are_filled_with_one_event_store_read_per_stream() -> None:
    # Given the job's first events are applied, then a batch with a few later ones, with holes
    h = History()
    endpoint = h.endpoint("acme")
    job_id = h.job("acme", endpoint, endpoint, size=6 * 1024, chunk_size=1024)
    job = [e for e in h.events if e.correlation_id == job_id]
    recorder = recorder_with(h.events)
    store = CountingStore()
    projector = Projector(store, recorder)
    assert projector.handle_batch(deliveries(job[:3])).failed == []
    late = [e for e in job[3:] if e.version % 3 == 0]  # every third version of each stream
    outcome = projector.handle_batch(deliveries(late))
    assert outcome.failed == []
    # Then one read per stream that had a hole, and the item is the in-order one up to there
    streams_in_batch = {e.stream_id for e in late}
    assert len(streams_in_batch) == 2  # the job stream and the Transfer stream
    assert len(recorder.selects) == 2
    last = {s: max(e.version for e in late if e.stream_id == s) for s in streams_in_batch}
    prefix = [e for e in job if e.version <= last[e.stream_id]]
    assert store.get(JOBS, job_id) == in_order(prefix)[JOBS][job_id]
    assert outcome.items[0].caught_up > 0


def test_batch_size_does_not_change_the_result() -> None:
    h, *_ = two_jobs_and_an_endpoint()
    h.job("globex", "src", "dst", size=5 * 1024, chunk_size=1024)
    expected = in_order(h.events)
    recorder = recorder_with(h.events)
    for seed in range(6):
        rng = random.Random(seed)
        stream = h.events + rng.sample(h.events, len(h.events) // 3)
        rng.shuffle(stream)
        store = InMemoryReadModelStore()
        projector = Projector(store, recorder)
        start = 0
        while start < len(stream):
            size = rng.randint(1, 25)
            batch = deliveries(stream[start : start + size], prefix=f"b{start}-")
            assert projector.handle_batch(batch).failed == [], seed
            start += size
        assert snapshot(store) == expected, seed


# --------------------------------------------------------------------------- failures


def test_a_failing_group_fails_exactly_its_records() -> None:
    # Given a batch mixing two jobs, where the second job's events have a gap the event store
    # cannot fill (recorder None) — and a store that cannot write the endpoint
    h, endpoint, first, second = two_jobs_and_an_endpoint()

    class EndpointWritesFail(InMemoryReadModelStore):
        def put(
            self,
            kind: str,
            item: Item,
            expected: dict[str, int] | None,
            stats: Sequence[StatsDelta] = (),
        ) -> None:
            if kind == ENDPOINTS:
                raise RuntimeError("throttled")
            super().put(kind, item, expected, stats)

    second_events = [e for e in h.events if e.correlation_id == second]
    batch_events = [
        e for e in h.events if e.correlation_id != second or e.stream_id != second or e.version != 1
    ]  # the second job's stream lacks version 1: a gap
    batch = deliveries(batch_events)
    store = EndpointWritesFail()
    outcome = Projector(store, None).handle_batch(batch)
    expected_failed = [d.record_id for d in batch if key_of(d.event) in (endpoint, second)]
    assert sorted(outcome.failed) == sorted(expected_failed)
    errors = {i.key: type(i.error) for i in outcome.items}
    assert errors == {endpoint: RuntimeError, first: type(None), second: CatchUpIncomplete}
    # The first job was applied in full; nothing of the second job or the endpoint was written
    assert store.items[JOBS][first] == in_order(h.events)[JOBS][first]
    assert second not in store.items[JOBS] and store.items[ENDPOINTS] == {}
    assert len(second_events) > 1


def test_the_consumer_reports_unreadable_records_and_failed_groups_in_delivery_order() -> None:
    h, endpoint, first, second = two_jobs_and_an_endpoint()
    store = InMemoryReadModelStore()
    handle = make_handler(
        ProjectionsContext(Projector(store, None), Queries(store, NO_EVENTS), InMemoryKeyStore())
    )
    events: list[FerryEvent | None] = [
        e for e in h.events if not (e.stream_id == second and e.version == 1)
    ]
    events.insert(2, None)  # an unreadable record
    bodies = [eventbridge_body(e) if e else "{not json" for e in events]
    result = handle(sqs_batch(bodies), None)
    failed = [f["itemIdentifier"] for f in result["batchItemFailures"]]
    assert failed == [f"m{i}" for i, e in enumerate(events) if e is None or key_of(e) == second]
    assert store.items[JOBS][first] == in_order(h.events)[JOBS][first]
    assert store.items[ENDPOINTS][endpoint] == in_order(h.events)[ENDPOINTS][endpoint]


def test_a_batch_whose_every_record_fails_lists_them_all() -> None:
    handle = make_handler(
        ProjectionsContext(
            Projector(InMemoryReadModelStore(), None),
            Queries(InMemoryReadModelStore(), NO_EVENTS),
            InMemoryKeyStore(),
        )
    )
    assert handle(sqs_batch(["x", "y"]), None) == {
        "batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]
    }
    assert handle({"Records": []}, None) == {"batchItemFailures": []}


# --------------------------------------------------------------------------- conflicts


class InterleavingStore(InMemoryReadModelStore):
    """Another consumer applies ``interlopers`` between our read and our first write."""

    def __init__(self, interlopers: list[FerryEvent]) -> None:
        super().__init__()
        self.interlopers = interlopers

    def put(
        self,
        kind: str,
        item: Item,
        expected: dict[str, int] | None,
        stats: Sequence[StatsDelta] = (),
    ) -> None:
        if self.interlopers:
            events, self.interlopers = self.interlopers, []
            other = Projector(self, None)
            for event in events:
                other.handle(event)
        super().put(kind, item, expected, stats)


def test_a_conflict_rereads_and_reapplies_the_group() -> None:
    h = History()
    endpoint = h.endpoint("acme")
    job_id = h.job("acme", endpoint, endpoint, size=4 * 1024, chunk_size=1024)
    job = [e for e in h.events if e.correlation_id == job_id]
    # Another consumer applies the first four events meanwhile; our batch has the first ten
    store = InterleavingStore(interlopers=job[:4])
    outcome = Projector(store, None).handle_batch(deliveries(job[:10]))
    assert outcome.failed == []
    (item,) = outcome.items
    assert item.conflicts == 1 and item.written
    assert item.duplicates == 4 and item.applied == 6
    assert store.items[JOBS][job_id] == in_order(job[:10])[JOBS][job_id]


def test_conflicts_without_end_fail_only_that_group() -> None:
    h, endpoint, first, second = two_jobs_and_an_endpoint()

    class FirstJobAlwaysConflicts(CountingStore):
        def put(
            self,
            kind: str,
            item: Item,
            expected: dict[str, int] | None,
            stats: Sequence[StatsDelta] = (),
        ) -> None:
            if item.get("job_id") == first:
                self.puts.append((kind, first))
                raise ConcurrentUpdate("busy")
            super().put(kind, item, expected, stats)

    store = FirstJobAlwaysConflicts()
    batch = deliveries(h.events)
    outcome = Projector(store, None, max_conflicts=3).handle_batch(batch)
    assert outcome.failed == [d.record_id for d in batch if d.event.correlation_id == first]
    assert store.puts.count((JOBS, first)) == 3
    assert store.gets.count((JOBS, first)) == 2  # a re-read before each new attempt
    assert second in store.items[JOBS] and endpoint in store.items[ENDPOINTS]


# --------------------------------------------------------------------------- SQS helpers


def test_when_the_batch_read_fails_each_group_reads_on_its_own() -> None:
    h, *_ = two_jobs_and_an_endpoint()

    class BatchGetDown(CountingStore):
        def get_many(self, kind: str, keys: Iterable[str]) -> dict[str, Item]:
            raise RuntimeError("BatchGetItem throttled")

    store = BatchGetDown()
    outcome = Projector(store, None).handle_batch(deliveries(h.events))
    assert outcome.failed == []
    assert outcome.read_errors == [
        "endpoints: RuntimeError: BatchGetItem throttled",
        "jobs: RuntimeError: BatchGetItem throttled",
    ]
    assert len(store.gets) == 3 and len(store.puts) == 3
    assert snapshot(store) == in_order(h.events)
