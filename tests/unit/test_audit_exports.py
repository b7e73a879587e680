"""Audit exports as jobs (``services.projections.audit_exports``) on in-memory adapters: a
started export is PENDING and queued, the exporter's run makes it SUCCEEDED with its files,
counts and manifest sha256 (and the files verify), every read is the caller's customer's only;
an Idempotency-Key returns the same export; failures end FAILED with a reason (permanent at
once, transient after the last attempt); a silent exporter is answered ``stalled``; periods
name their field."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOAggregateRecorder

from ferry.errors import Invalid, NotFound
from services.projections.audit_export import verify_export
from services.projections.audit_exports import (
    MAX_ATTEMPTS,
    AuditExports,
    ExportRequest,
    check_period,
    classify,
    new_export_id,
)
from services.projections.samples import History, to_stored
from tests.support.fakes.audit import InMemoryChainStore, InMemoryCustomerIndex
from tests.support.fakes.audit_exports import (
    InMemoryExportFiles,
    InMemoryExportQueue,
    InMemoryExportStore,
    MemorySink,
)

START = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
BODY = {"since": "2026-03-01T00:00:00Z", "until": "2026-03-31T00:00:00Z"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class World:
    def __init__(self, *, broken_queue: bool = False) -> None:
        recorder = POPOAggregateRecorder()
        h = History(start=START, step=timedelta(hours=3))
        h.job("acme", h.endpoint("acme", endpoint_type="s3"), h.endpoint("acme"))
        h.job("globex", h.endpoint("globex"), h.endpoint("globex"))
        self.history = h
        by_stream: dict[str, list[StoredEvent]] = {}
        for event in h.events:
            by_stream.setdefault(event.stream_id, []).append(to_stored(event))
        for stored in by_stream.values():
            recorder.insert_events(stored)
        self.index = InMemoryCustomerIndex(InMemoryChainStore(recorder))
        self.store, self.files = InMemoryExportStore(), InMemoryExportFiles()
        self.queue = InMemoryExportQueue(broken=broken_queue)
        self.clock = Clock()
        self.exports = AuditExports(self.store, self.queue, self.files, clock=self.clock)

    def start(self, customer: str = "acme", key: str | None = None, **body: str) -> Any:
        request = ExportRequest.model_validate({**BODY, **body})
        return self.exports.start(customer, request, idempotency_key=key)

    def run_all(self) -> list[str]:
        done = [self.exports.run(c, e, self.index) for c, e in self.queue.messages]
        self.queue.messages.clear()
        return done


def test_a_started_export_is_pending_then_succeeds_with_files_that_verify() -> None:
    # Given an export started for acme
    w = World()
    view = w.start()
    assert view.status == "PENDING" and w.queue.messages == [("acme", view.export_id)]
    assert w.exports.get("acme", view.export_id).files == []
    # When the exporter runs it
    assert w.run_all() == ["SUCCEEDED"]
    # Then it has its counts, files with URLs and the manifest's sha256, and the files verify
    done = w.exports.get("acme", view.export_id)
    assert done.status == "SUCCEEDED" and done.error is None
    from events.translate import to_integration

    published = [
        e
        for e in w.history.events
        if e.customer_id == "acme" and to_integration(to_stored(e)) is not None
    ]
    assert done.count == len(published) > 0
    assert [f.name for f in done.files][-1] == "manifest.json"
    assert all(f.url and view.export_id in f.url for f in done.files)
    assert done.urls_expire_at is not None
    sink = MemorySink(w.files.files, f"exports/acme/{view.export_id}/")
    manifest = sink.get("manifest.json")
    assert manifest is not None
    assert hashlib.sha256(manifest).hexdigest() == done.manifest_sha256
    assert done.files[-1].bytes == len(manifest)
    assert verify_export(sink) == []
    assert sum(f.count or 0 for f in done.files) == done.count


def test_another_customer_never_sees_an_export() -> None:
    w = World()
    view = w.start()
    with pytest.raises(NotFound) as raised:
        w.exports.get("globex", view.export_id)
    assert raised.value.field == "export_id"
    assert w.exports.list("globex").exports == []
    theirs = w.start("globex")
    w.run_all()
    assert [e.export_id for e in w.exports.list("globex").exports] == [theirs.export_id]
    assert all(k.startswith(("exports/acme/", "exports/globex/")) for k in w.files.files)
    for key, data in w.files.files.items():
        if key.startswith(f"exports/globex/{theirs.export_id}/events-"):
            assert b'"customer_id":"acme"' not in data


def test_the_listing_is_newest_first() -> None:
    w = World()
    first = w.start()
    w.clock.now += timedelta(seconds=5)
    second = w.start()
    listed = [e.export_id for e in w.exports.list("acme").exports]
    assert listed == [second.export_id, first.export_id]


def test_an_idempotency_key_returns_the_same_export_and_refuses_another_period() -> None:
    w = World()
    first = w.start(key="q1-audit")
    again = w.start(key="q1-audit")
    assert again.export_id == first.export_id and again.deduplicated
    assert len(w.queue.messages) == 1  # a replay queues nothing
    with pytest.raises(Invalid) as raised:
        w.start(key="q1-audit", until="2026-03-30T00:00:00Z")
    assert raised.value.field == "Idempotency-Key"
    with pytest.raises(Invalid):
        w.start(key="not a key")
    w.clock.now += timedelta(hours=25)  # the claim expired: a new export
    assert w.start(key="q1-audit").export_id != first.export_id


def test_a_permanent_error_fails_at_once_with_a_reason() -> None:
    from botocore.exceptions import ClientError

    w = World()
    view = w.start()

    class Broken(InMemoryExportFiles):
        def sink(self, customer_id: str, export_id: str) -> MemorySink:
            raise ClientError({"Error": {"Code": "NoSuchBucket", "Message": "x"}}, "PutObject")

    w.exports.files = Broken()
    assert w.run_all() == ["FAILED"]
    got = w.exports.get("acme", view.export_id)
    assert got.status == "FAILED" and got.error is not None
    assert got.error.code == "bucket_unavailable" and got.files == []


def test_a_transient_error_is_retried_then_failed_after_the_last_attempt() -> None:
    w = World()
    view = w.start()

    class Flaky(InMemoryExportFiles):
        def sink(self, customer_id: str, export_id: str) -> MemorySink:
            raise TimeoutError("slow")

    w.exports.files = Flaky()
    for attempt in range(1, MAX_ATTEMPTS):
        with pytest.raises(TimeoutError):
            w.exports.run("acme", view.export_id, w.index, attempt=attempt)
        assert w.exports.get("acme", view.export_id).status == "RUNNING"
    assert w.exports.run("acme", view.export_id, w.index, attempt=MAX_ATTEMPTS) == "FAILED"
    got = w.exports.get("acme", view.export_id)
    assert got.error is not None and got.error.code == "export_failed"
    assert "Traceback" not in got.error.message and "slow" not in got.error.message
    # a redelivered message leaves a final export as it is
    assert w.exports.run("acme", view.export_id, w.index) == "FAILED"


def test_a_queue_that_cannot_be_reached_fails_the_export_not_the_request() -> None:
    w = World(broken_queue=True)
    view = w.start()
    assert view.status == "FAILED" and view.error is not None
    assert view.error.code == "not_started"


def test_an_export_nobody_runs_is_answered_stalled() -> None:
    w = World()
    view = w.start()
    w.queue.messages.clear()  # the message was lost
    w.clock.now += timedelta(hours=2)
    got = w.exports.get("acme", view.export_id)
    assert got.status == "FAILED" and got.error is not None and got.error.code == "stalled"
    assert w.store.get("acme", view.export_id).status == "FAILED"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("since", "until", "field"),
    [
        ("2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", "until"),
        ("2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z", "since"),
        ("2025-01-01T00:00:00Z", "2026-01-03T00:00:00Z", "until"),
        ("2026-03-01T00:00:00", "2026-03-02T00:00:00Z", "since"),
        ("2026-03-01T00:00:00Z", "2026-03-02T00:00:00", "until"),
        ("2026-11-22T09:00:13Z", "0301-06-16T05:32:20Z", "until"),  # found by schemathesis
        ("1969-12-31T00:00:00Z", "1970-01-02T00:00:00Z", "since"),
    ],
)
def test_bad_periods_name_their_field(since: str, until: str, field: str) -> None:
    with pytest.raises(Invalid) as raised:
        check_period(datetime.fromisoformat(since), datetime.fromisoformat(until))
    assert raised.value.field == field


def test_a_period_of_366_days_is_allowed() -> None:
    low, high = check_period(
        datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)
    )
    assert low.startswith("2024-01-01") and high.startswith("2024-12-31")


def test_export_ids_are_canonical_uuid7_in_time_order() -> None:
    import re

    from ferry.validation import UUID_PATTERN

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [new_export_id(t0 + timedelta(milliseconds=i)) for i in range(50)]
    assert ids == sorted(ids)
    assert all(re.match(UUID_PATTERN, i) and i[14] == "7" for i in ids)


def test_only_known_permanent_errors_are_classified() -> None:
    from botocore.exceptions import ClientError

    def error(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}}, "Op")

    assert classify(error("AccessDenied")).code == "access_denied"  # type: ignore[union-attr]
    assert classify(error("ThrottlingException")) is None
    assert classify(ValueError("x")) is None


def test_the_exporter_handler_retries_only_what_failed_transiently() -> None:
    import json

    from services.projections.audit_exporter import make_handler

    w = World()
    good, flaky = w.start(), w.start()
    w.queue.messages.clear()
    runs: list[str] = []

    class Flaky(AuditExports):
        def run(self, customer_id: str, export_id: str, index: Any, attempt: int = 1) -> str:
            runs.append(export_id)
            if export_id == flaky.export_id:
                raise TimeoutError("slow")
            return super().run(customer_id, export_id, index, attempt)

    exporter = Flaky(w.store, w.queue, w.files, clock=w.clock)

    def record(message_id: str, body: str) -> dict[str, Any]:
        return {
            "messageId": message_id,
            "receiptHandle": "r",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
            "awsRegion": "us-east-1",
        }

    event = {
        "Records": [
            record("m1", json.dumps({"customer_id": "acme", "export_id": good.export_id})),
            record("m2", json.dumps({"customer_id": "acme", "export_id": flaky.export_id})),
            record("m3", "not json"),
        ]
    }
    answer = make_handler(exporter, w.index)(event, None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m2"}]}  # m3 is dropped
    assert runs == [good.export_id, flaky.export_id]
    assert w.exports.get("acme", good.export_id).status == "SUCCEEDED"
