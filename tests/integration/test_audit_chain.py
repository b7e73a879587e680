"""Issue 11 parts 1 and 2 on moto server over HTTP: the hash chain written by the DynamoDB
recorder (racing writers, legacy events), the tamper cases (state edited, tail deleted, two
versions reordered: each reported with stream, version and what differs), checkpoints in S3, the
customer-and-time index (GET /audit/events, never another customer's) and ``as_of``."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import boto3
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from events.chain import genesis, verify_stream
from events.dynamodb import _HEADS, DynamoDBAggregateRecorder, create_events_table
from ferry.errors import BadRequest, NotFound
from services.projections.audit import Audit, encode_event_token, endpoint_as_of, job_as_of
from services.projections.audit_adapters import DynamoCustomerIndex, S3CheckpointStore
from tests.support.moto_server import unique_name

pytestmark = pytest.mark.usefixtures("aws_env")

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "stored_events_v1.json").read_text())
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _template(topic_suffix: str) -> dict[str, Any]:
    for entry in FIXTURE:
        if entry["topic"].endswith(topic_suffix):
            return json.loads(entry["state"])
    raise KeyError(topic_suffix)


def _event(
    stream: UUID, version: int, topic_suffix: str, at: datetime, customer: str, **changes: Any
) -> StoredEvent:
    topic = next(e["topic"] for e in FIXTURE if e["topic"].endswith(topic_suffix))
    state = _template(topic_suffix)
    state["timestamp"] = {"_type_": "datetime_iso", "_data_": at.isoformat()}
    state["customer_id"] = customer
    for key in ("endpoint_id", "correlation_id", "job_id"):
        if key in state:
            state[key] = str(stream)
    state.update(changes)
    return StoredEvent(
        originator_id=stream,
        originator_version=version,
        topic=topic,
        state=json.dumps(state, separators=(",", ":")).encode(),
    )


def _endpoint_history(stream: UUID, customer: str) -> list[StoredEvent]:
    """create, validate, update twice, disable — one day apart."""
    day = timedelta(days=1)
    return [
        _event(stream, 1, "Endpoint.EndpointRegistered", T0, customer),
        _event(stream, 2, "Endpoint.EndpointValidated", T0 + timedelta(minutes=1), customer),
        _event(stream, 3, "Endpoint.EndpointUpdated", T0 + day, customer, changed={"prefix": "a/"}),
        _event(
            stream, 4, "Endpoint.EndpointUpdated", T0 + 2 * day, customer, changed={"prefix": "b/"}
        ),
        _event(stream, 5, "Endpoint.EndpointDisabled", T0 + 3 * day, customer),
    ]


class Store:
    def __init__(self) -> None:
        self.ddb = boto3.client("dynamodb")
        self.s3 = boto3.client("s3")
        self.table = unique_name("events")
        self.bucket = unique_name("audit")
        create_events_table(self.ddb, self.table)
        self.s3.create_bucket(Bucket=self.bucket)
        self.recorder = DynamoDBAggregateRecorder(self.ddb, self.table)
        self.audit = Audit(
            self.recorder,
            DynamoCustomerIndex(self.ddb, self.table),
            S3CheckpointStore(self.s3, self.bucket),
        )

    def item(self, stream: UUID, version: int) -> dict[str, Any]:
        return self.ddb.get_item(
            TableName=self.table,
            Key={"stream_id": {"S": str(stream)}, "version": {"N": str(version)}},
        )["Item"]

    def append_each(self, events: list[StoredEvent]) -> None:
        """One append (one item) per event, as separate commands write them."""
        for stored in events:
            self.recorder.insert_events([stored])

    def put_raw(self, item: dict[str, Any]) -> None:
        self.ddb.put_item(TableName=self.table, Item=item)


@pytest.fixture
def store() -> Store:
    return Store()


def _problems(report: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(p["stream_id"], p["version"], p["kind"]) for p in report["problems"]]


# --------------------------------------------------------------------------- the chain


def test_every_stored_event_is_chained_from_the_genesis_marker(store: Store) -> None:
    stream = uuid4()
    store.recorder.insert_events(_endpoint_history(stream, "acme")[:2])  # one item, two events
    store.recorder.insert_events(_endpoint_history(stream, "acme")[2:3])  # one item, one event
    items = store.recorder.stream_items(str(stream))
    assert [i["version"] for i in items] == [1, 2, 3]
    assert items[0]["prev_hash"] == genesis(str(stream))
    assert items[1]["prev_hash"] == items[0]["hash"]
    assert items[2]["prev_hash"] == items[1]["hash"]
    assert items[0]["at"] == "2026-03-01T00:00:00.000000Z"
    assert items[0]["customer_id"] == "acme"
    report = verify_stream(str(stream), items)
    assert report.ok and report.head_version == 3 and report.head_hash == items[2]["hash"]


def test_a_writer_without_the_cached_head_reads_it_and_chains_correctly(store: Store) -> None:
    stream = uuid4()
    history = _endpoint_history(stream, "acme")
    store.recorder.insert_events(history[:3])
    _HEADS.clear()  # another process: nothing cached
    other = DynamoDBAggregateRecorder(store.ddb, store.table)
    other.insert_events(history[3:])
    assert verify_stream(str(stream), store.recorder.stream_items(str(stream))).ok


def test_racing_writers_at_one_version_one_wins_and_the_chain_holds(store: Store) -> None:
    stream = uuid4()
    history = _endpoint_history(stream, "acme")
    store.recorder.insert_events(history[:2])
    contenders = [
        _event(
            stream,
            3,
            "Endpoint.EndpointUpdated",
            T0 + timedelta(hours=h),
            "acme",
            changed={"prefix": f"w{h}/"},
        )
        for h in range(1, 9)
    ]
    barrier = threading.Barrier(len(contenders))
    outcomes: list[str] = []

    def write(event: StoredEvent) -> None:
        recorder = DynamoDBAggregateRecorder(boto3.client("dynamodb"), store.table)
        barrier.wait()
        try:
            recorder.insert_events([event])
            outcomes.append("won")
        except IntegrityError:
            outcomes.append("lost")

    threads = [threading.Thread(target=write, args=(e,)) for e in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    items = store.recorder.stream_items(str(stream))
    assert len(items) == 3 and verify_stream(str(stream), items).ok
    winner = next(e for e in contenders if e.state == items[2]["state"])
    assert winner.originator_version == 3


def test_legacy_events_are_chained_from_genesis_and_sealed_on_first_verification(
    store: Store,
) -> None:
    stream = uuid4()
    history = _endpoint_history(stream, "acme")
    for event in history[:3]:  # stored before the chain: the four original attributes only
        store.put_raw(
            {
                "stream_id": {"S": str(stream)},
                "version": {"N": str(event.originator_version)},
                "topic": {"S": event.topic},
                "state": {"B": event.state},
            }
        )
    _HEADS.clear()
    store.recorder.insert_events(history[3:4])  # a new event after legacy ones
    store.recorder.insert_events(history[4:5])
    report = store.audit.verify_stream("acme", str(stream))
    assert report["ok"] and report["sealed"] == 3, report
    sealed = store.item(stream, 1)
    assert sealed["prev_hash"]["S"] == genesis(str(stream)) and "sealed_at" in sealed
    assert store.audit.verify_stream("acme", str(stream))["sealed"] == 0


# --------------------------------------------------------------------------- tamper cases


def test_one_events_state_bytes_edited_in_dynamodb_is_reported_exactly(store: Store) -> None:
    stream = uuid4()
    store.append_each(_endpoint_history(stream, "acme"))
    item = store.item(stream, 3)
    state = json.loads(item["state"]["B"])
    state["changed"] = {"prefix": "exfiltrate/"}
    item["state"] = {"B": json.dumps(state).encode()}
    store.put_raw(item)
    report = store.audit.verify_stream("acme", str(stream))
    assert not report["ok"]
    assert _problems(report) == [(str(stream), 3, "state_edited")]
    assert "state bytes hash to" in report["first_problem"]["detail"]


def test_an_event_deleted_at_the_tail_is_detected_through_the_checkpoint(store: Store) -> None:
    stream = uuid4()
    store.append_each(_endpoint_history(stream, "acme"))
    checkpoint = store.audit.checkpoint("acme")
    assert checkpoint is not None and checkpoint["streams"][str(stream)]["version"] == 5
    assert checkpoint["location"].startswith(f"s3://{store.bucket}/checkpoints/acme/")
    assert store.audit.verify_stream("acme", str(stream))["ok"]
    store.ddb.delete_item(
        TableName=store.table, Key={"stream_id": {"S": str(stream)}, "version": {"N": "5"}}
    )
    # the remaining chain is intact: only the anchor can tell
    assert verify_stream(str(stream), store.recorder.stream_items(str(stream))).ok
    report = store.audit.verify_stream("acme", str(stream))
    assert _problems(report) == [(str(stream), 5, "tail_deleted")]
    assert "the stream ends at version 4" in report["first_problem"]["detail"]
    whole = store.audit.verify_customer("acme")
    assert [(p.stream_id, p.version, p.kind) for p in whole.problems] == [
        (str(stream), 5, "tail_deleted")
    ]


def test_two_versions_reordered_are_reported_exactly(store: Store) -> None:
    stream = uuid4()
    store.append_each(_endpoint_history(stream, "acme"))
    three, four = store.item(stream, 3), store.item(stream, 4)
    three["version"], four["version"] = {"N": "4"}, {"N": "3"}
    store.put_raw(three)
    store.put_raw(four)
    report = store.audit.verify_stream("acme", str(stream))
    kinds = _problems(report)
    assert kinds[:2] == [(str(stream), 3, "reordered"), (str(stream), 4, "reordered")]
    assert report["first_problem"]["detail"] == "version 3 holds the event chained as version 4"


def test_a_middle_event_deleted_breaks_the_chain_at_the_next_version(store: Store) -> None:
    stream = uuid4()
    store.append_each(_endpoint_history(stream, "acme"))
    store.ddb.delete_item(
        TableName=store.table, Key={"stream_id": {"S": str(stream)}, "version": {"N": "3"}}
    )
    report = store.audit.verify_stream("acme", str(stream))
    assert _problems(report) == [(str(stream), 4, "chain_broken")]
    assert "versions 3..3 missing" in report["first_problem"]["detail"]


def test_checkpoints_are_chained_and_an_edited_one_is_reported(store: Store) -> None:
    one, two = uuid4(), uuid4()
    store.recorder.insert_events(_endpoint_history(one, "acme"))
    first = store.audit.checkpoint("acme")
    assert store.audit.checkpoint("acme") is None  # nothing changed since
    # events are stamped when they happen (≈ when stored): the window is by event time
    now = datetime.now(UTC)
    store.recorder.insert_events(
        [
            _event(two, 1, "Endpoint.EndpointRegistered", now, "acme"),
            _event(two, 2, "Endpoint.EndpointValidated", now, "acme"),
        ]
    )
    second = store.audit.checkpoint("acme")
    assert first and second and second["seq"] == 2 and second["prev_hash"] == first["hash"]
    assert list(second["streams"]) == [str(two)]
    assert store.audit.verify_customer("acme").problems == []
    key = second["location"].split("/", 3)[3]
    doc = json.loads(store.s3.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    doc["streams"][str(two)]["version"] = 1
    store.s3.put_object(Bucket=store.bucket, Key=key, Body=json.dumps(doc).encode())
    kinds = [p.kind for p in store.audit.verify_customer("acme").problems]
    assert "checkpoint_edited" in kinds


# --------------------------------------------------------------------------- customer scope


def test_another_customers_stream_is_not_found(store: Store) -> None:
    stream = uuid4()
    store.recorder.insert_events(_endpoint_history(stream, "acme"))
    with pytest.raises(NotFound):
        store.audit.verify_stream("globex", str(stream))
    with pytest.raises(NotFound):
        endpoint_as_of(store.recorder, "globex", str(stream), T0 + timedelta(days=9))
    assert store.audit.events("globex")["events"] == []


# --------------------------------------------------------------------------- events across streams


def test_events_across_streams_in_time_order_paginated_and_counted(store: Store) -> None:
    streams = [uuid4() for _ in range(3)]
    for stream in streams:
        store.append_each(_endpoint_history(stream, "acme"))
    store.append_each(_endpoint_history(uuid4(), "globex"))
    seen: list[dict[str, Any]] = []
    token = None
    pages = 0
    reads = 0
    while True:
        page = store.audit.events("acme", limit=4, next_token=token)
        seen.extend(page["events"])
        pages += 1
        reads += page["reads"]
        token = page["next_token"]
        if token is None:
            break
    assert len(seen) == 15 and pages == 4
    assert {e["detail"]["customer_id"] for e in seen} == {"acme"}
    keys = [(e["occurred_at"], e["stream_id"], e["version"]) for e in seen]
    assert keys == sorted(keys)
    assert reads <= pages + 1  # one Query per page (+ one that finds the end)
    window = store.audit.events(
        "acme",
        since=T0 + timedelta(hours=12),
        until=T0 + timedelta(days=2),
        detail_type="EndpointUpdated",
    )
    assert len(window["events"]) == 6
    assert {e["detail-type"] for e in window["events"]} == {"EndpointUpdated"}
    one = store.audit.events("acme", endpoint_id=str(streams[1]))
    assert {e["stream_id"] for e in one["events"]} == {str(streams[1])}
    assert all(e["hash"] for e in seen)


# --------------------------------------------------------------------------- as of


def test_pages_of_events_end_inside_an_append_and_resume_there(store: Store) -> None:
    """Appends of several events (one index entry each) paged 2 at a time: every event once,
    an append's events in version order, each page at most the limit."""
    streams = [uuid4() for _ in range(3)]
    for stream in streams:
        history = _endpoint_history(stream, "acme")
        store.recorder.insert_events(history[:3])  # one item of three events
        store.recorder.insert_events(history[3:])  # one item of two
    seen: list[dict[str, Any]] = []
    token = None
    sizes = []
    while True:
        page = store.audit.events("acme", limit=2, next_token=token)
        seen.extend(page["events"])
        sizes.append(len(page["events"]))
        token = page["next_token"]
        if token is None:
            break
    assert max(sizes) == 2
    assert sorted((e["stream_id"], e["version"]) for e in seen) == sorted(
        (str(s), v) for s in streams for v in range(1, 6)
    )
    for stream in streams:
        versions = [e["version"] for e in seen if e["stream_id"] == str(stream)]
        assert versions == [1, 2, 3, 4, 5]
    forged = encode_event_token(f"2026-03-01T00:00:00.000000Z#{streams[0]}#000000000001", after=-1)
    with pytest.raises(BadRequest, match="next_token"):
        store.audit.events("acme", next_token=forged)


def test_an_event_removed_from_inside_an_append_breaks_the_chain_there(store: Store) -> None:
    stream = uuid4()
    store.recorder.insert_events(_endpoint_history(stream, "acme"))  # one item, versions 1..5
    item = store.item(stream, 1)
    del item["more"]["L"][1]  # version 3
    store.put_raw(item)
    report = store.audit.verify_stream("acme", str(stream))
    assert _problems(report) == [(str(stream), 4, "chain_broken")]


def test_as_of_answers_match_the_state_at_that_time(store: Store) -> None:
    stream = uuid4()
    store.recorder.insert_events(_endpoint_history(stream, "acme"))

    def at(hours: int) -> Any:
        return endpoint_as_of(store.recorder, "acme", str(stream), T0 + timedelta(hours=hours))

    created = at(0)
    assert created.version == 1 and created.status == "PENDING_VALIDATION"
    assert created.config.get("prefix") == "in/"
    validated = at(1)
    assert validated.version == 2 and validated.status == "ACTIVE"
    assert at(25).config["prefix"] == "a/" and at(25).version == 3
    assert at(49).config["prefix"] == "b/" and at(49).version == 4
    disabled = at(73)
    assert disabled.version == 5 and disabled.status == "DISABLED"
    assert disabled.as_of == "2026-03-04T01:00:00.000000Z"
    with pytest.raises(NotFound):
        at(-1)  # before it existed
    assert "password" not in json.dumps(disabled.model_dump())


def test_job_as_of_folds_both_streams(store: Store) -> None:
    job = uuid4()
    template = [e for e in FIXTURE if e["topic"].startswith("services.jobs.domain:Job.")][:6]
    events = []
    for index, entry in enumerate(template):
        state = json.loads(entry["state"])
        state["timestamp"] = {
            "_type_": "datetime_iso",
            "_data_": (T0 + timedelta(hours=index)).isoformat(),
        }
        state["customer_id"] = "acme"
        state["job_id"] = str(job)
        events.append(
            StoredEvent(
                originator_id=job,
                originator_version=index + 1,
                topic=entry["topic"],
                state=json.dumps(state).encode(),
            )
        )
    store.recorder.insert_events(events)
    queued = job_as_of(store.recorder, "acme", str(job), T0 + timedelta(hours=1, minutes=30))
    assert queued.status == "QUEUED" and queued.job_version == 2
    done = job_as_of(store.recorder, "acme", str(job), T0 + timedelta(days=1))
    assert done.status == "SUCCEEDED" and done.job_version == 6
