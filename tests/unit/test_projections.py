"""Projections: folds, order-safety, idempotency, gap catch-up, the SQS consumer."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import pytest
from eventsourcing.popo import POPOAggregateRecorder

from events import contract as c
from events.contract import FerryEvent
from services.projections import readmodels
from services.projections.application import (
    CatchUpIncomplete,
    ConcurrentUpdate,
    Projector,
    Queries,
)
from services.projections.bootstrap import ProjectionsContext
from services.projections.consumer import make_handler
from services.projections.readmodels import ENDPOINTS, JOBS
from services.projections.samples import History, to_stored
from services.projections.store import StatsDelta
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.fakes.projections import InMemoryReadModelStore
from tests.support.sqs import eventbridge_body, sqs_batch


def history() -> History:
    h = History()
    src = h.endpoint("acme", endpoint_type="s3")
    dst = h.endpoint_lifecycle("acme")
    h.job("acme", src, dst)
    h.job("acme", src, dst, outcome="failed")
    h.job("acme", src, dst, outcome="cancelled")
    h.job("acme", src, dst, outcome="queued")
    other = h.endpoint("globex")
    h.job("globex", other, other)
    return h


def recorder_with(events: list[FerryEvent]) -> POPOAggregateRecorder:
    recorder = POPOAggregateRecorder()
    recorder.insert_events([to_stored(e) for e in events])
    return recorder


def snapshot(store: InMemoryReadModelStore) -> dict[str, Any]:
    return {kind: {k: v for k, v in store.items[kind].items()} for kind in (ENDPOINTS, JOBS)}


def project(events: list[FerryEvent], recorder: POPOAggregateRecorder | None) -> dict[str, Any]:
    store = InMemoryReadModelStore()
    projector = Projector(store, recorder)
    for event in events:
        projector.handle(event)
    return snapshot(store)


# --------------------------------------------------------------------------- order-safety


def test_out_of_order_and_duplicate_deliveries_converge_to_the_in_order_items() -> None:
    h = history()
    recorder = recorder_with(h.events)
    in_order = project(h.events, None)  # in order: no catch-up needed at all
    for seed in range(5):
        rng = random.Random(seed)
        deliveries = h.events + rng.sample(h.events, len(h.events) // 2)  # duplicates
        rng.shuffle(deliveries)
        assert project(deliveries, recorder) == in_order, seed


def test_a_stream_replay_gives_the_same_items_as_live_delivery() -> None:
    h = history()
    live = project(h.events, None)
    store = InMemoryReadModelStore()
    projector = Projector(store, None)
    streams: dict[str, list[FerryEvent]] = {}
    for event in h.events:
        streams.setdefault(event.stream_id, []).append(event)
    for stream in reversed(list(streams.values())):  # another cross-stream order
        projector.apply_stream(stream)
    assert snapshot(store) == live


def test_duplicates_and_stale_events_are_dropped_and_status_never_regresses() -> None:
    h = history()
    store = InMemoryReadModelStore()
    projector = Projector(store, recorder_with(h.events))
    for event in h.events:
        assert projector.handle(event) in ("applied", "ignored")
    before = snapshot(store)
    for event in h.events:
        assert projector.handle(event) in ("duplicate", "ignored")
    assert snapshot(store) == before
    statuses = sorted(i["status"] for i in store.items[JOBS].values())
    assert statuses == ["CANCELLED", "FAILED", "QUEUED", "SUCCEEDED", "SUCCEEDED"]


def test_a_gap_is_filled_from_the_event_store_in_order() -> None:
    h = History()
    src = h.endpoint("acme")
    job_id = h.job("acme", src, src)
    job_events = [e for e in h.events if e.stream_id == job_id]
    store = InMemoryReadModelStore()
    projector = Projector(store, recorder_with(h.events))
    assert projector.handle(job_events[-1]) == "caught_up"  # JobSucceeded first
    item = store.get(JOBS, job_id)
    assert item is not None
    assert item["status"] == "SUCCEEDED"
    assert item["job_version"] == job_events[-1].version
    assert item["created_at"] == readmodels.timestamp(job_events[0].occurred_at)
    assert projector.handle(job_events[1]) == "duplicate"


def test_a_gap_without_the_missing_events_fails_the_message_for_a_retry() -> None:
    h = History()
    src = h.endpoint("acme")
    job_id = h.job("acme", src, src, outcome="queued")
    queued = [e for e in h.events if e.stream_id == job_id][1]
    with pytest.raises(CatchUpIncomplete):
        Projector(InMemoryReadModelStore(), None).handle(queued)
    with pytest.raises(CatchUpIncomplete):
        Projector(InMemoryReadModelStore(), POPOAggregateRecorder()).handle(queued)


class ConflictingStore(InMemoryReadModelStore):
    """Another consumer writes the item between our read and our write (once)."""

    def __init__(self, interloper: FerryEvent) -> None:
        super().__init__()
        self.interloper: FerryEvent | None = interloper

    def put(
        self,
        kind: str,
        item: dict[str, Any],
        expected: dict[str, int] | None,
        stats: Sequence[StatsDelta] = (),
    ) -> None:
        if self.interloper is not None:
            event, self.interloper = self.interloper, None
            other = Projector(self, None)
            other.handle(event)
        super().put(kind, item, expected, stats)


def test_a_concurrent_writer_on_the_same_item_makes_the_loser_reread_and_retry() -> None:
    h = History()
    src = h.endpoint("acme")
    job_id = h.job("acme", src, src)
    job_first = next(e for e in h.events if e.stream_id == job_id)
    transfer_first = next(
        e for e in h.events if e.correlation_id == job_id and e.stream_id != job_id
    )
    store = ConflictingStore(interloper=transfer_first)
    assert Projector(store, None).handle(job_first) == "applied"
    item = store.get(JOBS, job_id)
    assert item is not None
    assert (item["job_version"], item["transfer_version"]) == (1, 1)
    assert item["status"] == "RECEIVED" and item["lease_owner"] == "exec-a"


def test_conflicts_without_end_give_up() -> None:
    class AlwaysConflicts(InMemoryReadModelStore):
        def put(
            self,
            kind: str,
            item: dict[str, Any],
            expected: dict[str, int] | None,
            stats: Sequence[StatsDelta] = (),
        ) -> None:
            raise ConcurrentUpdate("busy")

    h = History()
    h.endpoint("acme")
    with pytest.raises(ConcurrentUpdate):
        Projector(AlwaysConflicts(), None, max_conflicts=3).handle(h.events[0])


# --------------------------------------------------------------------------- folds


def fold_all(events: list[FerryEvent]) -> dict[str, Any]:
    item: dict[str, Any] | None = None
    for event in events:
        item = readmodels.fold(item, event)
    assert item is not None
    return item


def test_endpoint_folds() -> None:
    h = History()
    endpoint_id = h.endpoint_lifecycle("acme")
    events = [e for e in h.events if e.stream_id == endpoint_id]
    registered = fold_all(events[:1])
    assert registered["status"] == "PENDING_VALIDATION"
    assert registered["type"] == "sftp" and registered["config"]["host"] == "127.0.0.1"
    assert registered["secret_arn"].startswith("arn:aws:secretsmanager:")
    assert fold_all(events[:2])["status"] == "ACTIVE"
    failed = fold_all(events[:3])
    assert failed["status"] == "VALIDATION_FAILED"
    assert failed["status_reason"] == "auth_failed: authentication failed"
    updated = fold_all(events[:4])
    assert updated["config"]["port"] == 22 and updated["max_concurrency"] == 2
    assert updated["status"] == "PENDING_VALIDATION"
    assert fold_all(events[:5])["status"] == "ACTIVE"
    assert fold_all(events[:6])["status"] == "DISABLED"
    final = fold_all(events)
    assert final["status"] == "ACTIVE" and final["version"] == 7
    assert not {"password", "private_key", "passphrase"} & (set(final) | set(final["config"]))


def test_endpoint_changed_while_disabled_needs_validation_after_enable() -> None:
    h = History()
    endpoint_id = h.endpoint("acme")  # registered + validated
    e = {"endpoint_id": endpoint_id}
    h.add(c.EndpointDisabled, endpoint_id, "acme", endpoint_id, actor="k", reason="audit", **e)
    h.add(
        c.EndpointUpdated, endpoint_id, "acme", endpoint_id, changed={"host": "h2"}, actor="k", **e
    )
    disabled = fold_all(h.events)
    assert disabled["status"] == "DISABLED" and disabled["status_reason"] == "audit"
    h.add(c.EndpointEnabled, endpoint_id, "acme", endpoint_id, actor="k", **e)
    assert fold_all(h.events)["status"] == "PENDING_VALIDATION"
    h.add(c.EndpointValidated, endpoint_id, "acme", endpoint_id, **e)
    assert fold_all(h.events)["status"] == "ACTIVE"


def test_endpoint_update_never_copies_credentials() -> None:
    h = History()
    endpoint_id = h.endpoint("acme")
    h.add(
        c.EndpointUpdated,
        endpoint_id,
        "acme",
        endpoint_id,
        endpoint_id=endpoint_id,
        changed={"password": "hunter2", "config": {"private_key": "PEM", "host": "h2"}},
        actor="key-1",
    )
    item = fold_all(h.events)
    assert "hunter2" not in json.dumps(item) and "PEM" not in json.dumps(item)
    assert item["config"]["host"] == "h2"


def test_job_folds_through_a_retry_to_success() -> None:
    h = History()
    src = h.endpoint("acme")
    job_id = h.job("acme", src, src, size=3 * 1024 * 1024, chunk_size=1024 * 1024)
    job = [e for e in h.events if e.correlation_id == job_id]
    by_type: dict[str, int] = {}
    for i, e in enumerate(job):
        by_type.setdefault(e.detail_type(), i)
    item = fold_all(job[: by_type["JobRequested"] + 1])
    assert item["status"] == "RECEIVED" and item["customer_status"] == "acme#RECEIVED"
    assert item["flow"] == "SFTP_TO_SFTP" and item["max_attempts"] == 3
    item = fold_all(job[: by_type["JobQueued"] + 1])
    assert item["status"] == "QUEUED" and item["attempt"] == 1
    item = fold_all(job[: by_type["ChunkCommitted"] + 1])
    assert item["status"] == "RUNNING" and item["bytes_committed"] == 1024 * 1024
    assert item["chunks_committed"] == 1 and item["chunk_count"] == 3 and item["legs"] == 2
    assert readmodels.progress_percent(item) == pytest.approx(16.7)
    item = fold_all(job[: by_type["JobRetryScheduled"] + 1])
    assert item["status"] == "RUNNING" and item["attempt"] == 2
    assert item["error_code"] == "connection_reset" and item["next_attempt_at"]
    item = fold_all(job[: by_type["JobVerified"] + 1])
    assert item["status"] == "VERIFYING" and item["sha256"] == "a" * 64
    assert item["bytes_committed"] == item["bytes_total"] == 3 * 1024 * 1024
    item = fold_all(job)
    assert item["status"] == "SUCCEEDED" and item["customer_status"] == "acme#SUCCEEDED"
    assert item["attempt"] == 2 and item["executor_id"] == "exec-b"
    assert item["finished_at"] and item["started_at"] < item["finished_at"]
    assert item["next_attempt_at"] is None and item["lease_owner"] is None
    assert readmodels.progress_percent(item) == 100.0
    assert item["duration_seconds"] == 2.5


def test_failed_cancelled_and_redriven_jobs() -> None:
    h = History()
    src = h.endpoint("acme")
    failed = h.job("acme", src, src, outcome="failed")
    h.add(c.JobRedriven, failed, "acme", failed, job_id=failed, new_job_id="new", actor="k")
    cancelled = h.job("acme", src, src, outcome="cancelled")
    f = fold_all([e for e in h.events if e.correlation_id == failed])
    assert f["status"] == "FAILED" and f["customer_status"] == "acme#FAILED"
    assert f["error_message"] == "connection reset by peer" and f["redriven_to"] == "new"
    x = fold_all([e for e in h.events if e.correlation_id == cancelled])
    assert x["status"] == "CANCELLED" and x["cancel_reason"] == "not needed"


def test_status_never_moves_backward_even_when_folded_out_of_order() -> None:
    h = History()
    src = h.endpoint("acme")
    job_id = h.job("acme", src, src)
    job = [e for e in h.events if e.stream_id == job_id]
    item = fold_all(job)
    for stale in job[:-1]:
        assert readmodels.fold(item, stale)["status"] == "SUCCEEDED"


def test_routes_have_no_read_model_here() -> None:
    h = History()
    event = h.add(c.RouteCreated, "r1", "acme", "r1", route_id="r1", definition={}, actor="k")
    assert readmodels.target_of(event) is None
    assert Projector(InMemoryReadModelStore(), None).handle(event) == "ignored"


# --------------------------------------------------------------------------- the SQS consumer


def test_consumer_reports_only_the_bad_records_as_failures() -> None:
    h = history()
    store = InMemoryReadModelStore()
    recorder = recorder_with(h.events)
    projections = ProjectionsContext(
        projector=Projector(store, recorder),
        queries=Queries(store, recorder),
        keys=InMemoryKeyStore(),
    )
    handle = make_handler(projections)
    bodies = [eventbridge_body(e) for e in reversed(h.events)]
    bodies.insert(3, "not json")
    bodies.insert(5, json.dumps({"source": "x", "detail-type": "Nope", "detail": {}}))
    result = handle(sqs_batch(bodies), None)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m3"}, {"itemIdentifier": "m5"}]}
    assert snapshot(store) == project(h.events, None)


def test_job_and_transfer_streams_own_disjoint_attributes() -> None:
    """The rule that makes live delivery and rebuild agree whatever the cross-stream order."""
    h = History()
    src = h.endpoint("acme")
    for outcome in ("succeeded", "failed", "cancelled"):
        h.job("acme", src, src, outcome=outcome)
    owned: dict[str, set[str]] = {"job": set(), "transfer": set()}
    for event in h.events:
        if not isinstance(event, (c.JobEvent, c.ExecutorEvent)):
            continue
        side = "job" if isinstance(event, c.JobEvent) else "transfer"
        before = {"sentinel": object()}
        after = readmodels.fold(dict(before), event)
        owned[side] |= {k for k in after if after[k] is not before.get(k)}
    shared = owned["job"] & owned["transfer"]
    assert shared == {"job_id", "customer_id", "updated_at", "job_version", "transfer_version"}
