"""One item per append: the event store without transactions (MRSC global tables have none).

Against a moto server that refuses TransactWriteItems on the events table, as DynamoDB refuses
it on a multi-Region strongly consistent table (``events._moto``'s ``mrsc_tables``). The
DynamoDB recorder must answer every read exactly as eventsourcing's in-memory recorder does,
whatever the appends' sizes; the hash chain must verify across appends and expose an edit
inside one; a cross-stream append is refused and writes nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import boto3
import pytest
from botocore.exceptions import ClientError
from eventsourcing.persistence import IntegrityError, ProgrammingError, StoredEvent
from eventsourcing.popo import POPOAggregateRecorder
from eventsourcing.utils import Environment

from events._moto import SerialMotoServer
from events.chain import verify_stream
from events.dynamodb import (
    MAX_EVENTS_PER_APPEND,
    DynamoDBAggregateRecorder,
    DynamoDBFactory,
    expand_item,
)
from tests.support.moto_server import aws_environment, unique_name

EVENTS_TABLE = unique_name("mrsc-events")


@pytest.fixture(scope="module")
def mrsc_moto() -> Iterator[str]:
    with SerialMotoServer(mrsc_tables=[EVENTS_TABLE]) as server:
        yield server.url


@pytest.fixture
def recorder(
    mrsc_moto: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DynamoDBAggregateRecorder]:
    for name, value in aws_environment(mrsc_moto).items():
        monkeypatch.setenv(name, value)
    factory = DynamoDBFactory(
        Environment(
            env={
                "FERRY_EVENTS_TABLE": EVENTS_TABLE,
                "FERRY_TRACKING_TABLE": unique_name("tracking"),
            }
        )
    )
    recorder = factory.aggregate_recorder()
    assert isinstance(recorder, DynamoDBAggregateRecorder)
    yield recorder
    factory.close()


def _state(stream: UUID, version: int) -> bytes:
    at = f"2026-12-04T10:{version // 60 % 60:02d}:{version % 60:02d}.000000Z"
    return (
        f'{{"originator_id":"{stream}","originator_version":{version},'
        f'"timestamp":"{at}","customer_id":"acme"}}'
    ).encode()


def _events(stream: UUID, first: int, count: int) -> list[StoredEvent]:
    return [
        StoredEvent(stream, v, "services.jobs.domain:Job.Something", _state(stream, v))
        for v in range(first, first + count)
    ]


def _raw_items(recorder: DynamoDBAggregateRecorder, stream: UUID) -> list[dict[str, Any]]:
    return list(
        recorder.client.query(
            TableName=recorder.table_name,
            KeyConditionExpression="stream_id = :s",
            ExpressionAttributeValues={":s": {"S": str(stream)}},
            ConsistentRead=True,
        )["Items"]
    )


def test_the_emulation_refuses_transactions_on_the_mrsc_table(
    recorder: DynamoDBAggregateRecorder,
) -> None:
    item = {"stream_id": {"S": "x"}, "version": {"N": "1"}}
    with pytest.raises(ClientError, match=r"ValidationException.*multi-Region strongly"):
        recorder.client.transact_write_items(
            TransactItems=[{"Put": {"TableName": recorder.table_name, "Item": item}}]
        )
    other = unique_name("regional")
    recorder.client.create_table(
        TableName=other,
        KeySchema=[{"AttributeName": "stream_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "stream_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    recorder.client.transact_write_items(  # a regional table still takes them
        TransactItems=[{"Put": {"TableName": other, "Item": {"stream_id": {"S": "x"}}}}]
    )


def test_an_append_of_several_events_is_one_item(recorder: DynamoDBAggregateRecorder) -> None:
    stream = uuid4()
    recorder.insert_events(_events(stream, 1, 3))
    recorder.insert_events(_events(stream, 4, 1))

    items = _raw_items(recorder, stream)

    assert [int(i["version"]["N"]) for i in items] == [1, 4]
    assert items[0]["last_version"] == {"N": "3"}
    assert [int(m["M"]["version"]["N"]) for m in items[0]["more"]["L"]] == [2, 3]
    assert "more" not in items[1]  # one event: exactly the per-event item
    expanded = [e for i in items for e in expand_item(i)]
    assert [int(e["version"]["N"]) for e in expanded] == [1, 2, 3, 4]
    # every event keeps its own chain link; the append has one index entry (the first's time)
    assert len({e["hash"]["S"] for e in expanded}) == 4
    assert {e["at_key"]["S"] for e in expanded[:3]} == {items[0]["at_key"]["S"]}


def test_reads_answer_as_the_in_memory_recorder_does(recorder: DynamoDBAggregateRecorder) -> None:
    """Random append sizes (one of them the largest, 100 events), then every read shape."""
    rng = random.Random(20261204)
    memory = POPOAggregateRecorder()
    stream = uuid4()
    version = 1
    sizes = [rng.choice([1, 1, 2, 3, 5, 8]) for _ in range(12)]
    sizes.insert(6, MAX_EVENTS_PER_APPEND)
    for size in sizes:
        events = _events(stream, version, size)
        recorder.insert_events(events)
        memory.insert_events(events)
        version += size
    last = version - 1
    bounds = [None, 0, 1, 3, 20, 75, 129, last - 1, last, last + 5]
    shapes = 0
    for gt in bounds:
        for lte in bounds:
            for desc in (False, True):
                for limit in (None, 1, 3, 40):
                    ours = recorder.select_events(stream, gt=gt, lte=lte, desc=desc, limit=limit)
                    theirs = memory.select_events(stream, gt=gt, lte=lte, desc=desc, limit=limit)
                    assert [e.originator_version for e in ours] == [
                        e.originator_version for e in theirs
                    ], (gt, lte, desc, limit)
                    assert list(ours) == list(theirs)
                    shapes += 1
    assert shapes == len(bounds) ** 2 * 8


def test_a_stale_writer_loses_whatever_the_sizes(recorder: DynamoDBAggregateRecorder) -> None:
    stream = uuid4()
    recorder.insert_events(_events(stream, 1, 2))
    recorder.insert_events(_events(stream, 3, 4))  # one item at 3 holding 3..6
    for first, count in [(3, 1), (3, 5), (1, 1), (7, 1)]:
        if first == 7:
            recorder.insert_events(_events(stream, first, count))  # the next free version
            continue
        with pytest.raises(IntegrityError):
            recorder.insert_events(_events(stream, first, count))
    assert [e.originator_version for e in recorder.select_events(stream)] == list(range(1, 8))


def test_an_append_is_one_stream_with_consecutive_versions(
    recorder: DynamoDBAggregateRecorder,
) -> None:
    one, two = uuid4(), uuid4()
    with pytest.raises(ProgrammingError, match="several streams"):
        recorder.insert_events([*_events(one, 1, 1), *_events(two, 1, 1)])
    with pytest.raises(ProgrammingError, match="consecutive"):
        recorder.insert_events([*_events(one, 1, 1), *_events(one, 3, 1)])
    assert recorder.select_events(one) == []
    assert recorder.select_events(two) == []


def test_the_chain_verifies_across_appends_and_exposes_an_edit_inside_one(
    recorder: DynamoDBAggregateRecorder,
) -> None:
    stream = uuid4()
    for first, count in [(1, 1), (2, 3), (5, 1), (6, 2)]:
        recorder.insert_events(_events(stream, first, count))
    report = verify_stream(str(stream), recorder.stream_items(str(stream)))
    assert report.ok and report.head_version == 7

    # Edit the state of version 3, which lives inside the item keyed 2.
    client = boto3.client("dynamodb")
    key = {"stream_id": {"S": str(stream)}, "version": {"N": "2"}}
    item = client.get_item(TableName=recorder.table_name, Key=key, ConsistentRead=True)["Item"]
    follower = item["more"]["L"][0]["M"]
    assert follower["version"] == {"N": "3"}
    follower["state"] = {"B": bytes(follower["state"]["B"]).replace(b"acme", b"evil")}
    client.put_item(TableName=recorder.table_name, Item=item)

    edited = verify_stream(str(stream), recorder.stream_items(str(stream)))
    assert not edited.ok
    assert edited.problems is not None
    assert 3 in {p.version for p in edited.problems}
