"""Tenant-scoped event delivery against moto server: two downstream consumers registered with
``ferry consumers add`` (one per customer), events of customers A and B produced by the real
outbox publisher (event table stream → EventBridge bus) — each consumer's queue receives only
its customer's events. Bad input, unknown customers and tampered rules are refused/flagged."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from events import publisher
from events.dynamodb import DynamoDBAggregateRecorder, create_events_table
from ferry.api import DynamoKeyStore, issue_key
from ferry.cli import main
from ferry.consumers import consumer_pattern
from ferry.names import ResourceNames
from services.projections.samples import History, to_stored
from tests.integration.test_publisher import receive, stream_records
from tests.support.moto_server import unique_name


@pytest.fixture
def names(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ResourceNames:
    names = ResourceNames(prefix=unique_name("cons"))
    monkeypatch.setenv("FERRY_PREFIX", names.prefix)
    monkeypatch.delenv("FERRY_CONSUMER_ACCOUNTS", raising=False)
    boto3.client("events").create_event_bus(Name=names.bus)
    ddb = boto3.client("dynamodb")
    create_events_table(ddb, names.events_table)
    DynamoKeyStore.create_table(ddb, names.api_keys_table)
    keys = DynamoKeyStore(names.api_keys_table, client=ddb)
    for customer in ("acme", "bravo"):
        issue_key(keys, customer)
    return names


def queue() -> str:
    return str(boto3.client("sqs").create_queue(QueueName=unique_name("consumer"))["QueueUrl"])


def ferry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str
) -> tuple[int, dict[str, Any] | None, str]:
    """``ferry consumers ... --json`` in-process: (exit code, JSON output, stderr)."""
    capsys.readouterr()
    code = main(["consumers", *args, "--data-dir", str(tmp_path), "--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else None), captured.err


def publish(names: ResourceNames, history: History) -> None:
    """The real outbox: append to the event table, publish its stream records."""
    recorder = DynamoDBAggregateRecorder(boto3.client("dynamodb"), names.events_table)
    for stream in dict.fromkeys(e.stream_id for e in history.events):
        recorder.insert_events([to_stored(e) for e in history.events if e.stream_id == stream])
    records = stream_records(names.events_table)
    assert (
        publisher.publish_records(records, events_client=boto3.client("events"), bus_name=names.bus)
        == []
    )


def test_each_consumer_receives_only_its_customers_events(
    names: ResourceNames, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    queue_a, queue_b, queue_a_failures = queue(), queue(), queue()
    code, a, _ = ferry(
        capsys, tmp_path, "add", "--customer", "acme", "--name", "audit", "--queue-url", queue_a
    )
    assert code == 0 and a is not None and a["customer_id"] == "acme"
    code, b, _ = ferry(
        capsys, tmp_path, "add", "--customer", "bravo", "--name", "audit", "--queue-url", queue_b
    )
    assert code == 0 and b is not None and b["rule_name"] != a["rule_name"]
    code, _, _ = ferry(
        capsys, tmp_path, "add", "--customer", "acme", "--name", "failures",
        "--queue-url", queue_a_failures, "--detail-type", "JobFailed",
    )  # fmt: skip
    assert code == 0

    # the rule Ferry made filters on the customer, whatever the consumer asked for
    rule = boto3.client("events").describe_rule(Name=a["rule_name"], EventBusName=names.bus)
    assert json.loads(rule["EventPattern"]) == consumer_pattern("acme")

    history = History()
    for customer in ("acme", "bravo", "charlie"):  # charlie has no consumer
        endpoint = history.endpoint(customer)
        history.job(customer, endpoint, endpoint, outcome="failed")
    publish(names, history)
    expected = {
        c: sorted(e.event_id for e in history.events if e.customer_id == c)
        for c in ("acme", "bravo")
    }
    assert expected["acme"] and expected["bravo"]

    got_a = receive(queue_a, len(expected["acme"]))
    got_b = receive(queue_b, len(expected["bravo"]))
    assert sorted(e["detail"]["event_id"] for e in got_a) == expected["acme"]
    assert sorted(e["detail"]["event_id"] for e in got_b) == expected["bravo"]
    assert {e["detail"]["customer_id"] for e in got_a} == {"acme"}
    assert {e["detail"]["customer_id"] for e in got_b} == {"bravo"}
    failures = receive(queue_a_failures, 1)
    assert [(e["detail-type"], e["detail"]["customer_id"]) for e in failures] == [
        ("JobFailed", "acme")
    ]
    time.sleep(1.0)  # nothing else arrives later (another tenant's, a duplicate)
    for q in (queue_a, queue_b, queue_a_failures):
        assert receive(q, 1, timeout=1.5) == []

    code, listed, _ = ferry(capsys, tmp_path, "list")
    assert code == 0 and listed is not None
    assert [(c["customer_id"], c["name"], c["pattern_ok"]) for c in listed["consumers"]] == [
        ("acme", "audit", True),
        ("acme", "failures", True),
        ("bravo", "audit", True),
    ]
    code, only_b, _ = ferry(capsys, tmp_path, "list", "--customer", "bravo")
    assert only_b is not None and [c["name"] for c in only_b["consumers"]] == ["audit"]


def test_remove_is_scoped_to_the_customer(
    names: ResourceNames, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    q = queue()
    assert (
        ferry(capsys, tmp_path, "add", "--customer", "acme", "--name", "audit", "--queue-url", q)[0]
        == 0
    )
    code, _, err = ferry(capsys, tmp_path, "remove", "--customer", "bravo", "--name", "audit")
    assert code != 0 and "no consumer" in err  # bravo cannot remove acme's consumer
    code, removed, _ = ferry(capsys, tmp_path, "remove", "--customer", "acme", "--name", "audit")
    assert code == 0 and removed is not None and removed["name"] == "audit"
    assert ferry(capsys, tmp_path, "list")[1] == {"consumers": []}
    assert boto3.client("events").list_rules(EventBusName=names.bus)["Rules"] == []


def test_a_rule_edited_outside_ferry_is_flagged(
    names: ResourceNames, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    q = queue()
    _, added, _ = ferry(
        capsys, tmp_path, "add", "--customer", "acme", "--name", "audit", "--queue-url", q
    )
    assert added is not None
    boto3.client("events").put_rule(  # someone widens it by hand: every tenant's events
        Name=added["rule_name"],
        EventBusName=names.bus,
        EventPattern=json.dumps({"source": ["ferry.jobs"]}),
    )
    _, listed, _ = ferry(capsys, tmp_path, "list")
    assert listed is not None and [c["pattern_ok"] for c in listed["consumers"]] == [False]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--name", "audit", "--queue-url", "QUEUE"], "customer"),
        (["--customer", "", "--name", "audit", "--queue-url", "QUEUE"], "customer"),
        (["--customer", "acme corp", "--name", "audit", "--queue-url", "QUEUE"], "customer"),
        (["--customer", "acme\x00", "--name", "audit", "--queue-url", "QUEUE"], "customer"),
        (["--customer", "acme", "--queue-url", "QUEUE"], "name"),
        (["--customer", "acme", "--name", "Audit!", "--queue-url", "QUEUE"], "name"),
        (["--customer", "acme", "--name", "a" * 33, "--queue-url", "QUEUE"], "name"),
        (["--customer", "acme", "--name", "audit"], "target"),
        (["--customer", "acme", "--name", "audit", "--queue-url", "not a url"], "queue-url"),
        (["--customer", "acme", "--name", "audit", "--target-bus-arn", "arn:aws:s3:::x"], "target-bus-arn"),
        (["--customer", "acme", "--name", "audit", "--queue-url", "QUEUE", "--detail-type", "Nope"], "detail-type"),
        (["--customer", "nobody", "--name", "audit", "--queue-url", "QUEUE"], "customer"),
        (["--customer", "acme", "--name", "audit", "--queue-url", "MISSING"], "queue-url"),
    ],
)  # fmt: skip
def test_bad_input_is_a_cli_error_naming_the_field(
    names: ResourceNames,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: list[str],
    field: str,
) -> None:
    q = queue()
    missing = q.rsplit("/", 1)[0] + "/no-such-queue"
    args = [q if a == "QUEUE" else missing if a == "MISSING" else a for a in args]
    code, output, err = ferry(capsys, tmp_path, "add", *args)
    assert code != 0 and output is None
    assert json.loads(err)["error"]["field"] == field, err
    assert boto3.client("events").list_rules(EventBusName=names.bus)["Rules"] == []


def test_a_second_consumer_with_the_same_name_is_a_conflict(
    names: ResourceNames, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    q = queue()
    assert (
        ferry(capsys, tmp_path, "add", "--customer", "acme", "--name", "audit", "--queue-url", q)[0]
        == 0
    )
    code, _, err = ferry(
        capsys, tmp_path, "add", "--customer", "acme", "--name", "audit", "--queue-url", q
    )
    assert code != 0 and json.loads(err)["error"]["field"] == "name"


def test_target_bus_in_a_consumer_account(
    names: ResourceNames,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In AWS the target is the consumer account's bus, restricted to the deployment's
    consumer accounts; the Ferry bus itself is never a target."""
    monkeypatch.setenv("FERRY_CONSUMER_ACCOUNTS", "111122223333")
    ok = "arn:aws:events:us-east-1:111122223333:event-bus/acme-inbox"
    code, added, _ = ferry(
        capsys, tmp_path, "add", "--customer", "acme", "--name", "audit", "--target-bus-arn", ok
    )
    assert code == 0 and added is not None and added["target_arn"] == ok
    other = "arn:aws:events:us-east-1:444455556666:event-bus/x"
    code, _, err = ferry(
        capsys, tmp_path, "add", "--customer", "acme", "--name", "other", "--target-bus-arn", other
    )
    assert code != 0 and "444455556666" in err
    own = f"arn:aws:events:us-east-1:111122223333:event-bus/{names.bus}"
    code, _, err = ferry(
        capsys, tmp_path, "add", "--customer", "acme", "--name", "loop", "--target-bus-arn", own
    )
    assert code != 0 and "Ferry bus" in err
