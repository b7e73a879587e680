"""Subscriptions and their deliveries, as a story against in-memory ports (fakes in
tests/support/fakes/notifications.py) and the real resolver: create → fan-out → signed attempt,
retries with backoff, dead-letter after 24 h, replays, deleted and paused subscriptions,
duplicates, filters, validation and the secret shown once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from ferry.api import issue_key
from ferry.apigw import rest_event
from services.executor.egress import EgressPolicy
from services.notifications.application import NotificationsApplication
from services.notifications.bootstrap import bootstrap
from services.notifications.domain import retry_schedule, sign, verify
from services.notifications.handlers import build_resolver
from services.notifications.notifier import JobNotProjectedYet, Notifier
from services.notifications.settings import NotificationsSettings
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.fakes.notifications import (
    InMemoryJobs,
    InMemorySigningSecrets,
    InMemorySubscriptionStore,
    RecordingEmail,
    RecordingQueue,
    ScriptedWebhooks,
)

CUSTOMER = "cust-a"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class World:
    def __init__(self, *statuses: int, allow_http: bool = True) -> None:
        self.clock = Clock()
        self.store = InMemorySubscriptionStore()
        self.secrets = InMemorySigningSecrets()
        self.queue = RecordingQueue()
        self.webhooks = ScriptedWebhooks(*statuses)
        self.email = RecordingEmail()
        self.jobs = InMemoryJobs()
        self.app = NotificationsApplication(
            self.store, self.secrets, self.queue,
            secret_name=lambda c, s: f"t/subscriptions/{c}/{s}",
            egress_allowed=EgressPolicy.from_allow_list("127.0.0.0/8").allowed,
            allow_http=allow_http, clock=self.clock,
        )  # fmt: skip
        self.notifier = Notifier(
            self.store, self.secrets, self.queue, self.webhooks, self.email, self.jobs,
            retry_base_seconds=10, clock=self.clock,
        )  # fmt: skip

    def subscribe(self, **extra: Any) -> dict[str, Any]:
        body = {
            "name": "ops",
            "events": ["JobFailed"],
            "target": {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
            **extra,
        }
        return self.app.create(CUSTOMER, "key:ops", body)

    def run(self) -> list[str]:
        """Deliver every queued message whose time has come (later ones stay queued)."""
        outcomes = []
        for message in self.queue.take():
            outcomes.append(self.notifier.deliver(message))
        return outcomes


def job_failed(job_id: str | None = None, **envelope: Any) -> dict[str, Any]:
    job_id = job_id or str(uuid4())
    return {
        "version": "0",
        "id": str(uuid4()),
        "source": "ferry.jobs",
        "detail-type": "JobFailed",
        "time": T0.isoformat(),
        "detail": {
            "event_id": str(uuid4()),
            "stream_id": job_id,
            "version": 7,
            "occurred_at": T0.isoformat(),
            "customer_id": CUSTOMER,
            "correlation_id": job_id,
            "job_id": job_id,
            "error_code": "SOURCE_NOT_FOUND",
            "error_message": "no such file",
            "attempts": 1,
        },
        **envelope,
    }


def test_a_failed_job_reaches_the_webhook_signed_with_the_secret_shown_once() -> None:
    world = World()
    created = world.subscribe()
    secret = created.pop("secret")
    assert secret.startswith("whsec_") and secret not in json.dumps(created)
    assert world.app.get(CUSTOMER, created["subscription_id"]) == created
    assert secret not in json.dumps(list(world.store.subs.values()))  # only in the secret store

    assert world.notifier.fan_out(job_failed()) == 1
    assert world.run() == ["delivered"]
    url, body, headers = world.webhooks.posts[0]
    assert url == "http://127.0.0.1:9/hook"
    assert json.loads(body)["detail-type"] == "JobFailed"
    assert verify(secret, headers["Ferry-Signature"], body, now=int(T0.timestamp()))
    assert not verify("whsec_" + "x" * 30, headers["Ferry-Signature"], body, int(T0.timestamp()))
    assert not verify(secret, headers["Ferry-Signature"], body, now=int(T0.timestamp()) + 301)
    [delivery] = world.app.deliveries(CUSTOMER, created["subscription_id"], 10)
    assert delivery["status"] == "delivered"
    assert delivery["attempts"][0]["status_code"] == 200


def test_a_given_secret_is_used_and_the_signature_is_the_stripe_scheme() -> None:
    world = World()
    secret = "my-own-secret-of-24-chars-or-more"
    world.subscribe(target={"type": "webhook", "url": "http://127.0.0.1:9/", "secret": secret})
    world.notifier.fan_out(job_failed())
    world.run()
    _, body, headers = world.webhooks.posts[0]
    assert headers["Ferry-Signature"] == sign(secret, int(T0.timestamp()), body)
    t, v1 = headers["Ferry-Signature"].split(",")
    assert t == f"t={int(T0.timestamp())}" and len(v1.removeprefix("v1=")) == 64


def test_a_receiver_answering_500_twice_gets_a_third_attempt_after_backoff() -> None:
    world = World(500, 500, 204)
    sub = world.subscribe()["subscription_id"]
    world.notifier.fan_out(job_failed())
    assert world.run() == ["retrying"]
    [(message, delay)] = world.queue.sent
    assert message["attempt"] == 2 and delay == 10
    assert world.run() == ["deferred"]  # not yet due: back on the queue for the remaining time
    world.clock.now += timedelta(seconds=10)
    assert world.run() == ["retrying"]
    assert world.queue.sent[0][1] == 30  # 10 s, then 30 s
    world.clock.now += timedelta(seconds=30)
    assert world.run() == ["delivered"]
    [delivery] = world.app.deliveries(CUSTOMER, sub, 10)
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 204]
    assert [a["error"] for a in delivery["attempts"]] == ["http_500", "http_500", None]
    assert len(world.webhooks.posts) == 3


def test_a_receiver_failing_for_24_hours_is_dead_lettered() -> None:
    world = World(503)
    sub = world.subscribe()["subscription_id"]
    world.notifier.fan_out(job_failed())
    outcome = ""
    while outcome != "dead_lettered":
        messages = world.queue.take()
        assert len(messages) == 1
        due = messages[0]["not_before"]
        if due:
            world.clock.now = datetime.fromisoformat(due)
        outcome = world.notifier.deliver(messages[0])
    assert world.clock.now - T0 >= timedelta(hours=24)
    [delivery] = world.app.deliveries(CUSTOMER, sub, 10)
    assert delivery["status"] == "dead_lettered"
    assert len(delivery["attempts"]) == len(retry_schedule(10)) == len(world.webhooks.posts)
    assert world.queue.dead and world.queue.dead[0]["last_error"] == "http_503"


def test_a_duplicate_event_is_delivered_once() -> None:
    world = World()
    world.subscribe()
    event = job_failed()
    world.notifier.fan_out(event)
    world.notifier.fan_out(event)  # EventBridge / SQS at least once
    assert sorted(world.run()) == ["delivered", "duplicate"]
    assert len(world.webhooks.posts) == 1


def test_a_deleted_subscription_gets_nothing_even_when_already_queued() -> None:
    world = World()
    sub = world.subscribe()["subscription_id"]
    world.notifier.fan_out(job_failed())
    removed = world.app.delete(CUSTOMER, sub)
    assert removed["status"] == "DELETED" and world.secrets.values == {}
    assert world.run() == ["subscription_deleted"]
    assert world.notifier.fan_out(job_failed()) == 0
    assert world.webhooks.posts == []


def test_a_paused_subscription_gets_nothing_until_resumed() -> None:
    world = World()
    sub = world.subscribe()["subscription_id"]
    assert world.app.set_status(CUSTOMER, sub, "PAUSED")["status"] == "PAUSED"
    assert world.notifier.fan_out(job_failed()) == 0
    world.app.set_status(CUSTOMER, sub, "ACTIVE")
    assert world.notifier.fan_out(job_failed()) == 1


def test_a_replayed_event_is_not_resent_unless_the_subscription_asks() -> None:
    world = World()
    world.subscribe()
    wants = world.subscribe(name="replays", include_replays=True)["subscription_id"]
    event = job_failed()
    world.notifier.fan_out(event)
    assert world.run() == ["delivered", "delivered"]
    replayed = {**event, "replay-name": "after-outage"}
    assert world.notifier.fan_out(replayed) == 1
    [message] = world.queue.sent
    assert message[0]["subscription_id"] == wants
    assert world.run() == ["delivered"]  # a delivery of its own, not a duplicate
    assert world.notifier.fan_out({**event, "detail": {**event["detail"], "replayed": True}}) == 1


def test_filters_match_on_the_event_or_the_job_read_model() -> None:
    world = World()
    route, endpoint = str(uuid4()), str(uuid4())
    world.subscribe(filter={"route_id": route})
    world.subscribe(name="ep", filter={"endpoint_id": endpoint})
    job = str(uuid4())
    with pytest.raises(JobNotProjectedYet):  # not projected yet: the message is retried
        world.notifier.fan_out(job_failed(job))
    world.jobs.jobs[job] = {"job_id": job, "route_id": route, "source": {"endpoint_id": "x"},
                            "target": {"endpoint_id": endpoint}}  # fmt: skip
    assert world.notifier.fan_out(job_failed(job)) == 2
    other = str(uuid4())
    world.jobs.jobs[other] = {"job_id": other, "route_id": None, "source": {}, "target": {}}
    assert world.notifier.fan_out(job_failed(other)) == 0


def test_other_customers_and_other_event_types_do_not_match() -> None:
    world = World()
    world.subscribe()
    event = job_failed()
    event["detail"]["customer_id"] = "cust-b"
    assert world.notifier.fan_out(event) == 0
    assert world.notifier.fan_out({**job_failed(), "detail-type": "JobSucceeded"}) == 0
    with pytest.raises(Exception, match="subscription"):
        world.app.get("cust-b", world.store.of_customer(CUSTOMER)[0]["subscription_id"])


def test_route_failing_stands_for_a_failed_scan_or_a_failed_file_delivery() -> None:
    world = World()
    world.subscribe(events=["RouteFailing"])
    route = str(uuid4())

    def route_event(detail_type: str) -> dict[str, Any]:
        event = job_failed()
        event["source"], event["detail-type"] = "ferry.routes", detail_type
        event["detail"]["route_id"] = route
        event["detail"]["event_id"] = str(uuid4())
        return event

    assert world.notifier.fan_out(route_event("RouteScanFailed")) == 1
    assert world.notifier.fan_out(route_event("FileDeliveryFailed")) == 1
    assert world.notifier.fan_out(route_event("RouteScanRecovered")) == 0
    assert world.notifier.fan_out(job_failed()) == 0


def test_email_subscriptions_get_a_readable_mail() -> None:
    world = World()
    world.subscribe(target={"type": "email", "address": "ops@example.com"})
    event = job_failed()
    world.notifier.fan_out(event)
    assert world.run() == ["delivered"]
    [(to, subject, text)] = world.email.sent
    assert to == "ops@example.com"
    assert subject == f"[Ferry] JobFailed: job {event['detail']['job_id']} (SOURCE_NOT_FOUND)"
    assert "error_message: no such file" in text


def test_test_sends_a_subscription_test_event_to_that_subscription_only() -> None:
    world = World()
    sub = world.subscribe()["subscription_id"]
    world.subscribe(name="other")
    queued = world.app.test(CUSTOMER, sub)
    assert queued["detail_type"] == "SubscriptionTest"
    assert world.run() == ["delivered"]
    assert json.loads(world.webhooks.posts[0][1])["detail"]["subscription_id"] == sub


# ------------------------------------------------------------------------- the HTTP edge


@pytest.fixture
def api() -> Any:
    keys = InMemoryKeyStore()
    write, _ = issue_key(keys, CUSTOMER, name="w")
    read, _ = issue_key(keys, CUSTOMER, name="r", scope="read")
    other, _ = issue_key(keys, "cust-b", name="o")
    context = bootstrap(
        settings=NotificationsSettings(prefix="t", egress_allow=""),
        store=InMemorySubscriptionStore(), secrets=InMemorySigningSecrets(),
        queue=RecordingQueue(), keys=keys,
    )  # fmt: skip
    resolver = build_resolver(context)

    def call(method: str, path: str, body: Any = None, key: str = write) -> tuple[int, Any]:
        path, _, query = path.partition("?")
        event = rest_event(
            method, path, body=None if body is None else json.dumps(body),
            headers={"x-api-key": key}, query=dict([query.split("=")]) if query else None,
        )  # fmt: skip
        response = resolver.resolve(event, None)
        return response["statusCode"], json.loads(response["body"] or "{}")

    return call, {"write": write, "read": read, "other": other}


HOOK = {"type": "webhook", "url": "https://hooks.example.com/ferry"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": ["JobFailed"], "target": HOOK}, "name"),
        ({"name": "x", "events": [], "target": HOOK}, "events"),
        ({"name": "x", "events": ["NoSuchEvent"], "target": HOOK}, "events.0"),
        ({"name": "x", "events": ["JobFailed", "JobFailed"], "target": HOOK}, "events"),
        ({"name": "x", "events": ["JobFailed"], "target": {"type": "pigeon"}}, "target"),
        ({"name": "x", "events": ["JobFailed"], "target": {"type": "webhook", "url": "ftp://a/"}},
         "target.webhook.url"),
        ({"name": "x", "events": ["JobFailed"], "target": {**HOOK, "secret": "short"}},
         "target.webhook.secret"),
        ({"name": "x", "events": ["JobFailed"], "target": {"type": "email", "address": "nope"}},
         "target.email.address"),
        ({"name": "x", "events": ["JobFailed"], "target": HOOK, "filter": {"route_id": "r"}},
         "filter.route_id"),
        ({"name": "x", "events": ["JobFailed"], "target": {"type": "webhook",
          "url": "http://hooks.example.com/"}}, "target.url"),
        ({"name": "x", "events": ["JobFailed"], "target": {"type": "webhook",
          "url": "https://169.254.169.254/latest"}}, "target.url"),
        ({"name": "x", "events": ["JobFailed"], "target": {"type": "webhook",
          "url": "https://localhost:8080/"}}, "target.url"),
    ],
)  # fmt: skip
def test_bad_subscriptions_are_4xx_naming_the_field(api: Any, body: Any, field: str) -> None:
    call, _ = api
    status, answer = call("POST", "/subscriptions", body)
    assert status == 422, answer
    assert answer["error"]["field"] == field


def test_the_api_is_customer_scoped_and_a_read_key_cannot_write(api: Any) -> None:
    call, keys = api
    status, created = call("POST", "/subscriptions", {"name": "x", "events": ["JobFailed"],
                                                      "target": HOOK})  # fmt: skip
    assert status == 201 and "secret" in created
    sub = created["subscription_id"]
    status, shown = call("GET", f"/subscriptions/{sub}")
    assert status == 200 and created["secret"] not in json.dumps(shown)
    assert shown["target"] == {**HOOK, "secret_set": True}
    assert call("GET", f"/subscriptions/{sub}", key=keys["other"])[0] == 404
    assert call("GET", "/subscriptions", key=keys["other"])[1]["count"] == 0
    assert call("DELETE", f"/subscriptions/{sub}", key=keys["other"])[0] == 404
    assert call("POST", f"/subscriptions/{sub}/pause", key=keys["read"])[0] == 403
    assert call("GET", f"/subscriptions/{sub}", key=keys["read"])[0] == 200
    assert call("POST", f"/subscriptions/{sub}/pause")[1]["status"] == "PAUSED"
    assert call("POST", f"/subscriptions/{sub}/resume")[1]["status"] == "ACTIVE"
    assert call("POST", f"/subscriptions/{sub}/test")[0] == 202
    assert call("GET", f"/subscriptions/{sub}/deliveries?limit=0")[0] == 422
    assert call("GET", f"/subscriptions/{sub}/deliveries")[1]["count"] == 0
    assert call("DELETE", f"/subscriptions/{sub}")[1]["status"] == "DELETED"
    assert call("GET", f"/subscriptions/{sub}")[0] == 404
    assert call("GET", "/subscriptions/not-a-uuid")[0] == 404


def test_a_slow_receiver_does_not_hold_up_the_other_deliveries_of_its_batch() -> None:
    """The delivery handler attempts a batch's messages concurrently: a receiver that takes
    1 s (its timeout, say) delays only its own message."""
    import threading
    import time

    from services.notifications.consumer import make_deliver
    from services.notifications.ports import Outcome

    world = World()
    slow = world.subscribe(target={"type": "webhook", "url": "http://127.0.0.1:9/slow"})
    world.subscribe(name="fast", target={"type": "webhook", "url": "http://127.0.0.1:9/fast"})
    answered: dict[str, float] = {}
    lock = threading.Lock()

    class Receivers:
        def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
            if url.endswith("/slow"):
                time.sleep(1.0)
            with lock:
                answered[url.rsplit("/", 1)[1]] = time.monotonic()
            return Outcome(True, 200, 1)

    world.notifier.webhooks = Receivers()
    world.notifier.fan_out(job_failed())
    records = [
        {"messageId": str(i), "body": json.dumps(m)} for i, m in enumerate(world.queue.take())
    ]
    started = time.monotonic()
    result = make_deliver(world.notifier)({"Records": records}, None)
    assert result == {"batchItemFailures": []}
    assert answered["fast"] - started < 0.5 < answered["slow"] - started
    assert slow["subscription_id"] in json.dumps(world.store.items and list(world.store.items))
