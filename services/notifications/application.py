"""The subscriptions API's application: create, list, show, pause, resume, delete, test, and the
delivery log. Ports are declared here; ``adapters.py`` implements them on DynamoDB, Secrets
Manager and SQS, ``tests/support/fakes/notifications.py`` in memory.

A webhook's signing secret is written to Secrets Manager only; the subscription item keeps its
ARN and every view leaves both out. ``create`` returns the secret once, in the 201 response.
"""

from __future__ import annotations

import secrets as _secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from services.notifications.domain import (
    SECRET_PREFIX,
    SubscriptionNotFound,
    SubscriptionRequest,
    WebhookTarget,
    check_webhook_url,
)

Item = dict[str, Any]
Clock = Callable[[], datetime]

ACTIVE, PAUSED = "ACTIVE", "PAUSED"
TEST_DETAIL_TYPE = "SubscriptionTest"
SOURCE_NOTIFICATIONS = "ferry.notifications"


class SubscriptionStore(Protocol):
    """Subscriptions (per customer) and their deliveries (per subscription and delivery key)."""

    def put(self, item: Item) -> None: ...
    def get(self, customer_id: str, subscription_id: str) -> Item | None: ...
    def of_customer(self, customer_id: str) -> list[Item]: ...
    def set_status(
        self, customer_id: str, subscription_id: str, status: str, at: str
    ) -> Item | None: ...
    def delete(self, customer_id: str, subscription_id: str) -> Item | None: ...
    def deliveries(self, subscription_id: str, limit: int) -> list[Item]: ...
    def delivery(self, subscription_id: str, key: str) -> Item | None: ...
    def claim_attempt(
        self,
        subscription_id: str,
        key: str,
        attempt: int,
        fields: Item,
        now: str,
        stale_before: str,
    ) -> bool: ...
    def record_attempt(
        self,
        subscription_id: str,
        key: str,
        attempt: int,
        record: Item,
        status: str,
        next_attempt_at: str | None,
    ) -> None: ...


class SigningSecrets(Protocol):
    def create(self, name: str, value: str, *, tags: dict[str, str]) -> str: ...
    def read(self, arn: str) -> str: ...
    def delete(self, arn: str) -> None: ...


class DeliveryQueue(Protocol):
    def send(self, messages: list[Item], delay_seconds: int = 0) -> None: ...
    def dead_letter(self, message: Item) -> None: ...


def view(item: Item) -> Item:
    """A subscription as the API shows it: never the secret, never its ARN."""
    target = dict(item.get("target") or {})
    target.pop("secret", None)
    if target.get("type") == "webhook":
        target["secret_set"] = True
    return {
        "subscription_id": item["subscription_id"],
        "name": item["name"],
        "events": list(item.get("events") or []),
        "filter": {k: v for k, v in (item.get("filter") or {}).items() if v},
        "target": target,
        "include_replays": bool(item.get("include_replays")),
        "status": item["status"],
        "created_at": item["created_at"],
        "updated_at": item["updated_at"],
    }


def delivery_view(item: Item) -> Item:
    return {
        "event_id": item.get("event_id"),
        "detail_type": item.get("detail_type"),
        "replay": item.get("replay"),
        "status": item.get("status"),
        "attempts": [
            {k: a.get(k) for k in ("attempt", "at", "status_code", "latency_ms", "error")}
            for a in item.get("attempts") or []
        ],
        "next_attempt_at": item.get("next_attempt_at"),
        "created_at": item.get("created_at"),
    }


class NotificationsApplication:
    def __init__(
        self,
        store: SubscriptionStore,
        secrets: SigningSecrets,
        queue: DeliveryQueue,
        *,
        secret_name: Callable[[str, str], str],
        egress_allowed: Callable[[str], bool],
        allow_http: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.secrets = secrets
        self.queue = queue
        self.secret_name = secret_name
        self.egress_allowed = egress_allowed
        self.allow_http = allow_http
        self.clock = clock or (lambda: datetime.now(UTC))

    def _now(self) -> str:
        return self.clock().isoformat()

    def create(self, customer_id: str, actor: str, body: Any) -> Item:
        """Returns the view, plus ``secret`` (once) for a webhook."""
        request = SubscriptionRequest.model_validate(body)
        subscription_id = str(uuid.uuid4())
        target = request.target.model_dump(mode="json")
        secret: str | None = None
        item: Item = {
            "subscription_id": subscription_id,
            "customer_id": customer_id,
            "name": request.name,
            "events": list(request.events),
            "filter": request.filter.model_dump(mode="json", exclude_none=True),
            "include_replays": request.include_replays,
            "status": ACTIVE,
            "created_by": actor,
            "created_at": self._now(),
            "updated_at": self._now(),
        }
        if isinstance(request.target, WebhookTarget):
            check_webhook_url(
                request.target.url, allow_http=self.allow_http, allowed=self.egress_allowed
            )
            secret = request.target.secret or SECRET_PREFIX + _secrets.token_urlsafe(32)
            target.pop("secret", None)
            item["secret_arn"] = self.secrets.create(
                self.secret_name(customer_id, subscription_id),
                secret,
                tags={"ferry:customer": customer_id, "ferry:subscription": subscription_id},
            )
        item["target"] = target
        try:
            self.store.put(item)
        except BaseException:
            if item.get("secret_arn"):
                self.secrets.delete(item["secret_arn"])
            raise
        shown = view(item)
        if secret is not None:
            shown["secret"] = secret
        return shown

    def list_all(self, customer_id: str) -> list[Item]:
        items = sorted(self.store.of_customer(customer_id), key=lambda i: i["created_at"])
        return [view(i) for i in items]

    def _get(self, customer_id: str, subscription_id: str) -> Item:
        found = self.store.get(customer_id, subscription_id)
        if found is None:
            raise SubscriptionNotFound("no such subscription", field="subscription_id")
        return found

    def get(self, customer_id: str, subscription_id: str) -> Item:
        return view(self._get(customer_id, subscription_id))

    def set_status(self, customer_id: str, subscription_id: str, status: str) -> Item:
        changed = self.store.set_status(customer_id, subscription_id, status, self._now())
        if changed is None:
            raise SubscriptionNotFound("no such subscription", field="subscription_id")
        return view(changed)

    def delete(self, customer_id: str, subscription_id: str) -> Item:
        removed = self.store.delete(customer_id, subscription_id)
        if removed is None:
            raise SubscriptionNotFound("no such subscription", field="subscription_id")
        if removed.get("secret_arn"):
            self.secrets.delete(removed["secret_arn"])
        return {**view(removed), "status": "DELETED"}

    def deliveries(self, customer_id: str, subscription_id: str, limit: int) -> list[Item]:
        self._get(customer_id, subscription_id)  # 404 for another customer's subscription
        items = self.store.deliveries(subscription_id, 1000)
        items.sort(key=lambda i: str(i.get("created_at") or ""), reverse=True)
        return [delivery_view(i) for i in items[:limit]]

    def test(self, customer_id: str, subscription_id: str) -> Item:
        """Queue a ``SubscriptionTest`` event for this subscription alone (paused or not)."""
        self._get(customer_id, subscription_id)
        event_id = str(uuid.uuid4())
        now = self._now()
        event = {
            "version": "0",
            "id": event_id,
            "source": SOURCE_NOTIFICATIONS,
            "detail-type": TEST_DETAIL_TYPE,
            "time": now,
            "resources": [],
            "detail": {
                "event_id": event_id,
                "customer_id": customer_id,
                "subscription_id": subscription_id,
                "occurred_at": now,
            },
        }
        self.queue.send([delivery_message(customer_id, subscription_id, event, None, test=True)])
        return {"event_id": event_id, "detail_type": TEST_DETAIL_TYPE, "status": "queued"}


def delivery_message(
    customer_id: str, subscription_id: str, event: Item, replay: str | None, *, test: bool = False
) -> Item:
    """The first attempt's message on the delivery queue (one per subscription and event)."""
    from services.notifications.domain import delivery_key

    event_id = str((event.get("detail") or {}).get("event_id"))
    return {
        "subscription_id": subscription_id,
        "customer_id": customer_id,
        "key": delivery_key(event_id, replay),
        "replay": replay,
        "attempt": 1,
        "not_before": None,
        "first_attempt_at": None,
        "test": test,
        "event": event,
    }
