"""Stored aggregate events ↔ published events: the one translation adapter."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import event
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import register_topic

from events.aggregate import FerryAggregate, FerryApplication, transfer_stream_id
from events.contract import (
    EVENT_TYPES,
    JobCancelled,
    JobQueued,
    JobSpec,
    LeaseAcquired,
    parse_detail,
)
from events.translate import (
    UnmappedEvent,
    audit_record,
    detail_type_of_topic,
    event_id_for,
    from_eventbridge,
    merge_in_time_order,
    stream_events,
    to_integration,
    to_put_events_entry,
)

SPEC = {
    "flow": "S3_TO_SFTP",
    "source": {"endpoint_id": "ep-src", "path": "in/a.csv"},
    "target": {"endpoint_id": "ep-dst", "path": "out/a.csv"},
    "options": {"verify": "digest"},
}


class Sample(FerryAggregate):
    class Queued(FerryAggregate.Created):
        contract = JobQueued
        job_id: str
        spec: dict[str, Any]

    class Cancelled(FerryAggregate.Event):
        contract = JobCancelled
        job_id: str
        actor: str
        reason: str | None

    class Noted(FerryAggregate.Event):
        internal = True
        note: str

    class Undeclared(FerryAggregate.Event):
        note: str

    @event(Queued)
    def __init__(self, customer_id: str, correlation_id: str, job_id: str, spec: dict[str, Any]):
        self.customer_id = customer_id
        self.correlation_id = correlation_id
        self.job_id = job_id

    @event(Cancelled)
    def cancel(self, job_id: str, actor: str, reason: str | None) -> None:
        self.cancelled = True

    @event(Noted)
    def internal(self, note: str) -> None:
        pass

    @event(Undeclared)
    def undeclared(self, note: str) -> None:
        pass


def saved_sample() -> tuple[FerryApplication, Sample]:
    app = FerryApplication()
    agg = Sample(customer_id="acme", correlation_id="job-1", job_id="job-1", spec=SPEC)
    agg.cancel(job_id="job-1", actor="key-1", reason=None)
    app.save(agg)
    return app, agg


def test_every_triggered_event_carries_customer_and_correlation_ids() -> None:
    app, agg = saved_sample()
    states = [json.loads(s.state) for s in app.recorder.select_events(agg.id)]
    assert [(s["customer_id"], s["correlation_id"]) for s in states] == [("acme", "job-1")] * 2


def test_stored_events_translate_to_contract_models_with_the_envelope() -> None:
    app, agg = saved_sample()
    published = stream_events(app.recorder, agg.id)
    assert [e.detail_type() for e in published] == ["JobQueued", "JobCancelled"]
    queued = published[0]
    assert isinstance(queued, JobQueued)
    assert queued.stream_id == str(agg.id) and queued.version == 1
    assert queued.event_id == event_id_for(agg.id, 1)
    assert queued.occurred_at.utcoffset() is not None
    assert queued.spec == JobSpec.model_validate(SPEC)
    assert queued.SOURCE == "ferry.jobs"


def test_event_ids_are_deterministic_so_consumers_can_dedupe() -> None:
    app, agg = saved_sample()
    first = [e.event_id for e in stream_events(app.recorder, agg.id)]
    again = [e.event_id for e in stream_events(app.recorder, str(agg.id))]
    assert first == again and len(set(first)) == 2


def test_unpublished_domain_events_translate_to_none() -> None:
    app = FerryApplication()
    agg = Sample(customer_id="acme", correlation_id="job-2", job_id="job-2", spec=SPEC)
    agg.internal(note="x")
    app.save(agg)
    stored = app.recorder.select_events(agg.id)
    assert to_integration(stored[-1]) is None
    assert len(stream_events(app.recorder, agg.id)) == 1


def test_an_event_class_with_no_contract_and_not_internal_fails_loudly() -> None:
    app = FerryApplication()
    agg = Sample(customer_id="acme", correlation_id="job-3", job_id="job-3", spec=SPEC)
    agg.undeclared(note="x")
    app.save(agg)
    stored = app.recorder.select_events(agg.id)
    with pytest.raises(UnmappedEvent, match="names no contract model"):
        to_integration(stored[-1])
    with pytest.raises(UnmappedEvent):
        stream_events(app.recorder, agg.id)


def test_a_stored_topic_that_resolves_to_no_class_fails_loudly() -> None:
    app, agg = saved_sample()
    stored = app.recorder.select_events(agg.id)[0]
    for topic in ("services.jobs.domain:Job.JobRenamed", "services.nowhere:Job.JobQueued"):
        renamed = StoredEvent(stored.originator_id, stored.originator_version, topic, stored.state)
        with pytest.raises(UnmappedEvent, match="resolves to no event class"):
            to_integration(renamed)
        with pytest.raises(UnmappedEvent):
            detail_type_of_topic(topic)


def test_an_event_naming_something_other_than_a_contract_model_fails() -> None:
    class Odd(FerryAggregate):
        class Made(FerryAggregate.Created):
            contract = JobSpec  # not an event model

        @event(Made)
        def __init__(self, customer_id: str, correlation_id: str) -> None:
            self.customer_id = customer_id
            self.correlation_id = correlation_id

    app = FerryApplication()
    agg = Odd(customer_id="a", correlation_id="j")
    app.save(agg)
    with pytest.raises(UnmappedEvent):
        to_integration(app.recorder.select_events(agg.id)[0])


def test_a_domain_event_that_drifts_from_the_contract_fails_loudly() -> None:
    class Drifted(FerryAggregate):
        class Made(FerryAggregate.Created):
            contract = JobQueued
            job_id: str
            colour: str

        @event(Made)
        def __init__(self, customer_id: str, correlation_id: str, job_id: str, colour: str):
            self.customer_id = customer_id
            self.correlation_id = correlation_id

    app = FerryApplication()
    agg = Drifted(customer_id="a", correlation_id="j", job_id="j", colour="red")
    app.save(agg)
    with pytest.raises(ValueError):
        to_integration(app.recorder.select_events(agg.id)[0])


def test_put_events_entry_and_eventbridge_roundtrip() -> None:
    app, agg = saved_sample()
    queued = stream_events(app.recorder, agg.id)[0]
    entry = to_put_events_entry(queued, "ferry-bus")
    assert entry["Source"] == "ferry.jobs" and entry["DetailType"] == "JobQueued"
    assert entry["EventBusName"] == "ferry-bus"
    delivered = {
        "version": "0",
        "id": "x",
        "source": entry["Source"],
        "detail-type": entry["DetailType"],
        "detail": json.loads(entry["Detail"]),
    }
    assert from_eventbridge(json.dumps(delivered)) == queued
    assert parse_detail("JobQueued", json.loads(entry["Detail"])) == queued
    with pytest.raises(ValueError):
        from_eventbridge({**delivered, "detail-type": "NoSuchEvent"})


def test_audit_record_shape() -> None:
    app, agg = saved_sample()
    record = audit_record(stream_events(app.recorder, agg.id)[1])
    assert set(record) >= {"event_id", "detail-type", "stream_id", "version", "occurred_at"}
    assert record["detail"]["actor"] == "key-1"


def test_merge_in_time_order_is_stable() -> None:
    app, agg = saved_sample()
    job_events = stream_events(app.recorder, agg.id)
    lease = LeaseAcquired(
        event_id="e",
        stream_id=str(transfer_stream_id("job-1")),
        version=1,
        occurred_at=job_events[0].occurred_at,
        customer_id="acme",
        correlation_id="job-1",
        job_id="job-1",
        owner_id="exec-1",
        region="us-east-1",
        expires_at=job_events[0].occurred_at,
        attempt=1,
    )
    merged = merge_in_time_order(job_events, [lease])
    assert merged[0] is job_events[0] and merged[1] is lease


def test_transfer_stream_id_is_deterministic() -> None:
    assert transfer_stream_id("job-1") == transfer_stream_id("job-1")
    assert isinstance(transfer_stream_id("job-1"), UUID)
    assert transfer_stream_id("job-1") != transfer_stream_id("job-2")


def test_topic_to_detail_type() -> None:
    assert detail_type_of_topic("services.jobs.domain:Job.JobQueued") == "JobQueued"
    assert detail_type_of_topic("services.executor.domain:Transfer.Opened.LeaseAcquired") == (
        "LeaseAcquired"
    )
    assert detail_type_of_topic("services.endpoints.domain:EndpointName.Claimed") is None


def test_registry_holds_every_issue_listed_event() -> None:
    required = {
        "EndpointRegistered", "EndpointValidated", "EndpointValidationFailed", "EndpointUpdated",
        "EndpointDisabled", "EndpointEnabled", "JobRequested", "JobQueued", "JobCancelled",
        "JobRetryScheduled", "JobSucceeded", "JobFailed", "LeaseAcquired", "LeaseReleased",
        "TransferStarted", "ChunkCommitted", "TransferVerified",
    }  # fmt: skip
    assert required <= set(EVENT_TYPES)
    for model in EVENT_TYPES.values():
        assert model.SOURCE.startswith("ferry.")
        assert {"event_id", "stream_id", "version", "occurred_at", "customer_id",
                "correlation_id", "schema_version"} <= set(model.model_fields)  # fmt: skip


def test_a_renamed_event_class_keeps_its_stored_topic_through_register_topic() -> None:
    app, agg = saved_sample()
    stored = app.recorder.select_events(agg.id)[1]
    old_topic = "tests.unit.test_translate:Sample.CancelledBeforeTheRename"
    register_topic(old_topic, Sample.Cancelled)
    renamed = StoredEvent(stored.originator_id, stored.originator_version, old_topic, stored.state)
    published = to_integration(renamed)
    assert isinstance(published, JobCancelled) and published.actor == "key-1"
