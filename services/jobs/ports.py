"""The jobs service's ports (what the application needs from the outside) and in-memory fakes.

Adapters for AWS live in ``adapters.py`` and subclass these ports; the fakes here are used by
unit tests and behave the same way (conditional claim, expiry by the injected clock).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from events.contract import Direction, EndpointStatus, EndpointType


@dataclass(frozen=True)
class EndpointInfo:
    """What the jobs service needs to know about an endpoint (from the endpoints read model)."""

    endpoint_id: str
    customer_id: str
    type: EndpointType
    direction: Direction
    status: EndpointStatus
    config: dict[str, Any] = field(default_factory=dict)


class EndpointDirectory(ABC):
    @abstractmethod
    def get(self, endpoint_id: str) -> EndpointInfo | None:
        """The endpoint, or None when there is no such endpoint."""


class InMemoryEndpointDirectory(EndpointDirectory):
    def __init__(self, endpoints: list[EndpointInfo] | None = None) -> None:
        self._endpoints = {e.endpoint_id: e for e in endpoints or []}

    def put(self, endpoint: EndpointInfo) -> None:
        self._endpoints[endpoint.endpoint_id] = endpoint

    def get(self, endpoint_id: str) -> EndpointInfo | None:
        return self._endpoints.get(endpoint_id)


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


class InMemoryIdempotencyStore(IdempotencyStore):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._items: dict[str, tuple[IdempotencyRecord, float]] = {}
        self._lock = threading.Lock()

    def claim(
        self, key: str, record: IdempotencyRecord, ttl_seconds: float
    ) -> tuple[IdempotencyRecord, bool]:
        now = self._clock()
        with self._lock:
            found = self._items.get(key)
            if found is not None and found[1] >= now:
                return found[0], False
            self._items[key] = (record, now + ttl_seconds)
            return record, True


class SourceIdentity(ABC):
    """What identifies a source file's *content* right now, looked up at submit time: part of
    the automatic deduplication key, so a changed file is a new job."""

    @abstractmethod
    def identify(self, endpoint: EndpointInfo, path: str) -> str | None:
        """S3: ``etag=…`` (and ``version=…`` when the object has a VersionId); SFTP:
        ``size=…;mtime=…``. None when it cannot be looked up (missing, unreachable): the
        caller then dedupes by the request alone and says so."""


class InMemorySourceIdentity(SourceIdentity):
    """A fake: identities set by the test; unknown files cannot be looked up (None)."""

    def __init__(self) -> None:
        self._identities: dict[tuple[str, str], str] = {}
        self.lookups = 0

    def set(self, endpoint_id: str, path: str, identity: str | None) -> None:
        if identity is None:
            self._identities.pop((endpoint_id, path), None)
        else:
            self._identities[(endpoint_id, path)] = identity

    def identify(self, endpoint: EndpointInfo, path: str) -> str | None:
        self.lookups += 1
        return self._identities.get((endpoint.endpoint_id, path))
