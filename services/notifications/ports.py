"""The notifier's outbound ports: the result of one attempt, the webhook and e-mail senders and
the job lookup its filters need (the store, secrets and queue ports are in ``application``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    latency_ms: int = 0
    error: str | None = None
    permanent: bool = False  # no retry can help (refused by the egress policy)


class WebhookSender(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome: ...


class EmailSender(Protocol):
    def send(self, address: str, subject: str, text: str) -> Outcome: ...


class JobLookup(Protocol):
    """The job's read-model item (route, source and target endpoints), consistent read."""

    def job(self, job_id: str) -> dict[str, Any] | None: ...
