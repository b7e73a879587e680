"""The jobs-per-hour aggregate (services/projections/stats.py), kept by the projector in the same
write as each job item: always equal to a recount of the job items, however the events arrive
(duplicates, both streams in either order, lost races), the same after a rebuild, and one
customer's only."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.popo import POPOAggregateRecorder

from events.aggregate import transfer_stream_id
from events.contract import FerryEvent
from services.projections.application import ConcurrentUpdate, Delivery, Projector
from services.projections.readmodels import JOBS
from services.projections.samples import History, to_stored
from services.projections.stats import (
    SHARDS,
    bytes_moved,
    hour_of,
    hourly_stats,
    shard_of,
    stats_deltas,
)
from tests.support.fakes.projections import InMemoryReadModelStore
from tests.unit.test_projections_batching import InterleavingStore

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)


def history() -> tuple[History, list[str]]:
    """acme's jobs spread over the last 30 hours (every outcome), and one of globex."""
    h = History(start=NOW - timedelta(hours=30), step=timedelta(minutes=2))
    src, dst = h.endpoint("acme", endpoint_type="s3"), h.endpoint("acme")
    outcomes = ["succeeded", "failed", "cancelled", "queued"]
    jobs = [
        h.job("acme", src, dst, outcome=outcomes[n % 4], size=(n + 1) * 1024) for n in range(40)
    ]
    other = h.endpoint("globex")
    jobs.append(h.job("globex", other, other))
    return h, jobs


def recount(store: InMemoryReadModelStore, customer: str) -> dict[str, Counter[str]]:
    """What the aggregate must say: hour -> counters, counted from the job items themselves."""
    hours: dict[str, Counter[str]] = {}
    for item in store.scan(JOBS):
        if item.get("customer_id") != customer or not item.get("status"):
            continue
        counts = hours.setdefault(hour_of(datetime.fromisoformat(item["created_at"])), Counter())
        counts[item["status"]] += 1
        counts["bytes"] += bytes_moved(item)
    return hours


def aggregate(store: InMemoryReadModelStore, customer: str) -> dict[str, Counter[str]]:
    stats = hourly_stats(store, customer, hours=48, now=NOW)
    hours = {}
    for bucket in stats.hours:
        counts = Counter(bucket.by_status)
        if bucket.bytes_moved:
            counts["bytes"] = bucket.bytes_moved
        if counts:
            hours[hour_of(datetime.fromisoformat(bucket.hour))] = counts
    return hours


def live(events: Sequence[FerryEvent], store: InMemoryReadModelStore | None = None) -> Any:
    store = store or InMemoryReadModelStore()
    projector = Projector(store, None)
    for event in events:
        projector.handle(event)
    return store


def test_the_aggregate_equals_a_recount_of_the_items() -> None:
    h, _ = history()
    store = live(h.events)
    expected = recount(store, "acme")
    assert aggregate(store, "acme") == expected
    assert sum(c["SUCCEEDED"] for c in expected.values()) == 10  # the history is what it says
    stats = hourly_stats(store, "acme", hours=24, now=NOW)  # the window: the last 24 hours only
    in_window = {h_: c for h_, c in expected.items() if h_ >= hour_of(NOW - timedelta(hours=23))}
    assert 0 < stats.total_jobs < 40
    assert stats.total_jobs == sum(
        n for c in in_window.values() for k, n in c.items() if k != "bytes"
    )
    assert stats.failed_jobs == sum(c["FAILED"] for c in in_window.values())
    assert stats.bytes_moved == sum(c["bytes"] for c in in_window.values())


def test_another_customer_sees_only_its_own() -> None:
    h, _ = history()
    store = live(h.events)
    globex = hourly_stats(store, "globex", hours=48, now=NOW)
    assert globex.total_jobs == 1 and globex.hours[-1].by_status == {}  # created 30 h... ago
    assert aggregate(store, "globex") == recount(store, "globex")
    assert hourly_stats(store, "initech", hours=48, now=NOW).total_jobs == 0


def test_duplicates_and_redeliveries_count_once() -> None:
    h, _ = history()
    store = live(h.events)
    once = aggregate(store, "acme")
    live(h.events, store)  # every event again: all duplicates
    projector = Projector(store, None)
    batch = [Delivery(f"m{n}", e) for n, e in enumerate(h.events[-50:] * 2)]
    assert not projector.handle_batch(batch).failed
    assert aggregate(store, "acme") == once


def test_either_stream_first_ends_with_the_same_counters() -> None:
    """The Transfer stream's progress can reach the projector before the job stream creates the
    item (the item then has no customer or status and counts nothing until it has)."""
    h, jobs = history()
    recorder = POPOAggregateRecorder()
    recorder.insert_events([to_stored(e) for e in h.events])
    transfers = {str(transfer_stream_id(j)) for j in jobs}
    transfer_first = [e for e in h.events if e.stream_id in transfers] + [
        e for e in h.events if e.stream_id not in transfers
    ]
    reordered = live(transfer_first)
    assert aggregate(reordered, "acme") == aggregate(live(h.events), "acme")
    # and per item, interleaved at random (each stream still in order)
    rng = random.Random(3)
    streams: dict[str, list[FerryEvent]] = {}
    for event in h.events:
        streams.setdefault(event.stream_id, []).append(event)
    shuffled: list[FerryEvent] = []
    while streams:
        stream = rng.choice(sorted(streams))
        shuffled.append(streams[stream].pop(0))
        if not streams[stream]:
            del streams[stream]
    assert aggregate(live(shuffled), "acme") == recount(live(h.events), "acme")


def test_a_rebuild_recomputes_the_same_counters() -> None:
    h, _ = history()
    rebuilt = InMemoryReadModelStore()
    projector = Projector(rebuilt, None)
    streams: dict[str, list[FerryEvent]] = {}
    for event in h.events:
        streams.setdefault(event.stream_id, []).append(event)
    for events in streams.values():  # the rebuild's order: stream by stream
        projector.apply_stream(events)
    assert nonzero(rebuilt) == nonzero(live(h.events))  # live rows keep counters gone to 0


def nonzero(store: InMemoryReadModelStore) -> dict[tuple[str, str], dict[str, Any]]:
    return {k: {c: v for c, v in row.items() if v} for k, row in store.stats.items()}


def test_a_lost_race_counts_nothing_twice() -> None:
    h, jobs = history()
    first = [e for e in h.events if e.stream_id == jobs[0]]
    store = InterleavingStore(first[:2])  # another projector writes first, once
    outcome = Projector(store, None).apply_item(first)
    assert outcome.conflicts == 1 and outcome.written
    assert aggregate(store, "acme") == recount(store, "acme")
    assert sum(sum(c.values()) for c in aggregate(store, "acme").values()) == 1 + bytes_moved(
        store.get(JOBS, jobs[0]) or {}
    )


def test_a_write_that_fails_changes_no_counter() -> None:
    store = InMemoryReadModelStore()
    item = {
        "job_id": "j1",
        "customer_id": "acme",
        "created_at": NOW.isoformat(),
        "status": "QUEUED",
    }
    store.put(JOBS, item, None, stats_deltas(None, item))
    before = dict(store.stats)
    newer = {**item, "status": "RUNNING"}
    try:
        store.put(JOBS, newer, {"job_version": 7}, stats_deltas(item, newer))  # stale version
    except ConcurrentUpdate:
        pass
    assert store.stats == before


def test_deltas_move_a_job_between_statuses_and_add_its_bytes() -> None:
    at = NOW.isoformat()
    queued = {"job_id": "j1", "customer_id": "acme", "created_at": at, "status": "QUEUED"}
    [created] = stats_deltas(None, queued)
    assert created.counts == {"jobs_QUEUED": 1}
    assert created.hour == "2026-11-23T12" and created.shard == shard_of("j1") < SHARDS
    running = {**queued, "status": "RUNNING", "bytes_committed": 10}
    [moved] = stats_deltas(queued, running)
    assert moved.counts == {"jobs_QUEUED": -1, "jobs_RUNNING": 1, "bytes_moved": 10}
    assert stats_deltas(running, {**running, "updated_at": at}) == []  # nothing it counts
    done = {**running, "status": "SUCCEEDED", "size": 25}
    [finished] = stats_deltas(running, done)
    assert finished.counts == {"jobs_RUNNING": -1, "jobs_SUCCEEDED": 1, "bytes_moved": 15}
    progress_only = {"job_id": "j2", "bytes_committed": 5}  # its job stream not applied yet
    assert stats_deltas(None, progress_only) == []
    whole = {**progress_only, "customer_id": "acme", "created_at": at, "status": "RUNNING"}
    assert stats_deltas(progress_only, whole)[0].counts == {"jobs_RUNNING": 1, "bytes_moved": 5}
