"""The outbox publisher against moto server over HTTP: event table stream → EventBridge bus →
a downstream team's rule (pattern on source + detail-type) → its SQS queue."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest

from events import publisher
from events.contract import EVENT_TYPES, JobQueued, JobRequested
from events.dynamodb import DynamoDBAggregateRecorder, create_events_table
from ferry.names import ENV_BUS_NAME, SOURCE_JOBS, ResourceNames
from services.projections.samples import History, to_stored
from tests.support.moto_server import unique_name

SCHEMAS = Path(publisher.__file__).parent / "schemas"


@pytest.fixture
def names(aws_env: dict[str, str]) -> ResourceNames:
    return ResourceNames(prefix=unique_name("pub"))


def downstream_queue(names: ResourceNames, pattern: dict[str, Any]) -> str:
    """What a downstream team does: its own queue, a rule on the Ferry bus, a queue policy."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue_url = sqs.create_queue(QueueName=unique_name("downstream"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    rule = unique_name("downstream-jobs")
    rule_arn = events.put_rule(
        Name=rule, EventBusName=names.bus, EventPattern=json.dumps(pattern), State="ENABLED"
    )["RuleArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    events.put_targets(Rule=rule, EventBusName=names.bus, Targets=[{"Id": "q", "Arn": queue_arn}])
    return queue_url


def receive(queue_url: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    bodies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < count and time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def stream_records(table: str) -> list[dict[str, Any]]:
    dynamodb, streams = boto3.client("dynamodb"), boto3.client("dynamodbstreams")
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records.extend(dict(r) for r in page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def test_a_downstream_rule_receives_job_requested_and_queued_with_the_documented_fields(
    names: ResourceNames,
) -> None:
    dynamodb, events = boto3.client("dynamodb"), boto3.client("events")
    create_events_table(dynamodb, names.events_table)
    events.create_event_bus(Name=names.bus)
    queue_url = downstream_queue(
        names, {"source": [SOURCE_JOBS], "detail-type": ["JobRequested", "JobQueued"]}
    )

    history = History()
    endpoint_id = history.endpoint("acme")
    job_id = history.job("acme", endpoint_id, endpoint_id, outcome="queued")
    recorder = DynamoDBAggregateRecorder(dynamodb, names.events_table)
    recorder.insert_events([to_stored(e) for e in history.events if e.stream_id == endpoint_id])
    job_events = [e for e in history.events if e.stream_id == job_id]
    recorder.insert_events([to_stored(e) for e in job_events])  # one atomic append

    records = stream_records(names.events_table)
    # one record per append: the endpoint's, then the job's (both its events in one item)
    assert [r["eventName"] for r in records] == ["INSERT", "INSERT"]
    assert len(records[1]["dynamodb"]["NewImage"]["more"]["L"]) == len(job_events) - 1
    assert publisher.publish_records(records, events_client=events, bus_name=names.bus) == []

    received = receive(queue_url, 2)
    assert sorted(b["detail-type"] for b in received) == ["JobQueued", "JobRequested"]
    for body in received:
        assert body["source"] == "ferry.jobs"
        model = EVENT_TYPES[body["detail-type"]]
        parsed = model.model_validate(body["detail"])  # the contract, extra="forbid"
        # every documented field but `replayed`, which only a re-published event carries
        assert set(body["detail"]) == set(model.model_fields) - {"replayed"}
        expected = next(e for e in job_events if e.detail_type() == body["detail-type"])
        assert parsed == expected
        schema = json.loads((SCHEMAS / f"{body['detail-type']}.json").read_text())
        jsonschema.validate(body, schema)  # the published JSON Schema
    requested = next(b for b in received if b["detail-type"] == "JobRequested")
    assert isinstance(JobRequested.model_validate(requested["detail"]), JobRequested)
    assert requested["detail"]["job_id"] == job_id == requested["detail"]["correlation_id"]
    assert requested["detail"]["customer_id"] == "acme"
    queued = next(b for b in received if b["detail-type"] == "JobQueued")
    assert JobQueued.model_validate(queued["detail"]).spec.flow.value == "SFTP_TO_SFTP"
    assert receive(queue_url, 1, timeout=1.5) == []  # endpoint events were not routed here


def test_lambda_handler_with_base64_stream_records_and_ignored_modify(
    names: ResourceNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = boto3.client("events")
    events.create_event_bus(Name=names.bus)
    queue_url = downstream_queue(names, {"source": [SOURCE_JOBS]})
    history = History()
    endpoint_id = history.endpoint("acme")
    job_id = history.job("acme", endpoint_id, endpoint_id, outcome="cancelled")
    job_events = [e for e in history.events if e.stream_id == job_id]

    def lambda_record(event: Any, sequence: int, name: str = "INSERT") -> dict[str, Any]:
        stored = to_stored(event)
        image = {
            "stream_id": {"S": str(stored.originator_id)},
            "version": {"N": str(stored.originator_version)},
            "topic": {"S": stored.topic},
            "state": {"B": base64.b64encode(stored.state).decode()},
        }
        return {
            "eventID": str(sequence),
            "eventName": name,
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "Keys": {k: image[k] for k in ("stream_id", "version")},
                "NewImage": image,
                "SequenceNumber": f"{sequence:021d}",
                "StreamViewType": "NEW_IMAGE",
            },
        }

    records = [lambda_record(e, i + 1) for i, e in enumerate(job_events)]
    records.insert(1, lambda_record(job_events[0], 99, name="MODIFY"))
    monkeypatch.setenv(ENV_BUS_NAME, names.bus)
    monkeypatch.setattr(publisher, "_clients", {})
    assert publisher.handler({"Records": records}, None) == {"batchItemFailures": []}
    received = receive(queue_url, 3)
    assert sorted(b["detail-type"] for b in received) == [
        "JobCancelled",
        "JobQueued",
        "JobRequested",
    ]
