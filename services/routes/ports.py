"""What the routes service needs from the outside (ports) and in-memory fakes for unit tests.

AWS/SFTP adapters live in ``adapters.py`` and subclass these ports.
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from events.contract import EndpointStatus, EndpointType


@dataclass(frozen=True)
class EndpointInfo:
    """An endpoint as the routes service sees it (from the endpoints read model)."""

    endpoint_id: str
    customer_id: str
    type: EndpointType
    status: EndpointStatus
    direction: str = "BOTH"
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def bucket(self) -> str | None:
        return self.config.get("bucket")

    @property
    def prefix(self) -> str:
        prefix = str(self.config.get("prefix") or "")
        return prefix if not prefix or prefix.endswith("/") else prefix + "/"


class EndpointDirectory(ABC):
    @abstractmethod
    def get(self, endpoint_id: str) -> EndpointInfo | None: ...


class InMemoryEndpointDirectory(EndpointDirectory):
    def __init__(self, endpoints: list[EndpointInfo] | None = None) -> None:
        self.endpoints = {e.endpoint_id: e for e in endpoints or []}

    def get(self, endpoint_id: str) -> EndpointInfo | None:
        return self.endpoints.get(endpoint_id)

    def put(self, endpoint: EndpointInfo) -> None:
        self.endpoints[endpoint.endpoint_id] = endpoint


# ---------------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------------


class JobSubmitter(ABC):
    @abstractmethod
    def submit(
        self,
        customer_id: str,
        actor: str,
        request: dict[str, Any],
        idempotency_key: str,
        route_id: str,
    ) -> str:
        """Create (or find, for the same idempotency key) a job; returns its id.

        ``request`` is a POST /transfers body (source, target, options)."""


@dataclass(frozen=True)
class JobState:
    status: str
    error_code: str | None = None
    error_message: str | None = None


class JobStatusReader(ABC):
    @abstractmethod
    def get(self, job_id: str) -> JobState | None: ...


class FakeJobs(JobSubmitter, JobStatusReader):
    """Records submissions; idempotent per key, like the jobs service."""

    def __init__(self) -> None:
        self.by_key: dict[str, str] = {}
        self.requests: dict[str, dict[str, Any]] = {}
        self.route_of: dict[str, str] = {}
        self.states: dict[str, JobState] = {}

    def submit(
        self,
        customer_id: str,
        actor: str,
        request: dict[str, Any],
        idempotency_key: str,
        route_id: str,
    ) -> str:
        if idempotency_key in self.by_key:
            return self.by_key[idempotency_key]
        job_id = f"job-{len(self.by_key) + 1}"
        self.by_key[idempotency_key] = job_id
        self.requests[job_id] = request
        self.route_of[job_id] = route_id
        self.states[job_id] = JobState("QUEUED")
        return job_id

    def get(self, job_id: str) -> JobState | None:
        return self.states.get(job_id)

    def finish(self, job_id: str, status: str, error_code: str | None = None) -> None:
        self.states[job_id] = JobState(status, error_code, error_code and f"{error_code} happened")


# ---------------------------------------------------------------------------------------------
# Routes (the read model, for the data plane)
# ---------------------------------------------------------------------------------------------


class RouteDirectory(ABC):
    @abstractmethod
    def enabled_routes(self, trigger: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(route_id, customer_id, definition) of every enabled route with this trigger type."""


# ---------------------------------------------------------------------------------------------
# Scan state (the scanner's working memory; not the ledger)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanState:
    """What the scanner remembers of one path between ticks."""

    path: str
    size: int
    mtime: float
    checks: int  # consecutive observations with this size and mtime
    first_seen: float
    decided: str = ""  # "<file_version>|<decision>" of the last decision recorded

    def observe(self, size: int, mtime: float) -> ScanState:
        if (size, mtime) == (self.size, self.mtime):
            return replace(self, checks=self.checks + 1)
        return replace(self, size=size, mtime=mtime, checks=1)


@dataclass(frozen=True)
class PendingDelivery:
    """A dispatched file version whose fan-out jobs are not all final yet."""

    path: str
    file_version: str
    job_ids: tuple[str, ...]


class ScanStateStore(ABC):
    @abstractmethod
    def get_many(self, route_id: str, paths: list[str]) -> dict[str, ScanState]: ...

    @abstractmethod
    def put_many(self, route_id: str, states: list[ScanState]) -> None: ...

    @abstractmethod
    def pending(self, route_id: str, limit: int) -> list[PendingDelivery]: ...

    @abstractmethod
    def add_pending(self, route_id: str, pendings: list[PendingDelivery]) -> None: ...

    @abstractmethod
    def remove_pending(self, route_id: str, pending: PendingDelivery) -> None: ...

    @abstractmethod
    def last_tick(self, route_id: str) -> float | None: ...

    @abstractmethod
    def set_last_tick(self, route_id: str, when: float) -> None: ...


class InMemoryScanStateStore(ScanStateStore):
    def __init__(self) -> None:
        self.states: dict[tuple[str, str], ScanState] = {}
        self.pendings: dict[tuple[str, str, str], PendingDelivery] = {}
        self.ticks: dict[str, float] = {}
        self.writes = 0

    def get_many(self, route_id: str, paths: list[str]) -> dict[str, ScanState]:
        return {p: self.states[(route_id, p)] for p in paths if (route_id, p) in self.states}

    def put_many(self, route_id: str, states: list[ScanState]) -> None:
        for state in states:
            self.writes += 1
            self.states[(route_id, state.path)] = state

    def pending(self, route_id: str, limit: int) -> list[PendingDelivery]:
        found = [p for (r, _, _), p in sorted(self.pendings.items()) if r == route_id]
        return found[:limit]

    def add_pending(self, route_id: str, pendings: list[PendingDelivery]) -> None:
        for pending in pendings:
            self.pendings[(route_id, pending.path, pending.file_version)] = pending

    def remove_pending(self, route_id: str, pending: PendingDelivery) -> None:
        self.pendings.pop((route_id, pending.path, pending.file_version), None)

    def last_tick(self, route_id: str) -> float | None:
        return self.ticks.get(route_id)

    def set_last_tick(self, route_id: str, when: float) -> None:
        self.ticks[route_id] = when


# ---------------------------------------------------------------------------------------------
# Sources (data plane)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedFile:
    path: str  # relative to the endpoint's base_path / prefix (what a job names)
    size: int
    mtime: float  # epoch seconds
    etag: str | None = None


class SourceSession(ABC):
    """One listing session of a route's source (an SFTP connection or an S3 client)."""

    @abstractmethod
    def iter_files(self, directory: str, recursive: bool) -> Iterator[ListedFile]:
        """Files under ``directory`` (endpoint-relative), streamed in pages (bounded memory)."""

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def remove(self, path: str) -> None: ...

    @abstractmethod
    def move(self, path: str, to: str) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class SourceOpener(ABC):
    @abstractmethod
    def open(self, endpoint: EndpointInfo) -> SourceSession: ...


class FakeSource(SourceSession, SourceOpener):
    """A directory tree in memory: path -> (size, mtime)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, float]] = {}
        self.listings = 0

    def open(self, endpoint: EndpointInfo) -> SourceSession:
        return self

    def put(self, path: str, size: int, mtime: float) -> None:
        self.files[path] = (size, mtime)

    def iter_files(self, directory: str, recursive: bool) -> Iterator[ListedFile]:
        self.listings += 1
        base = directory.rstrip("/") + "/" if directory else ""
        for path, (size, mtime) in sorted(self.files.items()):
            if not path.startswith(base):
                continue
            if not recursive and "/" in path[len(base) :]:
                continue
            yield ListedFile(path, size, mtime)

    def exists(self, path: str) -> bool:
        return path in self.files

    def remove(self, path: str) -> None:
        self.files.pop(path, None)

    def move(self, path: str, to: str) -> None:
        self.files[to] = self.files.pop(path)

    def glob(self, pattern: str) -> list[str]:
        return sorted(p for p in self.files if fnmatch.fnmatch(p, pattern))


# ---------------------------------------------------------------------------------------------
# Push: what we learn about an S3 object
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str
    version_id: str | None
    last_modified: float
    metadata: dict[str, str]


class ObjectInspector(ABC):
    @abstractmethod
    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """None when the object is gone (deleted since the event)."""


class FakeObjects(ObjectInspector):
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], ObjectInfo] = {}

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        return self.objects.get((bucket, key))
