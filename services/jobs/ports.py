"""The jobs service's ports (what the application needs from the outside).

Adapters for AWS live in ``adapters.py`` and subclass these ports; the endpoint directory is the
one shared port of ``ferry/endpoint_directory.py``. In-memory fakes for tests (same behaviour:
conditional claim, expiry by the injected clock) are in ``tests/support/fakes/jobs.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from ferry.endpoint_directory import EndpointDirectory, EndpointInfo

__all__ = [
    "EndpointDirectory",
    "EndpointInfo",
    "IdempotencyRecord",
    "IdempotencyStore",
    "QueuedJobs",
    "SourceIdentity",
]


@dataclass(frozen=True)
class IdempotencyRecord:
    """Which job an idempotency key stands for, and the request that created it.

    ``spec`` lets any request holding the key (re)create exactly the job the claimant meant, if
    the claimant died between claiming the key and saving the job.
    """

    job_id: str
    request_hash: str
    spec: dict[str, Any]


class IdempotencyStore(ABC):
    @abstractmethod
    def claim(
        self, key: str, record: IdempotencyRecord, ttl_seconds: float
    ) -> tuple[IdempotencyRecord, bool]:
        """Atomically claim ``key`` for ``record`` unless an unexpired claim exists.

        Returns ``(record, True)`` when this call claimed the key, else ``(existing, False)``.
        Two concurrent claims of one key: exactly one gets True.
        """


class SourceIdentity(ABC):
    """What identifies a source file's *content* right now, looked up at submit time: part of
    the automatic deduplication key, so a changed file is a new job."""

    @abstractmethod
    def identify(self, endpoint: EndpointInfo, path: str) -> str | None:
        """S3: ``etag=…`` (and ``version=…`` when the object has a VersionId); SFTP:
        ``size=…;mtime=…``. None when it cannot be looked up (missing, unreachable): the
        caller then dedupes by the request alone and says so."""


class QueuedJobs(ABC):
    """How many of a customer's jobs wait to run (RECEIVED or QUEUED — a job in a retry
    backoff is QUEUED), as the jobs read model shows them: the queued-jobs limit of
    POST /transfers. The read model lags the event store by the projection's delay, so the
    limit is approximate by as many jobs as are submitted in that time."""

    @abstractmethod
    def count(self, customer_id: str, at_most: int) -> int:
        """The number, counting no further than ``at_most`` (the limit: nothing beyond it
        matters, and it bounds the read)."""
