"""The DynamoDB persistence module against moto server over HTTP.

Runs eventsourcing's own contract suites (AggregateRecorderTestCase, TrackingRecorderTestCase,
InfrastructureFactoryTestCase) plus Ferry's own checks: racing writers, the 100-event limit,
decoding real DynamoDB Streams records, and an Application saving and reloading through the
factory selected by PERSISTENCE_MODULE. Each test gets its own table names in one shared server.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    OperationalError,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.popo import POPOAggregateRecorder
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    InfrastructureFactoryTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment

from events.dynamodb import (
    MAX_EVENTS_PER_APPEND,
    DynamoDBAggregateRecorder,
    DynamoDBFactory,
    DynamoDBTrackingRecorder,
    stored_event_from_item,
    stored_events_from_item,
)
from tests.support.moto_server import unique_name

pytestmark = pytest.mark.usefixtures("aws_env")

NO_NOTIFICATION_LOG_REASON = (
    "events.dynamodb deliberately has no application sequence (notification log): see "
    "'Decision: no notification log' in the events/dynamodb.py module docstring"
)


def _factory(**env: str) -> DynamoDBFactory:
    settings = {
        "FERRY_EVENTS_TABLE": unique_name("events"),
        "FERRY_TRACKING_TABLE": unique_name("tracking"),
        **env,
    }
    return DynamoDBFactory(Environment(env=settings))


# --------------------------------------------------------------------------- contract suites


@pytest.mark.usefixtures("aws_env")
class TestDynamoDBAggregateRecorder(AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        factory = _factory()
        self.addCleanup(factory.close)
        return factory.aggregate_recorder()


class TestDynamoDBAggregateRecorderWithStrIds(TestDynamoDBAggregateRecorder):
    def new_originator_id(self) -> UUID | str:
        return f"transfer-{uuid4()}"


@pytest.mark.usefixtures("aws_env")
class TestDynamoDBTrackingRecorder(TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        factory = _factory()
        self.addCleanup(factory.close)
        return factory.tracking_recorder()


class CustomTrackingRecorder(DynamoDBTrackingRecorder):
    """A subclass named by TRACKING_RECORDER_TOPIC in the factory contract suite."""


@pytest.mark.usefixtures("aws_env")
class TestDynamoDBFactory(InfrastructureFactoryTestCase[DynamoDBFactory]):
    def setUp(self) -> None:
        self.env = Environment("TestCase")
        self.env[InfrastructureFactory.PERSISTENCE_MODULE] = "events.dynamodb"
        self.env[DynamoDBFactory.FERRY_EVENTS_TABLE] = unique_name("events")
        self.env[DynamoDBFactory.FERRY_TRACKING_TABLE] = unique_name("tracking")
        super().setUp()

    def expected_factory_class(self) -> type[DynamoDBFactory]:
        return DynamoDBFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return DynamoDBAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return ApplicationRecorder  # unused: test_create_application_recorder is skipped

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return DynamoDBTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return CustomTrackingRecorder

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return ProcessRecorder  # unused: test_create_process_recorder is skipped

    @pytest.mark.skip(reason=NO_NOTIFICATION_LOG_REASON)
    def test_create_application_recorder(self) -> None:
        pass

    @pytest.mark.skip(reason=NO_NOTIFICATION_LOG_REASON)
    def test_create_process_recorder(self) -> None:
        pass

    def test_application_and_process_recorders_refuse_with_the_documented_reason(self) -> None:
        for construct in (self.factory.application_recorder, self.factory.process_recorder):
            with self.assertRaisesRegex(ProgrammingError, "no application sequence"):
                construct()


# --------------------------------------------------------------------------- Ferry's checks


@pytest.fixture
def factory() -> Iterator[DynamoDBFactory]:
    factory = _factory()
    yield factory
    factory.close()


@pytest.fixture
def recorder(factory: DynamoDBFactory) -> DynamoDBAggregateRecorder:
    recorder = factory.aggregate_recorder()
    assert isinstance(recorder, DynamoDBAggregateRecorder)
    return recorder


@pytest.mark.parametrize("events_per_append", [1, 5], ids=["one-event", "five-events"])
def test_racing_writers_at_the_same_version_exactly_one_wins(
    recorder: DynamoDBAggregateRecorder, events_per_append: int
) -> None:
    writers = 8
    for _round in range(3):
        stream = uuid4()
        barrier = threading.Barrier(writers)

        def append(writer: int, stream: UUID = stream, barrier: threading.Barrier = barrier) -> str:
            events = [
                StoredEvent(stream, version, "Transfer.Requested", f"writer {writer}".encode())
                for version in range(1, events_per_append + 1)
            ]
            barrier.wait()
            try:
                recorder.insert_events(events)
            except IntegrityError:
                return "conflict"
            return "won"

        with ThreadPoolExecutor(writers) as pool:
            outcomes = list(pool.map(append, range(writers)))

        assert outcomes.count("won") == 1, outcomes
        assert outcomes.count("conflict") == writers - 1
        stored = recorder.select_events(stream)
        winner = outcomes.index("won")
        assert [e.originator_version for e in stored] == list(range(1, events_per_append + 1))
        assert {e.state for e in stored} == {f"writer {winner}".encode()}


def test_an_append_of_more_than_100_events_is_refused_not_split(
    recorder: DynamoDBAggregateRecorder,
) -> None:
    stream = uuid4()
    events = [
        StoredEvent(stream, version, "Transfer.ChunkCommitted", b"{}")
        for version in range(1, MAX_EVENTS_PER_APPEND + 2)
    ]

    with pytest.raises(ProgrammingError, match="at most 100 events"):
        recorder.insert_events(events)
    assert recorder.select_events(stream) == []

    recorder.insert_events(events[:MAX_EVENTS_PER_APPEND])  # exactly 100: one transaction
    assert len(recorder.select_events(stream)) == MAX_EVENTS_PER_APPEND


def test_select_events_follows_pages_of_one_megabyte(recorder: DynamoDBAggregateRecorder) -> None:
    stream = uuid4()
    big = b"x" * 200_000  # 12 x 200 kB: three 1 MB query pages
    for version in range(1, 13):
        recorder.insert_events([StoredEvent(stream, version, "Big", big + bytes([version]))])

    def versions(**kwargs: Any) -> list[int]:
        return [e.originator_version for e in recorder.select_events(stream, **kwargs)]

    assert versions() == list(range(1, 13))
    assert versions(desc=True) == list(range(12, 0, -1))
    assert versions(limit=7) == list(range(1, 8))
    assert versions(desc=True, limit=7) == list(range(12, 5, -1))
    assert versions(gt=2, lte=11) == list(range(3, 12))
    assert versions(gt=2, lte=11, desc=True, limit=6) == list(range(11, 5, -1))
    assert versions(gt=5, lte=5) == []
    assert versions(limit=0) == []
    assert recorder.select_events(stream, lte=1)[0].state == big + b"\x01"


def test_stored_event_from_item_decodes_dynamodb_stream_records(
    factory: DynamoDBFactory, recorder: DynamoDBAggregateRecorder
) -> None:
    transfer = uuid4()
    appended = [
        StoredEvent(transfer, 1, "services.jobs.domain:Transfer.Requested", b'{"a":1}\x00\xff'),
        StoredEvent(transfer, 2, "services.jobs.domain:Transfer.Started", b"{}"),
        StoredEvent(transfer, 3, "services.jobs.domain:Transfer.ChunkCommitted", b"{}"),
        StoredEvent("endpoint-7", 1, "services.endpoints.domain:Endpoint.Registered", b"{}"),
    ]
    recorder.insert_events(appended[:1])
    recorder.insert_events(appended[1:3])  # one item holding versions 2 and 3
    recorder.insert_events(appended[3:])

    images = _read_new_images(factory.client, recorder.table_name)

    assert len(images) == 3  # one stream record per append
    decoded = [e for image in images for e in stored_events_from_item(image)]
    assert sorted(decoded, key=_key) == sorted(appended, key=_key)  # UUID ids come back as UUIDs
    assert {type(e.originator_id) for e in decoded} == {UUID, str}
    first = next(
        i for i in images if i["stream_id"] == {"S": str(transfer)} and i["version"] == {"N": "1"}
    )
    assert isinstance(first["state"]["B"], bytes)

    # As delivered to Lambda by an event source mapping: B values are base64 text.
    as_lambda = {
        name: {"B": base64.b64encode(value["B"]).decode()} if "B" in value else value
        for name, value in first.items()
    }
    assert stored_event_from_item(as_lambda) == stored_event_from_item(first)

    # The boto3 resource (deserialised) format: str, Decimal, Binary.
    deserializer = TypeDeserializer()
    as_resource = {name: deserializer.deserialize(value) for name, value in first.items()}
    assert stored_event_from_item(as_resource) == stored_event_from_item(first)

    # An append of several events, in all three formats.
    pair = next(i for i in images if "more" in i)
    assert stored_events_from_item(pair) == appended[1:3]
    pair_as_lambda = _as_lambda(pair)
    assert stored_events_from_item(pair_as_lambda) == appended[1:3]
    pair_as_resource = {name: deserializer.deserialize(value) for name, value in pair.items()}
    assert stored_events_from_item(pair_as_resource) == appended[1:3]
    table = boto3.resource("dynamodb").Table(recorder.table_name)
    item = table.get_item(Key={"stream_id": str(transfer), "version": 1}, ConsistentRead=True)
    assert stored_event_from_item(item["Item"]) == appended[0]


def _as_lambda(value: Any) -> Any:
    """A typed item as a Lambda event source delivers it (JSON: binary as base64 text)."""
    if isinstance(value, dict) and len(value) == 1:
        (kind, inner), *_ = value.items()
        if kind == "B":
            return {"B": base64.b64encode(inner).decode()}
        if kind == "M":
            return {"M": {k: _as_lambda(v) for k, v in inner.items()}}
        if kind == "L":
            return {"L": [_as_lambda(v) for v in inner]}
        if kind in ("S", "N", "BOOL", "NULL"):
            return value
    return {k: _as_lambda(v) for k, v in value.items()}


def _key(stored_event: StoredEvent) -> tuple[str, int]:
    return str(stored_event.originator_id), stored_event.originator_version


def _read_new_images(client: Any, table_name: str) -> list[dict[str, Any]]:
    stream_arn = client.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams")
    images: list[dict[str, Any]] = []
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            images.extend(r["dynamodb"]["NewImage"] for r in page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return images


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ({"stream_id": {"S": "a"}, "version": {"N": "1"}, "topic": {"S": "t"}}, "missing"),
        (
            {"stream_id": {"S": "a"}, "version": {"N": "1"}, "topic": {"S": "t"}, "state": "%%"},
            "base64",
        ),
        (
            {"stream_id": {"N": "1"}, "version": {"N": "1"}, "topic": {"S": "t"}, "state": b""},
            "'S'",
        ),
        (
            {"stream_id": "a", "version": "1.5", "topic": "t", "state": b""},
            "not an integer",
        ),
    ],
)
def test_stored_event_from_item_rejects_other_items(item: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        stored_event_from_item(item)


def test_a_retried_write_that_meets_its_own_earlier_success_is_not_a_conflict(
    factory: DynamoDBFactory, recorder: DynamoDBAggregateRecorder
) -> None:
    """botocore retries after a lost response: the retry must not become an IntegrityError."""
    sent: list[int] = []

    def retry_once_after_success(attempts: int, response: Any = None, **kwargs: Any) -> Any:
        """A needs-retry hook: resend a request that succeeded, as if its response was lost."""
        sent.append(attempts)
        succeeded = response is not None and response[0].status_code == 200
        return 0.0 if attempts == 1 and succeeded else None

    for operation in ("PutItem", "UpdateItem"):
        factory.client.meta.events.register(
            f"needs-retry.dynamodb.{operation}", retry_once_after_success
        )
    stream = uuid4()
    recorder.insert_events([StoredEvent(stream, 1, "Transfer.Requested", b"{}")])
    assert sent == [1, 2]  # the write really was sent twice
    assert len(recorder.select_events(stream)) == 1
    with pytest.raises(IntegrityError):  # a real second writer still conflicts
        recorder.insert_events([StoredEvent(stream, 1, "Transfer.Requested", b"{}")])

    tracking = factory.tracking_recorder()
    sent.clear()
    tracking.insert_tracking(Tracking("upstream", 5))
    assert sent == [1, 2]
    assert tracking.max_tracking_id("upstream") == 5
    with pytest.raises(IntegrityError):
        tracking.insert_tracking(Tracking("upstream", 5))


def test_database_errors_map_to_the_eventsourcing_hierarchy(factory: DynamoDBFactory) -> None:
    missing_table = DynamoDBAggregateRecorder(factory.client, unique_name("missing"))
    with pytest.raises(ProgrammingError):
        missing_table.select_events(uuid4())
    with pytest.raises(ProgrammingError):
        missing_table.insert_events([StoredEvent(uuid4(), 1, "t", b"")])

    # Nothing listens on port 1: connection refused, without retries.
    unreachable = boto3.client(
        "dynamodb",
        endpoint_url="http://127.0.0.1:1",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(OperationalError):
        DynamoDBAggregateRecorder(unreachable, "events").select_events(uuid4())


def test_tracking_cannot_be_recorded_with_events(recorder: DynamoDBAggregateRecorder) -> None:
    with pytest.raises(ProgrammingError, match="tracking"):
        recorder.insert_events(
            [StoredEvent(uuid4(), 1, "t", b"")], tracking=Tracking("upstream", 1)
        )


# --------------------------------------------------------------------------- Application


class Transfer(Aggregate):
    @event("Requested")
    def __init__(self, source: str, target: str) -> None:
        self.source = source
        self.target = target
        self.chunks_committed = 0

    @event("ChunkCommitted")
    def commit_chunk(self) -> None:
        self.chunks_committed += 1


class Transfers(Application[UUID]):
    """What Ferry applications do: aggregate recorder only (no notification log)."""

    snapshotting_intervals = {Transfer: 3}

    def construct_recorder(self) -> ApplicationRecorder:
        return self.factory.aggregate_recorder()  # type: ignore[return-value]


def test_an_application_saves_and_reloads_through_the_factory_named_by_persistence_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERSISTENCE_MODULE", "events.dynamodb")
    monkeypatch.setenv("FERRY_EVENTS_TABLE", unique_name("events"))

    with Transfers() as app:
        assert isinstance(app.factory, DynamoDBFactory)
        assert isinstance(app.recorder, DynamoDBAggregateRecorder)
        transfer = Transfer(source="s3://in/a.csv", target="sftp://partner/in/a.csv")
        for _ in range(4):
            transfer.commit_chunk()
        app.save(transfer)  # 5 events: one transaction; and a snapshot at version 3

    with Transfers() as app:  # a fresh process, as far as the store can tell
        copy: Transfer = app.repository.get(transfer.id)
        assert copy.chunks_committed == 4
        assert copy.version == 5
        assert copy.target == "sftp://partner/in/a.csv"
        assert app.snapshots is not None
        assert [s.originator_version for s in app.snapshots.get(transfer.id)] == [3]


def test_the_same_application_runs_on_the_in_memory_popo_factory() -> None:
    app = Transfers(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    assert isinstance(app.recorder, POPOAggregateRecorder)
    transfer = Transfer(source="a", target="b")
    transfer.commit_chunk()
    app.save(transfer)
    assert app.repository.get(transfer.id).chunks_committed == 1
