"""Notifications on the local stack (``ferry up``): a webhook receiver on 127.0.0.1 gets a
correctly signed JobFailed within 5 s of the failure (verified with the docs' own example), a
receiver answering 500 twice gets the third attempt, the mail catcher receives the failure
e-mail (``ferry mail``), a deleted subscription gets nothing, and a replayed event is not re-sent
(except to the subscription that asks for replays)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ferry.local.mail import messages
from tests.e2e.harness import REPO, Stack, http, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


class Receiver:
    """A webhook receiver: records every POST; ``/flaky`` answers 500 twice, then 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.flaky = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body,
                     "at": time.time()}
                )  # fmt: skip
                status = 200
                if self.path == "/flaky":
                    receiver.flaky += 1
                    status = 500 if receiver.flaky <= 2 else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str, kind: str = "JobFailed") -> list[dict[str, Any]]:
        return [
            r
            for r in self.requests
            if r["path"] == path and r["headers"].get("Ferry-Event-Type") == kind
        ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()
    found.server.server_close()


def docs_verify() -> Any:
    """The signature check exactly as docs/notifications.md prints it."""
    text = (Path(REPO) / "docs" / "notifications.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code, "docs/notifications.md has no python example"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    return namespace["verify"]


def subscribe(stack: Stack, name: str, target: dict[str, Any], **extra: Any) -> dict[str, Any]:
    status, created = http(
        stack, "POST", "/subscriptions",
        {"name": name, "events": ["JobFailed"], "target": target, **extra},
    )  # fmt: skip
    assert status == 201, created
    return dict(created)


def s3_endpoints(stack: Stack, *names: str) -> list[str]:
    """Register S3 endpoints through the API and wait until every one is ACTIVE."""
    ids = []
    for name in names:
        stack.client("s3").create_bucket(Bucket=name)
        body = {"name": name, "type": "s3", "bucket": name, "direction": "BOTH"}
        status, created = http(stack, "POST", "/endpoints", body)
        assert status == 201, created
        ids.append(str(created["endpoint_id"]))
    for endpoint in ids:
        wait_until(
            lambda e=endpoint: http(stack, "GET", f"/endpoints/{e}")[1].get("status") == "ACTIVE",
            60,
            what=f"endpoint {endpoint} ACTIVE",
        )
    return ids


def drained(stack: Stack) -> bool:
    sqs = stack.client("sqs")
    for name in ("ferry-notifications", "ferry-notifications-deliver"):
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        if any(int(attrs.get(k, 0)) for k in ("ApproximateNumberOfMessages",
                                       "ApproximateNumberOfMessagesNotVisible",
                                       "ApproximateNumberOfMessagesDelayed")):  # fmt: skip
            return False
    return True


def test_a_failed_job_is_told_by_webhook_retry_and_mail_and_not_twice(
    stack: Stack, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "e2e-secret-" + "s" * 24
    monkeypatch.setenv("E2E_SECRET", secret)
    # the CLI once (secret from the environment), the API for the rest
    ok = stack.cli_json(
        "subscriptions", "add", "--name", "ok", "--event", "JobFailed",
        "--webhook", receiver.url("/ok"), "--secret-env", "E2E_SECRET",
    )  # fmt: skip
    assert ok["status"] == "ACTIVE"
    flaky = subscribe(stack, "flaky", {"type": "webhook", "url": receiver.url("/flaky")})
    assert str(flaky["secret"]).startswith("whsec_")
    gone = subscribe(stack, "gone", {"type": "webhook", "url": receiver.url("/gone")})
    subscribe(stack, "replays", {"type": "webhook", "url": receiver.url("/replays")},
              include_replays=True)  # fmt: skip
    subscribe(stack, "mail", {"type": "email", "address": "ops@example.com"})
    assert http(stack, "DELETE", f"/subscriptions/{gone['subscription_id']}")[0] == 200
    listed = http(stack, "GET", "/subscriptions")[1]["items"]
    assert {s["name"] for s in listed} == {"ok", "flaky", "replays", "mail"}
    assert secret not in json.dumps(listed) and flaky["secret"] not in json.dumps(listed)

    # `test` sends a SubscriptionTest to that subscription alone (and warms the notifier up: the
    # 5 s below are measured on a running notifier, not across its first build)
    assert http(stack, "POST", f"/subscriptions/{ok['subscription_id']}/test")[0] == 202
    wait_until(lambda: receiver.at("/ok", "SubscriptionTest"), 30, what="the test event")
    [probe] = receiver.at("/ok", "SubscriptionTest")
    assert docs_verify()(secret, probe["headers"]["Ferry-Signature"], probe["body"])

    source, target = s3_endpoints(stack, "notify-src", "notify-dst")
    status, job = http(stack, "POST", "/transfers", {
        "source": {"endpoint_id": source, "path": "missing.bin"},
        "target": {"endpoint_id": target, "path": "x"},
    })  # fmt: skip
    assert status == 202, job
    wait_until(lambda: receiver.at("/ok"), 60, what="the JobFailed webhook")

    # Signed the Stripe way, verified by the docs' example; within 5 s of the failure
    [hit] = receiver.at("/ok")
    event = json.loads(hit["body"])
    assert event["detail-type"] == "JobFailed" and event["detail"]["job_id"] == job["job_id"]
    assert docs_verify()(secret, hit["headers"]["Ferry-Signature"], hit["body"])
    assert not docs_verify()("x" * 30, hit["headers"]["Ferry-Signature"], hit["body"])
    failed_at = datetime.fromisoformat(event["detail"]["occurred_at"]).timestamp()
    assert hit["at"] - failed_at < 5, f"{hit['at'] - failed_at:.1f} s after the failure"

    # 500, 500, then 200: three attempts, each recorded
    wait_until(lambda: len(receiver.at("/flaky")) >= 3, 60, what="the third attempt")
    deliveries = f"/subscriptions/{flaky['subscription_id']}/deliveries"
    attempts = wait_until(
        lambda: next(
            (d["attempts"] for d in http(stack, "GET", deliveries)[1]["items"]
             if d["status"] == "delivered"), None),
        20, what="the delivered record",
    )  # fmt: skip
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    bodies = {r["body"] for r in receiver.at("/flaky")}
    assert (
        len(bodies) == 1
        and json.loads(bodies.pop())["detail"]["event_id"] == event["detail"]["event_id"]
    )

    # The mail catcher has the failure e-mail
    wait_until(
        lambda: [m for m in messages(stack.data_dir / "mail") if "JobFailed" in m["subject"]],
        30,
        what="the failure e-mail",
    )
    mails = [m for m in stack.cli_json("mail") if "JobFailed" in m["subject"]]
    assert mails[0]["to"] == "ops@example.com" and job["job_id"] in mails[0]["subject"]

    # A replay of the archive (EventBridge StartReplay: every event again, with replay-name)
    # and a duplicate delivery: only the subscription that asks for replays gets the replay
    bus = stack.client("events")
    archive = bus.describe_archive(ArchiveName="ferry-archive")
    bus.start_replay(
        ReplayName="e2e-replay",
        EventSourceArn=archive["ArchiveArn"],
        EventStartTime=datetime.fromtimestamp(failed_at - 3600, UTC),
        EventEndTime=datetime.now(UTC),
        Destination={"Arn": bus.describe_event_bus(Name="ferry-bus")["Arn"]},
    )
    sqs = stack.client("sqs")
    queue = sqs.get_queue_url(QueueName="ferry-notifications")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event))  # a duplicate delivery
    wait_until(lambda: len(receiver.at("/replays")) >= 2, 30, what="the replay to /replays")
    wait_until(lambda: drained(stack), 30, what="the notifier's queues to drain")
    assert len(receiver.at("/ok")) == 1
    assert len(receiver.at("/replays")) == 2
    replayed = [json.loads(r["body"]) for r in receiver.at("/replays")]
    assert sorted(str(r.get("replay-name")) for r in replayed) == ["None", "e2e-replay"]
    assert {r["detail"]["event_id"] for r in replayed} == {event["detail"]["event_id"]}
    assert [r for r in receiver.requests if r["path"] == "/gone"] == []
    assert len(receiver.requests) == 1 + 1 + 3 + 2  # test, ok, flaky x3, replays x2
    assert len(receiver.at("/flaky")) == 3
