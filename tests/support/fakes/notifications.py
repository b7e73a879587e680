"""In-memory fakes of the notifications ports (services/notifications/application.py, ports.py):
the same claim rules as the DynamoDB store, secrets and a queue that keeps what was sent."""

from __future__ import annotations

import copy
import threading
from typing import Any

from services.notifications.ports import Outcome

Item = dict[str, Any]


class InMemorySubscriptionStore:
    def __init__(self) -> None:
        self.subs: dict[tuple[str, str], Item] = {}
        self.items: dict[tuple[str, str], Item] = {}  # (subscription, key) -> delivery
        self._lock = threading.Lock()

    def put(self, item: Item) -> None:
        self.subs[(item["customer_id"], item["subscription_id"])] = copy.deepcopy(item)

    def get(self, customer_id: str, subscription_id: str) -> Item | None:
        found = self.subs.get((customer_id, subscription_id))
        return copy.deepcopy(found) if found else None

    def of_customer(self, customer_id: str) -> list[Item]:
        return [copy.deepcopy(v) for (c, _), v in self.subs.items() if c == customer_id]

    def set_status(
        self, customer_id: str, subscription_id: str, status: str, at: str
    ) -> Item | None:
        found = self.subs.get((customer_id, subscription_id))
        if found is None:
            return None
        found.update(status=status, updated_at=at)
        return copy.deepcopy(found)

    def delete(self, customer_id: str, subscription_id: str) -> Item | None:
        return self.subs.pop((customer_id, subscription_id), None)

    def deliveries(self, subscription_id: str, limit: int) -> list[Item]:
        return [copy.deepcopy(v) for (s, _), v in self.items.items() if s == subscription_id][
            :limit
        ]

    def delivery(self, subscription_id: str, key: str) -> Item | None:
        found = self.items.get((subscription_id, key))
        return copy.deepcopy(found) if found else None

    def claim_attempt(
        self,
        subscription_id: str,
        key: str,
        attempt: int,
        fields: Item,
        now: str,
        stale_before: str,
    ) -> bool:
        with self._lock:
            item = self.items.get((subscription_id, key))
            if item is not None and item["status"] not in ("pending", "retrying"):
                return False
            claimed = None if item is None else item.get("claimed")
            ok = (
                (claimed is None and attempt == 1)
                or claimed == attempt - 1
                or (
                    claimed == attempt
                    and item is not None
                    and item["claimed_at"] < stale_before
                    and len(item["attempts"]) < attempt
                )
            )
            if not ok:
                return False
            if item is None:
                item = {"created_at": now, "attempts": [], "status": "pending"}
                self.items[(subscription_id, key)] = item
            for k, v in fields.items():
                if v is not None:
                    item.setdefault(k, v)
            item.update(claimed=attempt, claimed_at=now)
            return True

    def record_attempt(
        self,
        subscription_id: str,
        key: str,
        attempt: int,
        record: Item,
        status: str,
        next_attempt_at: str | None,
    ) -> None:
        item = self.items[(subscription_id, key)]
        item["attempts"].append(dict(record))
        item.update(status=status, next_attempt_at=next_attempt_at)


class InMemorySigningSecrets:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.names: dict[str, str] = {}

    def create(self, name: str, value: str, *, tags: dict[str, str]) -> str:
        arn = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}"
        self.values[arn], self.names[arn] = value, name
        return arn

    def read(self, arn: str) -> str:
        return self.values[arn]

    def delete(self, arn: str) -> None:
        self.values.pop(arn, None)


class RecordingQueue:
    """A delivery queue that keeps (message, delay) pairs; ``take()`` pops them in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[Item, int]] = []
        self.dead: list[Item] = []

    def send(self, messages: list[Item], delay_seconds: int = 0) -> None:
        self.sent += [(copy.deepcopy(m), delay_seconds) for m in messages]

    def dead_letter(self, message: Item) -> None:
        self.dead.append(copy.deepcopy(message))

    def take(self) -> list[Item]:
        taken, self.sent = [m for m, _ in self.sent], []
        return taken


class ScriptedWebhooks:
    """Answers with the given status codes in turn (then the last one), recording each POST."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses) or [200]
        self.posts: list[tuple[str, bytes, dict[str, str]]] = []

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        self.posts.append((url, body, dict(headers)))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        ok = 200 <= status < 300
        return Outcome(ok, status, 3, None if ok else f"http_{status}")


class RecordingEmail:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, address: str, subject: str, text: str) -> Outcome:
        self.sent.append((address, subject, text))
        return Outcome(True, 250, 1)


class InMemoryJobs:
    def __init__(self, jobs: dict[str, Item] | None = None) -> None:
        self.jobs = dict(jobs or {})

    def job(self, job_id: str) -> Item | None:
        return self.jobs.get(job_id)
