"""In-memory fakes of the jobs service's ports (moved out of ``services/jobs/ports.py``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from ferry.endpoint_directory import EndpointInfo
from services.jobs.ports import IdempotencyRecord, IdempotencyStore, SourceIdentity
from services.jobs.sla import SlowWatch, minute_of
from tests.support.fakes.endpoints import InMemoryEndpointDirectory

__all__ = [
    "InMemoryEndpointDirectory",
    "InMemoryIdempotencyStore",
    "InMemorySlowWatch",
    "InMemorySourceIdentity",
]


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


class InMemorySlowWatch(SlowWatch):
    def __init__(self) -> None:
        self.buckets: dict[int, set[str]] = {}
        self._lock = threading.Lock()

    def watch(self, job_id: str, due_at: datetime) -> None:
        with self._lock:
            self.buckets.setdefault(minute_of(due_at), set()).add(job_id)

    def due(self, now: datetime) -> list[tuple[int, list[str]]]:
        with self._lock:
            current = minute_of(now)
            return [(b, sorted(j)) for b, j in sorted(self.buckets.items()) if b < current]

    def done(self, bucket: int) -> None:
        with self._lock:
            self.buckets.pop(bucket, None)
