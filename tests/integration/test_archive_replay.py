"""EventBridge archive replay on moto server: the local stack's bus, archive, projections rule and
queue (``ferry.local.bootstrap.create_resources``), events published by the real outbox
(event table stream → bus), delivered from the projections queue to the real projection
consumer (``services.projections.consumer.make_handler``). A replay of the archive reaches the
consumer — every replayed copy is marked ``replay-name`` — and leaves every read-model item
(endpoints and jobs tables) byte-identical: the projections are idempotent consumers.

moto's StartReplay (moto 5.2, ``moto/events/models.py``: ``Replay.replay_events``) differs from
EventBridge, which this test does not rely on:

- it replays the whole archive synchronously inside StartReplay, ignoring EventStartTime/
  EventEndTime and ``Destination.FilterArns`` (every rule of the bus whose pattern matches gets
  the copies; EventBridge sends only to the listed rules, and only the window's events);
- the replay is COMPLETED when StartReplay returns (EventBridge: STARTING, then RUNNING, minutes
  later COMPLETED), so the ``describe_replay`` wait below returns at once;
- the archive rule excludes events with ``replay-name`` (as EventBridge does), so a replay is
  not archived again.

The routes push consumer (S3 Object Created on the default bus) making no job from a replay of
an archive of those events is tested in tests/integration/test_routes_push.py
(``test_push_jobs_duplicates_replays_new_versions_and_no_loops``)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from events import publisher
from events.dynamodb import DynamoDBAggregateRecorder
from events.translate import from_eventbridge
from ferry.local.bootstrap import Resources, create_resources
from ferry.names import ResourceNames
from services.projections.adapters import DynamoReadModelStore
from services.projections.application import Projector, Queries
from services.projections.bootstrap import ProjectionsContext
from services.projections.consumer import Handler, make_handler
from services.projections.samples import History, to_stored
from tests.integration.test_publisher import stream_records
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.moto_server import unique_name
from tests.support.sqs import sqs_record


@pytest.fixture
def stack(aws_env: dict[str, str]) -> Resources:
    names = ResourceNames(prefix=unique_name("arcr"))
    return create_resources(names, aws_env["AWS_ENDPOINT_URL"], aws_env["AWS_REGION"])


def scripted_history() -> History:
    """Two customers: endpoints (one through its whole lifecycle), jobs that succeeded (with a
    retry on the way), failed, were cancelled, and one still queued."""
    h = History(start=datetime.now(UTC) - timedelta(hours=1))
    for customer in ("acme", "bravo"):
        source = h.endpoint_lifecycle(customer)
        target = h.endpoint(customer, endpoint_type="s3")
        for outcome in ("succeeded", "succeeded", "failed", "cancelled", "queued"):
            h.job(customer, source, target, outcome=outcome)
    return h


def publish(stack: Resources, history: History) -> None:
    """The real outbox: append each stream to the event table, publish its stream records."""
    recorder = DynamoDBAggregateRecorder(boto3.client("dynamodb"), stack.names.events_table)
    for stream in dict.fromkeys(e.stream_id for e in history.events):
        recorder.insert_events([to_stored(e) for e in history.events if e.stream_id == stream])
    records = stream_records(stack.names.events_table)
    not_published = publisher.publish_records(
        records, events_client=boto3.client("events"), bus_name=stack.names.bus
    )
    assert not_published == []


def drain(queue_url: str, handle: Handler, seen: list[dict[str, Any]]) -> None:
    """What the Lambda SQS event source does: receive batches of up to 10, hand them to the
    consumer, delete what it did not report as failed; until the queue stays empty."""
    sqs = boto3.client("sqs")
    idle = 0
    while idle < 2:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        if not messages:
            idle += 1
            continue
        idle = 0
        batch = {
            "Records": [sqs_record(m["Body"], m["MessageId"], m["ReceiptHandle"]) for m in messages]
        }
        result = handle(batch, None)
        assert result == {"batchItemFailures": []}
        for message in messages:
            seen.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def read_models(stack: Resources) -> dict[str, list[str]]:
    """Every item of every read-model table, as DynamoDB returns it (attribute types and all),
    canonically encoded: equal snapshots are byte-identical items."""
    ddb = boto3.client("dynamodb")
    out: dict[str, list[str]] = {}
    for table in (stack.names.endpoints_table, stack.names.jobs_table):
        items: list[dict[str, Any]] = []
        for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            items.extend(page["Items"])
        out[table] = sorted(json.dumps(item, sort_keys=True) for item in items)
    return out


def wait_completed(events: Any, replay: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = events.describe_replay(ReplayName=replay)
        if described["State"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return described
        assert time.monotonic() < deadline, f"replay still {described['State']}"
        time.sleep(1)


def test_an_archive_replay_reaches_the_projections_and_changes_no_read_model(
    stack: Resources,
) -> None:
    # Given a scripted history published by the outbox and projected from the projections queue
    store = DynamoReadModelStore(boto3.client("dynamodb"), stack.names)
    recorder = DynamoDBAggregateRecorder(boto3.client("dynamodb"), stack.names.events_table)
    handle = make_handler(
        ProjectionsContext(Projector(store, recorder), Queries(store, recorder), InMemoryKeyStore())
    )
    queue = stack.queue_urls["projections_queue"]
    history = scripted_history()
    publish(stack, history)
    live: list[dict[str, Any]] = []
    drain(queue, handle, live)
    assert live and not any("replay-name" in body for body in live)
    before = read_models(stack)
    jobs = [json.loads(item) for item in before[stack.names.jobs_table]]
    statuses = sorted(j["status"]["S"] for j in jobs)
    assert statuses == sorted(["SUCCEEDED"] * 4 + ["FAILED", "CANCELLED", "QUEUED"] * 2)
    assert len(before[stack.names.endpoints_table]) == 4

    # When the archive is replayed to the bus (the window covers the whole history)
    events = boto3.client("events")
    archive = events.describe_archive(ArchiveName=stack.names.archive)
    assert archive["EventCount"] == len(live)  # moto: the archive holds what the bus got
    rule = events.describe_rule(Name=stack.names.projections_rule, EventBusName=stack.names.bus)
    replay = unique_name("replay")
    events.start_replay(
        ReplayName=replay,
        EventSourceArn=archive["ArchiveArn"],
        EventStartTime=history.events[0].occurred_at - timedelta(minutes=1),
        EventEndTime=datetime.now(UTC),
        Destination={"Arn": stack.bus_arn, "FilterArns": [rule["Arn"]]},
    )
    assert wait_completed(events, replay)["State"] == "COMPLETED"
    replayed: list[dict[str, Any]] = []
    drain(queue, handle, replayed)

    # Then every archived event reached the consumer once more, as a replayed copy...
    assert len(replayed) == len(live) > 0
    assert all(body.get("replay-name") == replay for body in replayed)
    assert sorted(from_eventbridge(json.dumps(b)).event_id for b in replayed) == sorted(
        from_eventbridge(json.dumps(b)).event_id for b in live
    )
    # ...and no read-model item changed by a byte
    assert read_models(stack) == before
    # (the replay was not archived again)
    assert events.describe_archive(ArchiveName=stack.names.archive)["EventCount"] == len(live)
