"""``ferry replay`` on moto server: a scripted history of two customers in the DynamoDB event
store (read through its customer-and-time index), re-published to a downstream team's new SQS
queue or bus. Every historic JobSucceeded of the customer arrives exactly once per replay, in
order per stream, with ``detail.replayed``, none of the other customer's; a replay interrupted
(a publisher failing after N events; a ``ferry replay`` process killed with SIGKILL) and resumed
delivers exactly the rest; Ferry's own bus and queues are refused before any AWS call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from events.contract import FerryEvent
from events.translate import from_eventbridge
from ferry.cli import main
from ferry.names import ALL_SOURCES, ResourceNames
from services.projections.audit_adapters import DynamoCustomerIndex
from services.projections.replay import PublishResult, Target, plan, replay, start_state
from services.projections.replay_adapters import JsonFileStateStore, SqsPublisher
from services.projections.samples import History
from tests.support.history_store import build_on_moto, seed_event_store, use_cli_env
from tests.support.moto_server import unique_name

pytestmark = pytest.mark.usefixtures("aws_env")

SINCE, UNTIL = "2026-11-01T00:00:00Z", "2026-12-31T23:59:59Z"


class Store:
    """acme: two endpoints, three succeeded jobs and a failed one; globex: a succeeded job."""

    def __init__(self, env: dict[str, str]) -> None:
        self.ddb, self.sqs = boto3.client("dynamodb"), boto3.client("sqs")
        self.events = boto3.client("events")
        h = History()
        src, dst = h.endpoint("acme", endpoint_type="s3"), h.endpoint("acme")
        for outcome in ("succeeded", "failed", "succeeded", "succeeded"):
            h.job("acme", src, dst, outcome=outcome)
        h.job("globex", h.endpoint("globex"), h.endpoint("globex"))
        self.history = h
        self.table, self.keys_table = seed_event_store(h, ["acme", "globex"])
        self.index = DynamoCustomerIndex(self.ddb, self.table)
        self.env = {
            **env,
            "FERRY_EVENTS_TABLE": self.table,
            "FERRY_API_KEYS_TABLE": self.keys_table,
            "FERRY_AUDIT_BUCKET": unique_name("audit"),  # none: no checkpoints
        }

    def of(self, customer: str, kind: str | None = None) -> list[FerryEvent]:
        return [
            e
            for e in self.history.events
            if e.customer_id == customer and (kind is None or e.detail_type() == kind)
        ]

    def queue(self) -> tuple[str, str]:
        url = self.sqs.create_queue(QueueName=unique_name("downstream"))["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    def drain(self, url: str, idle: float = 0.0) -> list[dict[str, Any]]:
        """Every message on the queue, in the order received (deleted as read)."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + idle
        while True:
            got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not got and time.monotonic() >= deadline:
                return out
            for message in got:
                out.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            if not got:
                time.sleep(0.1)


@pytest.fixture(scope="module")
def store(moto_server: str) -> Store:
    return build_on_moto(moto_server, Store)


@pytest.fixture
def cli_env(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_cli_env(store.env, tmp_path, monkeypatch)


def _replay(*args: str) -> int:
    return main(["replay", "--since", SINCE, "--until", UNTIL, *args])


def _ids(events: Sequence[FerryEvent]) -> list[str]:
    return [e.event_id for e in events]


def _per_stream(bodies: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for body in bodies:
        out.setdefault(body["detail"]["stream_id"], []).append(body["detail"]["version"])
    return out


def test_a_new_queue_gets_every_jobsucceeded_of_its_customer_once(
    store: Store, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = store.queue()
    args = ("--customer", "acme", "--detail-type", "JobSucceeded", "--to-queue", url, "--json")
    assert _replay(*args) == 0
    summary = json.loads(capsys.readouterr().out)
    bodies = store.drain(url)
    expected = store.of("acme", "JobSucceeded")
    assert len(expected) == 3 and summary["sent"] == 3
    assert [b["detail"]["event_id"] for b in bodies] == _ids(expected)
    for body in bodies:  # what a rule targeting SQS delivers, so parsed the same way
        assert body["detail-type"] == "JobSucceeded" and body["source"] == "ferry.jobs"
        assert body["detail"]["replayed"] is True and body["detail"]["customer_id"] == "acme"
        assert from_eventbridge(body).replayed is True
        assert body["account"] == url.split("/")[-2] and body["id"] == body["detail"]["event_id"]
    assert _replay(*args) == 0  # once per replay: the rerun of a finished one sends nothing
    assert json.loads(capsys.readouterr().out)["sent"] == 0 and store.drain(url) == []
    assert _replay(*args, "--restart") == 0  # a new replay of the same period
    assert [b["detail"]["event_id"] for b in store.drain(url)] == _ids(expected)


def test_every_type_in_order_per_stream_and_every_customer(store: Store, cli_env: Path) -> None:
    url, _ = store.queue()
    assert _replay("--customer", "acme", "--to-queue", url, "--rate", "500") == 0
    bodies = store.drain(url)
    acme = store.of("acme")
    assert sorted(b["detail"]["event_id"] for b in bodies) == sorted(_ids(acme))
    assert len(bodies) == len(acme)
    assert {b["detail"]["customer_id"] for b in bodies} == {"acme"}
    for stream, versions in _per_stream(bodies).items():
        assert versions == [e.version for e in acme if e.stream_id == stream], stream
    everyone, _ = store.queue()
    assert _replay("--detail-type", "JobSucceeded", "--to-queue", everyone) == 0
    bodies = store.drain(everyone)
    expected = store.of("acme", "JobSucceeded") + store.of("globex", "JobSucceeded")
    assert [b["detail"]["event_id"] for b in bodies] == _ids(expected)


class DyingPublisher(SqsPublisher):
    """The real SQS adapter, except that it raises once ``after`` events were accepted (the
    call that reaches ``after`` sends only up to it): a process dying mid-replay."""

    def __init__(self, client: Any, url: str, after: int) -> None:
        super().__init__(client, url)
        self.left = after

    def publish(self, events: Sequence[FerryEvent]) -> PublishResult:
        if self.left <= 0:
            raise ConnectionError("the replay process died")
        result = super().publish(events[: self.left])
        self.left -= len(result.sent)
        unsent = {e.event_id: "not sent: dying" for e in events[len(result.sent) :]}
        return PublishResult(sent=result.sent, failed={**result.failed, **unsent})


@pytest.mark.parametrize("after", [7, 20])
def test_a_replay_failing_mid_way_resumes_with_exactly_the_rest(
    store: Store, cli_env: Path, after: int
) -> None:
    url, _ = store.queue()
    state_file = cli_env / "state.json"
    replay_plan = plan(
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
        ["acme"],
        [],
        Target("queue", url),
        [ResourceNames()],
    )
    state_store = JsonFileStateStore(state_file)
    state = start_state(replay_plan, state_store, restart=False)
    with pytest.raises(ConnectionError):
        replay(store.index, DyingPublisher(store.sqs, url, after), state_store, replay_plan, state)
    first = store.drain(url)
    assert len(first) == after
    assert json.loads(state_file.read_text())["total_sent"] == after
    assert _replay("--customer", "acme", "--to-queue", url, "--state", str(state_file)) == 0
    rest = store.drain(url)
    ids = [b["detail"]["event_id"] for b in first + rest]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(_ids(store.of("acme")))
    for stream, versions in _per_stream(first + rest).items():
        assert versions == sorted(versions), stream


def test_a_replay_killed_with_sigkill_resumes_with_exactly_the_rest(
    store: Store, cli_env: Path
) -> None:
    url, _ = store.queue()
    state_file = cli_env / "killed.json"
    command = [
        sys.executable, "-m", "ferry.cli", "replay", "--since", SINCE, "--until", UNTIL,
        "--customer", "acme", "--to-queue", url, "--state", str(state_file), "--rate", "5",
    ]  # fmt: skip
    env = {**os.environ, **store.env, "FERRY_DATA_DIR": str(cli_env / "data")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    sent = 0
    while sent < 10 and time.monotonic() < deadline and process.poll() is None:
        # batches of 5, one a second: killed right after a state write, while it waits
        try:
            sent = json.loads(state_file.read_text())["total_sent"]
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL, (
        process.stderr.read() if process.stderr else ""
    )
    first = store.drain(url)
    assert len(first) == sent >= 10
    assert _replay("--customer", "acme", "--to-queue", url, "--state", str(state_file)) == 0
    ids = [b["detail"]["event_id"] for b in first + store.drain(url)]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(_ids(store.of("acme")))


def test_to_bus_through_a_rule_on_a_new_bus(store: Store, cli_env: Path) -> None:
    bus = unique_name("acme-audit")
    store.events.create_event_bus(Name=bus)
    url, arn = store.queue()
    rule = unique_name("replayed")
    pattern = {"source": list(ALL_SOURCES), "detail": {"customer_id": ["acme"]}}
    store.events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
    store.events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    assert _replay("--detail-type", "JobSucceeded", "--to-bus", bus) == 0  # both customers
    bodies = store.drain(url, idle=1.0)
    assert [b["detail"]["event_id"] for b in bodies] == _ids(store.of("acme", "JobSucceeded"))
    assert all(b["detail"]["replayed"] is True for b in bodies)


@pytest.mark.parametrize(
    ("target", "option"),
    [
        (("--to-bus", "ferry-bus"), "--to-bus"),
        (("--to-queue", "QUEUE:ferry-projections"), "--to-queue"),
        (("--to-queue", "QUEUE:ferry-executor-dlq"), "--to-queue"),
    ],
)
def test_ferry_own_bus_and_queues_are_refused(
    store: Store,
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
    target: tuple[str, str],
    option: str,
) -> None:
    flag, value = target
    if value.startswith("QUEUE:"):  # a URL on the moto server, as the local stack's would be
        downstream, _ = store.queue()
        value = downstream.rsplit("/", 1)[0] + "/" + value.removeprefix("QUEUE:")
    assert _replay("--customer", "acme", flag, value) == 2
    message = capsys.readouterr().err
    assert option in message and "Ferry" in message
    assert not (cli_env / "data" / "replays").exists()  # refused before any state or AWS call


def test_an_unreadable_event_store_is_a_cli_error_not_a_traceback(
    store: Store, cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = store.queue()
    monkeypatch.setenv("FERRY_EVENTS_TABLE", unique_name("missing"))
    assert _replay("--customer", "acme", "--to-queue", url) == 1
    assert "cannot read the event store" in capsys.readouterr().err
    assert store.drain(url) == []
