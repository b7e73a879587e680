"""The notifications adapters over real sockets: the subscriptions table and its attempt claims
on moto server (two racing claimers: exactly one wins), signing secrets in Secrets Manager, the
delivery queue and its DLQ on SQS, webhook POSTs to a receiver on 127.0.0.1 under the egress
policy (allowed, refused, timed out) and e-mail through SMTP into the real mail catcher."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import uuid4

import boto3
import pytest

from ferry.local import mail
from ferry.local.bootstrap import _create_queue
from ferry.local.stack import free_port
from services.executor.egress import EgressPolicy
from services.notifications.adapters import (
    DynamoSubscriptionStore,
    SecretsManagerSigningSecrets,
    SqsDeliveryQueue,
    create_subscriptions_table,
)
from services.notifications.email import SmtpEmailSender
from services.notifications.webhook import HttpWebhookSender
from tests.support.moto_server import unique_name

NOW, STALE = "2026-12-01T12:00:00+00:00", "2026-12-01T11:58:00+00:00"


@pytest.fixture
def store(aws_env: dict[str, str]) -> DynamoSubscriptionStore:
    table = unique_name("subs")
    create_subscriptions_table(boto3.client("dynamodb"), table)
    return DynamoSubscriptionStore(table)


def test_subscriptions_are_per_customer_and_claims_are_exclusive(
    store: DynamoSubscriptionStore,
) -> None:
    sub = str(uuid4())
    item = {"subscription_id": sub, "customer_id": "a", "name": "n", "events": ["JobFailed"],
            "status": "ACTIVE", "created_at": NOW, "updated_at": NOW}  # fmt: skip
    store.put(item)
    assert store.get("a", sub) == item
    assert store.get("b", sub) is None and store.of_customer("b") == []
    assert store.set_status("b", sub, "PAUSED", NOW) is None
    assert store.set_status("a", sub, "PAUSED", NOW)["status"] == "PAUSED"  # type: ignore[index]

    # two workers race for attempt 1 of the same delivery: exactly one wins
    fields = {"event_id": "e1", "detail_type": "JobFailed", "replay": None}
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        wins.append(store.claim_attempt(sub, "e1", 1, fields, NOW, STALE))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]
    assert not store.claim_attempt(sub, "e1", 1, fields, NOW, STALE)  # a duplicate message
    record = {"attempt": 1, "at": NOW, "status_code": 500, "latency_ms": 4, "error": "http_500"}
    store.record_attempt(sub, "e1", 1, record, "retrying", NOW)
    assert store.claim_attempt(sub, "e1", 2, fields, NOW, STALE)
    assert not store.claim_attempt(sub, "e1", 2, fields, NOW, STALE)  # a duplicate of attempt 2
    # a claim whose worker died (older than the stale mark, no result) is taken over
    assert store.claim_attempt(
        sub, "e1", 2, fields, "2026-12-01T12:10:00+00:00", "2026-12-01T12:05:00+00:00"
    )
    store.record_attempt(
        sub, "e1", 2, {**record, "attempt": 2, "status_code": 200}, "delivered", None
    )
    assert not store.claim_attempt(sub, "e1", 3, fields, NOW, STALE)  # final
    [delivery] = store.deliveries(sub, 10)
    assert delivery["status"] == "delivered" and [
        a["status_code"] for a in delivery["attempts"]
    ] == [500, 200]
    assert store.delete("a", sub)["name"] == "n"  # type: ignore[index]
    assert store.get("a", sub) is None


def test_signing_secrets_and_the_delivery_queue_with_its_dlq(aws_env: dict[str, str]) -> None:
    secrets = SecretsManagerSigningSecrets()
    arn = secrets.create(
        f"t/subscriptions/a/{uuid4()}", "whsec_x" * 5, tags={"ferry:customer": "a"}
    )
    assert secrets.read(arn) == "whsec_x" * 5
    secrets.delete(arn)
    sqs = boto3.client("sqs")
    url = _create_queue(sqs, unique_name("deliver"))
    queue = SqsDeliveryQueue(url)
    queue.send([{"n": i} for i in range(12)], delay_seconds=0)
    got: list[Any] = []
    while len(got) < 12:
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert sorted(json.loads(m["Body"])["n"] for m in got) == list(range(12))
    queue.dead_letter({"gave": "up"})
    dlq = sqs.get_queue_url(QueueName=url.rsplit("/", 1)[1] + "-dlq")["QueueUrl"]
    [dead] = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=2)["Messages"]
    assert json.loads(dead["Body"]) == {"gave": "up"}


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append({"path": self.path, "body": body, "headers": dict(self.headers)})
            if self.path.startswith("/slow"):
                time.sleep(2)
            self.send_response(503 if self.path.startswith("/busy") else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_webhooks_obey_the_egress_policy_and_time_out(receiver: Any) -> None:
    base, seen = receiver
    allowed = HttpWebhookSender(
        EgressPolicy.from_allow_list("127.0.0.0/8"), allow_http=True, timeout=0.5
    )
    ok = allowed.post(base + "/hook?x=1", b'{"a":1}', {"Ferry-Signature": "t=1,v1=ab"})
    assert ok.ok and ok.status_code == 204 and seen[0]["path"] == "/hook?x=1"
    assert seen[0]["body"] == b'{"a":1}' and seen[0]["headers"]["Ferry-Signature"] == "t=1,v1=ab"
    busy = allowed.post(base + "/busy", b"{}", {})
    assert (busy.ok, busy.status_code, busy.error) == (False, 503, "http_503")
    started = time.monotonic()
    slow = allowed.post(base + "/slow", b"{}", {})
    assert (slow.ok, slow.error) == (False, "timeout") and time.monotonic() - started < 1.5

    refused = HttpWebhookSender(EgressPolicy.from_allow_list(""), allow_http=True)
    denied = refused.post(base + "/hook", b"{}", {})
    assert (denied.ok, denied.error, denied.permanent) == (False, "egress_denied", True)
    https_only = HttpWebhookSender(EgressPolicy.from_allow_list("127.0.0.0/8"))
    assert https_only.post(base + "/hook", b"{}", {}).error == "https_required"
    assert len(seen) == 3  # neither refusal opened a connection
    closed = allowed.post(f"http://127.0.0.1:{free_port()}/", b"{}", {})
    assert (closed.ok, closed.error) == (False, "connection_failed")


def test_email_goes_through_smtp_into_the_mail_catcher(tmp_path: Path) -> None:
    port = free_port()
    catcher = mail.start(tmp_path / "mail", port)
    try:
        sent = SmtpEmailSender("127.0.0.1", port, "ferry@localhost").send(
            "ops@example.com", "[Ferry] JobFailed: job 1", "body text\n"
        )
        assert sent.ok
    finally:
        catcher.stop()
    [caught] = mail.messages(tmp_path / "mail")
    assert caught["to"] == "ops@example.com" and caught["subject"] == "[Ferry] JobFailed: job 1"
    assert caught["body"].strip() == "body text"
    down = SmtpEmailSender("127.0.0.1", free_port(), "ferry@localhost").send("a@b.cd", "s", "t")
    assert not down.ok and down.error and down.error.startswith("smtp:")
