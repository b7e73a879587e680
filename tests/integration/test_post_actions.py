"""The one post-action implementation (services/executor/post_actions.py) on moto server: an S3
move keeps the object (bytes, content headers, metadata, SSE-KMS) and marks it with the
delivering job's ``ferry-job-id``, and is idempotent across crashes; a route's own post-action
move goes through it, so a push route watching the move's destination skips the moved object
(``ferry_written``) instead of sending it again — as found, the routes' move copied without the
marker and the moved object re-triggered the push route."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ferry.names import OBJECT_MARKER
from services.executor.post_actions import destination, s3_delete, s3_move
from services.routes.adapters import DynamoScanStateStore, EndpointSourceOpener, S3ObjectInspector
from services.routes.push import PushConsumer
from tests.integration.routes_harness import RoutesStack, s3_events_queue
from tests.support.fakes.routes import FakeJobs
from tests.support.moto_server import unique_name


@pytest.fixture
def s3(aws_env: dict[str, str]) -> Any:
    return boto3.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = unique_name("moves")
    s3.create_bucket(Bucket=name)
    return name


def test_a_move_keeps_the_object_and_marks_it(s3: Any, bucket: str) -> None:
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    s3.put_object(
        Bucket=bucket,
        Key="in/pay.csv",
        Body=b"iban;amount\n",
        ContentType="text/csv",
        Metadata={"origin": "bank"},
    )

    s3_move(s3, bucket, "in/pay.csv", "done/pay.csv", marker="job-1", kms_key_id=key_id)

    moved = s3.get_object(Bucket=bucket, Key="done/pay.csv")
    assert moved["Body"].read() == b"iban;amount\n"
    assert moved["ContentType"] == "text/csv"
    assert moved["Metadata"] == {"origin": "bank", OBJECT_MARKER: "job-1"}
    assert moved["ServerSideEncryption"] == "aws:kms"
    assert moved["SSEKMSKeyId"].endswith(key_id)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["done/pay.csv"]


def test_a_move_is_idempotent_across_a_crash_and_refuses_a_vanished_file(
    s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="in/a.csv", Body=b"a")
    # a crash between the copy and the delete: both exist; the retry completes the move
    s3.copy_object(
        Bucket=bucket, Key="done/a.csv", CopySource={"Bucket": bucket, "Key": "in/a.csv"}
    )
    s3_move(s3, bucket, "in/a.csv", "done/a.csv", marker="job-2")
    # the whole move done by an earlier attempt: nothing to do, nothing raised
    s3_move(s3, bucket, "in/a.csv", "done/a.csv", marker="job-2")
    head = s3.head_object(Bucket=bucket, Key="done/a.csv")
    assert head["Metadata"] == {OBJECT_MARKER: "job-2"}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["done/a.csv"]
    # neither the source nor the destination: the error is the caller's to report
    with pytest.raises(ClientError):
        s3_move(s3, bucket, "in/none.csv", "done/none.csv", marker="job-3")
    with pytest.raises(ValueError):
        s3_move(s3, bucket, "done/a.csv", "elsewhere/a.csv", marker="")
    s3_delete(s3, bucket, "done/a.csv")
    s3_delete(s3, bucket, "done/a.csv")  # already gone: fine
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_destination_is_the_move_folder_and_the_file_name() -> None:
    assert destination("in/sub/a.csv", "done") == "done/a.csv"
    assert destination("/home/p/in/a.csv", "/home/p/archive/") == "/home/p/archive/a.csv"


def test_a_routes_move_is_marked_and_does_not_retrigger_a_push_route(s3: Any) -> None:
    stack = RoutesStack()
    jobs = FakeJobs()  # the jobs' outcomes are set by the test; ledger, S3 and events are real
    app = stack.use_jobs(jobs)
    box, lake = stack.buckets("box", "lake")
    queue = s3_events_queue(box)
    source = stack.put_endpoint("s3", bucket=box, prefix="")
    target = stack.put_endpoint("s3", bucket=lake, prefix="")
    pulled = stack.create_route(
        {
            "name": "pull-in",
            "source": {"endpoint_id": source, "path": "in"},
            "targets": [{"endpoint_id": target, "path_template": "got/{filename}"}],
            "trigger": {"type": "schedule", "every": "1m"},
            "stable": {"checks": 1},
            "post_action": "move",
            "move_to": "done",
        }
    )
    pushed = stack.create_route(
        {
            "name": "push-done",
            "source": {"endpoint_id": source, "path": "done"},
            "targets": [{"endpoint_id": target, "path_template": "pushed/{filename}"}],
            "trigger": {"type": "event"},
        }
    )
    scanner = stack.scanner(EndpointSourceOpener(stack.names.endpoints_table, s3_client=s3), jobs)
    push = PushConsumer(
        app=app,
        routes=stack.read_model,
        endpoints=app.endpoints,
        objects=S3ObjectInspector(),
        state=DynamoScanStateStore(stack.names.route_scan_table),
        staging_bucket=stack.names.staging_bucket,
    )
    s3.put_object(Bucket=box, Key="in/pay.csv", Body=b"iban;amount\n")
    now = time.time()
    assert scanner.tick(now + 60).dispatched == 1
    [job_id] = list(jobs.requests)
    jobs.finish(job_id, "SUCCEEDED")

    assert scanner.tick(now + 61).settled == 1

    assert app.file_events(pulled, "in/pay.csv")[-1].detail_type() == "FilePostActionCompleted"
    head = s3.head_object(Bucket=box, Key="done/pay.csv")
    assert head["Metadata"] == {OBJECT_MARKER: job_id}
    # the S3 events of the put (in/) and of the move's copy (done/) reach the push consumer
    outcomes = _push_outcomes(queue, push, expect=2)
    assert "ferry_written" in outcomes and "dispatched" not in outcomes
    assert list(jobs.requests) == [job_id]  # no job for the push route
    discovered, skipped = app.file_events(pushed, "done/pay.csv")
    assert discovered.detail_type() == "FileDiscovered"
    assert skipped.detail_type() == "FileSkipped" and skipped.reason == "ferry_written"


def _push_outcomes(queue: str, push: PushConsumer, *, expect: int) -> list[str]:
    sqs = boto3.client("sqs")
    outcomes: list[str] = []
    handled = 0
    deadline = time.monotonic() + 20
    while handled < expect and time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        for message in messages:
            outcomes += push.handle(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            handled += 1
    assert handled == expect, f"{handled} of {expect} S3 events arrived"
    return outcomes
