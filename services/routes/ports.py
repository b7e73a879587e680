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

    @abstractmethod
    def retry(self, customer_id: str, actor: str, job_id: str) -> str:
        """Follow ``job_id``'s redrive chain to its newest job; redrive that one when it FAILED
        or was CANCELLED. Returns the job now responsible (the same for a repeated call, and
        the job a ``POST /jobs/{id}/redrive`` made, so both paths converge on one job)."""


@dataclass(frozen=True)
class JobState:
    status: str
    error_code: str | None = None
    error_message: str | None = None
    redriven_to: str | None = None


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

    def redrive(self, job_id: str) -> str:
        """What POST /jobs/{id}/redrive does (idempotent: the same new job again)."""
        state = self.states[job_id]
        if state.redriven_to:
            return state.redriven_to
        assert state.status in ("FAILED", "CANCELLED"), state
        new_id = f"job-{len(self.states) + 1}"
        self.states[job_id] = JobState(
            state.status, state.error_code, state.error_message, redriven_to=new_id
        )
        self.states[new_id] = JobState("QUEUED")
        self.requests[new_id] = self.requests[job_id]
        self.route_of[new_id] = self.route_of[job_id]
        return new_id

    def retry(self, customer_id: str, actor: str, job_id: str) -> str:
        current = job_id
        while (state := self.states[current]).redriven_to:
            current = state.redriven_to
        if state.status in ("FAILED", "CANCELLED"):
            return self.redrive(current)
        return current


def latest_job(reader: JobStatusReader, job_id: str, hops: int = 20) -> tuple[str, JobState | None]:
    """The newest job of ``job_id``'s redrive chain and its state (None: not known yet)."""
    current, state = job_id, reader.get(job_id)
    for _ in range(hops):
        if state is None or not state.redriven_to:
            break
        current = state.redriven_to
        state = reader.get(current)
    return current, state


# ---------------------------------------------------------------------------------------------
# Routes (the read model, for the data plane)
# ---------------------------------------------------------------------------------------------


class RouteDirectory(ABC):
    @abstractmethod
    def enabled_routes(self, trigger: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(route_id, customer_id, definition) of every enabled route with this trigger type."""

    def settling_routes(self) -> list[str]:
        """Ids of every route whose dispatched files may still need an outcome — disabled
        routes too (their jobs still finish, and a redrive of one is still followed)."""
        return [r for t in ("schedule", "event") for r, _, _ in self.enabled_routes(t)]


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


def watch_cursor(pending: PendingDelivery) -> str:
    return f"{pending.path}\x00{pending.file_version}"


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
    def watching(
        self, route_id: str, limit: int, after: str | None
    ) -> tuple[list[PendingDelivery], str | None]:
        """Failed deliveries still watched for a retry or redrive, in order, starting after the
        opaque cursor ``after``; returns them and the cursor of the next page (None: the end)."""

    @abstractmethod
    def watch(self, route_id: str, pending: PendingDelivery) -> None:
        """Move a pending delivery to the watched (failed) ones."""

    @abstractmethod
    def unwatch(self, route_id: str, pending: PendingDelivery) -> None: ...

    @abstractmethod
    def last_tick(self, route_id: str) -> float | None: ...

    @abstractmethod
    def set_last_tick(self, route_id: str, when: float) -> None: ...


class InMemoryScanStateStore(ScanStateStore):
    def __init__(self) -> None:
        self.states: dict[tuple[str, str], ScanState] = {}
        self.pendings: dict[tuple[str, str, str], PendingDelivery] = {}
        self.watched: dict[tuple[str, str, str], PendingDelivery] = {}
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

    def watching(
        self, route_id: str, limit: int, after: str | None
    ) -> tuple[list[PendingDelivery], str | None]:
        found = sorted(
            (watch_cursor(p), p) for (r, _, _), p in self.watched.items() if r == route_id
        )
        rest = [(c, p) for c, p in found if after is None or c > after]
        page = rest[:limit]
        return [p for _, p in page], (page[-1][0] if len(rest) > limit else None)

    def watch(self, route_id: str, pending: PendingDelivery) -> None:
        self.remove_pending(route_id, pending)
        self.watched[(route_id, pending.path, pending.file_version)] = pending

    def unwatch(self, route_id: str, pending: PendingDelivery) -> None:
        self.watched.pop((route_id, pending.path, pending.file_version), None)

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
    error: str | None = None  # this entry (e.g. a subdirectory) could not be read: why


def safe_reason(error: BaseException) -> str:
    """A reason to show a customer: the error's stable code, never raw library text (an AWS
    error code, a Ferry transfer error code, an errno name, or the exception's class)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        if code:
            return str(code)
    code = getattr(error, "code", None)
    if isinstance(code, str) and code:
        return code
    if isinstance(error, ListingFailed):
        return error.reason
    if isinstance(error, OSError) and error.errno is not None:
        import errno

        return errno.errorcode.get(error.errno, "OSError")
    return type(error).__name__


class ListingFailed(Exception):
    """The route's source itself could not be listed (``reason`` is safe to show)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    def move(self, path: str, to: str, *, marker: str) -> None:
        """Move ``path`` to ``to``, marking what is written with ``marker`` (the delivering
        job's id: ``ferry-job-id``, so no route triggers on it); idempotent."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class SourceOpener(ABC):
    @abstractmethod
    def open(self, endpoint: EndpointInfo) -> SourceSession: ...


class FakeSource(SourceSession, SourceOpener):
    """A directory tree in memory: path -> (size, mtime)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, float]] = {}
        self.markers: dict[str, str] = {}  # moved path -> its ferry-job-id marker
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

    def move(self, path: str, to: str, *, marker: str) -> None:
        if path not in self.files and to in self.files:
            return  # moved by an earlier attempt
        self.files[to] = self.files.pop(path)
        self.markers[to] = marker

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
    def head(
        self, bucket: str, key: str, endpoint: EndpointInfo | None = None
    ) -> ObjectInfo | None:
        """None when the object is gone (deleted since the event). ``endpoint``: the route's
        source endpoint, whose own access (tenancy) is used for the call."""

    def refusal(self, endpoint: EndpointInfo) -> str | None:
        """Why the endpoint's customer may not use its bucket now (None: it may)."""
        return None


class FakeObjects(ObjectInspector):
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], ObjectInfo] = {}
        self.refused: dict[str, str] = {}  # endpoint_id -> reason

    def head(
        self, bucket: str, key: str, endpoint: EndpointInfo | None = None
    ) -> ObjectInfo | None:
        return self.objects.get((bucket, key))

    def refusal(self, endpoint: EndpointInfo) -> str | None:
        return self.refused.get(endpoint.endpoint_id)


# ---------------------------------------------------------------------------------------------
# The routes' own index (written with the command, read strongly consistently)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexedRoute:
    route_id: str
    customer_id: str
    since: float  # epoch seconds the entry was written (before the route's event was saved)


class RouteIndex(ABC):
    """What the routes service writes *before* a route command's event is saved, so a consumer
    acting right after the command's response reads it consistently: per-customer name claims
    (names are unique) and the S3 buckets push routes listen on. A superset: an entry whose
    route was never saved, or has moved on, is checked against the event store and ignored."""

    @abstractmethod
    def claim_name(
        self, customer_id: str, name: str, route_id: str, when: float, *, replace: str | None = None
    ) -> IndexedRoute | None:
        """Claim ``name`` for ``route_id``; None when claimed (or already ours), else the holder.
        ``replace``: take it over from this (stale) holder only."""

    @abstractmethod
    def release_name(self, customer_id: str, name: str, route_id: str) -> None: ...

    @abstractmethod
    def add_bucket(self, bucket: str, route_id: str, customer_id: str, when: float) -> None: ...

    @abstractmethod
    def routes_on(self, bucket: str) -> list[IndexedRoute]: ...

    @abstractmethod
    def record_unrouted(self, bucket: str, entry: dict[str, Any]) -> None:
        """An S3 object no route took (``entry``: key, size, version, reason, at)."""

    @abstractmethod
    def unrouted(self, bucket: str, prefix: str, limit: int) -> list[dict[str, Any]]: ...


class InMemoryRouteIndex(RouteIndex):
    def __init__(self) -> None:
        self.names: dict[tuple[str, str], IndexedRoute] = {}
        self.buckets: dict[str, dict[str, IndexedRoute]] = {}
        self.skipped: dict[str, dict[str, dict[str, Any]]] = {}

    def claim_name(
        self, customer_id: str, name: str, route_id: str, when: float, *, replace: str | None = None
    ) -> IndexedRoute | None:
        held = self.names.get((customer_id, name))
        if held is None or held.route_id == route_id or held.route_id == replace:
            self.names[(customer_id, name)] = IndexedRoute(route_id, customer_id, when)
            return None
        return held

    def release_name(self, customer_id: str, name: str, route_id: str) -> None:
        held = self.names.get((customer_id, name))
        if held is not None and held.route_id == route_id:
            del self.names[(customer_id, name)]

    def add_bucket(self, bucket: str, route_id: str, customer_id: str, when: float) -> None:
        self.buckets.setdefault(bucket, {}).setdefault(
            route_id, IndexedRoute(route_id, customer_id, when)
        )

    def routes_on(self, bucket: str) -> list[IndexedRoute]:
        return list(self.buckets.get(bucket, {}).values())

    def record_unrouted(self, bucket: str, entry: dict[str, Any]) -> None:
        self.skipped.setdefault(bucket, {})[f"{entry['key']}\x00{entry['version']}"] = entry

    def unrouted(self, bucket: str, prefix: str, limit: int) -> list[dict[str, Any]]:
        found = [
            e
            for _, e in sorted(self.skipped.get(bucket, {}).items())
            if e["key"].startswith(prefix)
        ]
        return found[:limit]
