"""The local stand-ins on their own (fast): route matching, the SQS and DynamoDB-stream event
source mappings against moto server over HTTP, and the supervisor's restart/stop."""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from events.dynamodb import create_events_table, stored_event_from_item
from ferry.local.apiserver import match_route
from ferry.local.sqs_poller import SqsPoller
from ferry.local.stream_poller import StreamPoller
from ferry.local.supervisor import Service, Supervisor
from tests.e2e.harness import alive, wait_until
from tests.support.moto_server import unique_name


def test_routes_pick_the_handler_and_fill_path_parameters() -> None:
    match, _ = match_route("GET", "/jobs/abc/events")
    assert match is not None
    assert match.resource == "/jobs/{job_id}/events"
    assert match.handler == "services.projections.handlers:handler"
    assert match.path_parameters == {"job_id": "abc"}
    match, _ = match_route("POST", "/jobs/abc/cancel")
    assert match is not None and match.handler == "services.jobs.handlers:handler"
    match, _ = match_route("PATCH", "/endpoints/e1")
    assert match is not None and match.handler == "services.endpoints.handlers:handler"
    assert match_route("DELETE", "/jobs/abc") == (None, True)  # 405
    assert match_route("GET", "/nope") == (None, False)  # 404


class RecordingHandler:
    def __init__(self, fail_bodies: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.events: list[dict[str, Any]] = []
        self.fail_bodies = fail_bodies

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert context.function_name and context.get_remaining_time_in_millis() > 0
        self.events.append(event)
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]}
                for r in event["Records"]
                if r.get("body") in self.fail_bodies
            ]
        }


def test_sqs_poller_deletes_all_but_the_reported_failures(aws_env: dict[str, str]) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=unique_name("poller"), Attributes={"VisibilityTimeout": "1"})[
        "QueueUrl"
    ]
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    handler = RecordingHandler({"b"})
    poller = SqsPoller(sqs, url, handler, function_name="f", region="us-east-1", wait_seconds=0)
    seen = 0
    while seen < 3:
        seen += poller.poll_once()
    record = handler.events[0]["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(url.rsplit("/", 1)[-1])
    assert {"messageId", "receiptHandle", "body", "attributes", "md5OfBody"} <= set(record)
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    time.sleep(1.2)  # the failed one comes back after the visibility timeout, alone
    again = wait_until(lambda: poller.poll_once() or None, 5, what="redelivery")
    assert again == 1
    assert [r["body"] for r in handler.events[-1]["Records"]] == ["b"]


def test_stream_poller_delivers_lambda_shaped_records_once(
    aws_env: dict[str, str], tmp_path: Path
) -> None:
    ddb = boto3.client("dynamodb")
    streams = boto3.client("dynamodbstreams")
    table = unique_name("events")
    create_events_table(ddb, table)
    for version in (1, 2):
        ddb.put_item(
            TableName=table,
            Item={
                "stream_id": {"S": "s-1"},
                "version": {"N": str(version)},
                "topic": {"S": "x:Y"},
                "state": {"B": b"\x00\xffstate"},
            },
        )
    handler = RecordingHandler()
    checkpoint = tmp_path / "checkpoints.json"
    poller = StreamPoller(
        ddb, streams, table, handler, region="us-east-1", checkpoint_path=checkpoint
    )
    assert wait_until(lambda: poller.poll_once() or None, 10, what="stream records") == 2
    record = handler.events[0]["Records"][0]
    assert record["eventSource"] == "aws:dynamodb" and record["eventName"] == "INSERT"
    image = record["dynamodb"]["NewImage"]
    assert image["state"] == {"B": base64.b64encode(b"\x00\xffstate").decode()}
    assert stored_event_from_item(image).state == b"\x00\xffstate"
    json.dumps(handler.events)  # JSON-serialisable, as Lambda's event is

    # A restarted poller resumes after its checkpoint: nothing is delivered twice.
    fresh = RecordingHandler()
    again = StreamPoller(ddb, streams, table, fresh, region="us-east-1", checkpoint_path=checkpoint)
    assert again.poll_once() == 0 and fresh.events == []


def test_stream_poller_retries_from_the_first_failure(aws_env: dict[str, str]) -> None:
    ddb = boto3.client("dynamodb")
    table = unique_name("events")
    create_events_table(ddb, table)
    for version in (1, 2, 3):
        ddb.put_item(
            TableName=table,
            Item={
                "stream_id": {"S": "s"},
                "version": {"N": str(version)},
                "topic": {"S": "t"},
                "state": {"B": b"x"},
            },
        )
    calls: list[list[str]] = []

    def flaky(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seqs = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        calls.append([r["dynamodb"]["Keys"]["version"]["N"] for r in event["Records"]])
        if len(calls) == 1:
            return {"batchItemFailures": [{"itemIdentifier": seqs[1]}]}
        return {"batchItemFailures": []}

    poller = StreamPoller(ddb, boto3.client("dynamodbstreams"), table, flaky, region="us-east-1")
    wait_until(lambda: len(calls) >= 2 or (poller.poll_once() and False), 10, what="a retry")
    assert calls[0] == ["1", "2", "3"]
    assert calls[1] == ["2", "3"]


# ------------------------------------------------------------------------------ supervisor


def _sleeper(name: str, *, child: bool = False) -> Service:
    code = "import time; time.sleep(120)"
    if child:  # a grandchild in the same process group
        code = "import subprocess, time; subprocess.Popen(['sleep', '120']); time.sleep(120)"
    return Service(name, [sys.executable, "-c", code])


def _group_members(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry))
    return found


def test_supervisor_restarts_a_dead_service_and_stops_every_group(tmp_path: Path) -> None:
    events: list[str] = []
    sup = Supervisor(tmp_path / "logs", tmp_path, on_event=events.append, stop_timeout=3)
    stop = threading.Event()
    watcher = threading.Thread(target=sup.run, args=(stop,), daemon=True)
    try:
        sup.add(_sleeper("a"))
        sup.add(_sleeper("b", child=True))
        watcher.start()
        first = sup.pids()["a"]
        group_b = sup.pids()["b"]
        wait_until(lambda: len(_group_members(group_b)) == 2, 10, what="b's grandchild")
        assert json.loads((tmp_path / "pids.json").read_text())["services"]["a"] == first
        os.kill(first, signal.SIGKILL)
        second = wait_until(
            lambda: (p := sup.pids().get("a")) and p != first and p, 10, what="a restarted"
        )
        assert alive(second) and sup.restarts("a") == 1
        assert any("a exited" in e for e in events)
    finally:
        stop.set()
        watcher.join(5)
        sup.stop()
    assert [p for p in sup.all_pids() if alive(p)] == []
    assert _group_members(group_b) == []
    assert not (tmp_path / "pids.json").exists()
    assert "supervisor: starting a" in (tmp_path / "logs" / "a.log").read_text()


def test_a_critical_service_death_is_reported_not_restarted(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path / "logs", tmp_path, stop_timeout=3)
    try:
        sup.add(Service("moto", [sys.executable, "-c", "raise SystemExit(3)"], critical=True))

        def noticed() -> str | None:
            sup.poll_once()
            return sup.failed

        wait_until(noticed, 10, what="failure noticed")
        assert sup.failed == "moto" and sup.pids() == {}
    finally:
        sup.stop()


@pytest.fixture(autouse=True)
def _no_leftover_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)


def test_a_taken_port_is_a_clear_error_not_a_wrong_server() -> None:
    import socket

    from ferry.local.stack import PortInUse, ensure_free

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} is in use.*--moto-port"):
            ensure_free(port, "--moto-port")
