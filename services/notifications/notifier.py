"""The notifier: what the bus's notifiable events become, one delivery at a time.

``fan_out`` takes one EventBridge event (from the notifications queue) and queues one message per
matching subscription on the delivery queue, so a slow or failing receiver only ever holds up
its own messages. ``deliver`` makes one attempt of one (subscription, event):

1. a message whose ``not_before`` is in the future goes back on the queue for the remaining time
   (SQS delays are at most 15 minutes; a retry hours away takes several hops);
2. the subscription is read again (consistent): deleted → nothing is sent; paused → skipped;
3. the attempt is *claimed* on the delivery item (conditional write: attempt n needs attempt n-1
   claimed), so a duplicate message — an event delivered twice by SQS or EventBridge — sends
   nothing; a claim older than ``stale_seconds`` without its result may be taken over (a worker
   that died mid-attempt);
4. the webhook POST (signed, with a timeout) or the e-mail; the result (status code, latency,
   error) is appended to the delivery item;
5. on failure the next attempt is queued *before* the result is recorded (a crash in between
   loses a record, never a delivery), with exponential backoff until an attempt fails 24 h after
   the first; then the message goes to the delivery queue's DLQ and the delivery is
   ``dead_lettered``.

A replayed event (EventBridge ``replay-name``) reaches only the subscriptions that ask for replays,
and is then a delivery of its own (key ``<event_id>#replay:<name>``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notifications.application import (
    PAUSED,
    DeliveryQueue,
    SigningSecrets,
    SubscriptionStore,
    delivery_message,
)
from services.notifications.domain import (
    SIGNATURE_HEADER,
    is_replay,
    matches,
    needs_job,
    next_attempt_at,
    sign,
)
from services.notifications.email import render_email
from services.notifications.ports import EmailSender, JobLookup, Outcome, WebhookSender

Item = dict[str, Any]
MAX_SQS_DELAY = 900


class JobNotProjectedYet(RuntimeError):
    """A filter needs the job's read-model item and it is not there yet: retry the message."""


class Notifier:
    def __init__(
        self,
        store: SubscriptionStore,
        secrets: SigningSecrets,
        queue: DeliveryQueue,
        webhooks: WebhookSender,
        email: EmailSender,
        jobs: JobLookup,
        *,
        retry_base_seconds: float = 10.0,
        stale_seconds: float = 120.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store, self.secrets, self.queue = store, secrets, queue
        self.webhooks, self.email, self.jobs = webhooks, email, jobs
        self.retry_base_seconds = retry_base_seconds
        self.stale_seconds = stale_seconds
        self.clock = clock or (lambda: datetime.now(UTC))
        self._secret_cache: dict[str, str] = {}

    # ------------------------------------------------------------------ fan-out
    def fan_out(self, event: Item) -> int:
        """Queue one delivery per matching subscription; returns how many."""
        detail = event.get("detail") or {}
        detail_type = str(event.get("detail-type") or "")
        customer_id = detail.get("customer_id")
        if not isinstance(customer_id, str) or not isinstance(detail, dict):
            return 0
        replay = is_replay(event)
        job: Item | None = None
        messages = []
        for subscription in self.store.of_customer(customer_id):
            if replay is not None and not subscription.get("include_replays"):
                continue
            if job is None and needs_job(subscription, detail):
                job = self.jobs.job(str(detail["job_id"]))
                if job is None:
                    raise JobNotProjectedYet(str(detail["job_id"]))
            if matches(subscription, detail_type, detail, job):
                messages.append(
                    delivery_message(customer_id, subscription["subscription_id"], event, replay)
                )
        if messages:
            self.queue.send(messages)
        return len(messages)

    # ------------------------------------------------------------------ one attempt
    def deliver(self, message: Item) -> str:
        now = self.clock()
        not_before = message.get("not_before")
        if not_before and datetime.fromisoformat(not_before) > now:
            wait = (datetime.fromisoformat(not_before) - now).total_seconds()
            self.queue.send([message], delay_seconds=min(MAX_SQS_DELAY, max(1, int(wait + 0.999))))
            return "deferred"
        subscription = self.store.get(message["customer_id"], message["subscription_id"])
        if subscription is None:
            return "subscription_deleted"
        if subscription.get("status") == PAUSED and not message.get("test"):
            return "paused"
        attempt = int(message["attempt"])
        event = message["event"]
        stale = (now - timedelta(seconds=self.stale_seconds)).isoformat()
        fields = {
            "event_id": (event.get("detail") or {}).get("event_id"),
            "detail_type": event.get("detail-type"),
            "replay": message.get("replay"),
        }
        if not self.store.claim_attempt(
            subscription["subscription_id"], message["key"], attempt, fields, now.isoformat(), stale
        ):
            return "duplicate"
        outcome = self._attempt(subscription, event, attempt)
        record = {
            "attempt": attempt,
            "at": now.isoformat(),
            "status_code": outcome.status_code,
            "latency_ms": outcome.latency_ms,
            "error": outcome.error,
        }
        sub_id, key = subscription["subscription_id"], message["key"]
        if outcome.ok:
            self.store.record_attempt(sub_id, key, attempt, record, "delivered", None)
            return "delivered"
        first = datetime.fromisoformat(message.get("first_attempt_at") or now.isoformat())
        when = (
            None
            if outcome.permanent
            else next_attempt_at(attempt, first, self.clock(), self.retry_base_seconds)
        )
        if when is None:
            self.queue.dead_letter({**message, "last_error": outcome.error})
            self.store.record_attempt(sub_id, key, attempt, record, "dead_lettered", None)
            return "dead_lettered"
        following = {
            **message,
            "attempt": attempt + 1,
            "not_before": when.isoformat(),
            "first_attempt_at": first.isoformat(),
        }
        delay = (when - self.clock()).total_seconds()
        self.queue.send([following], delay_seconds=min(MAX_SQS_DELAY, max(0, int(delay))))
        self.store.record_attempt(sub_id, key, attempt, record, "retrying", when.isoformat())
        return "retrying"

    def _attempt(self, subscription: Item, event: Item, attempt: int) -> Outcome:
        target = subscription.get("target") or {}
        if target.get("type") == "email":
            subject, text = render_email(event)
            return self.email.send(str(target["address"]), subject, text)
        body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
        secret = self._secret(str(subscription["secret_arn"]))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Ferry-Webhooks/1",
            SIGNATURE_HEADER: sign(secret, int(self.clock().timestamp()), body),
            "Ferry-Event-Id": str((event.get("detail") or {}).get("event_id")),
            "Ferry-Event-Type": str(event.get("detail-type")),
            "Ferry-Delivery-Attempt": str(attempt),
        }
        return self.webhooks.post(str(target["url"]), body, headers)

    def _secret(self, arn: str) -> str:
        if arn not in self._secret_cache:
            self._secret_cache[arn] = self.secrets.read(arn)
        return self._secret_cache[arn]
