"""What the routes service needs from the outside (ports).

AWS/SFTP adapters live in ``adapters.py`` and subclass these ports; the endpoint directory is the
one shared port of ``ferry/endpoint_directory.py``. In-memory fakes for tests are in
``tests/support/fakes/routes.py``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from ferry.endpoint_directory import EndpointDirectory as EndpointDirectory
from ferry.endpoint_directory import EndpointInfo as EndpointInfo

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
    finished_at: str | None = None  # ISO 8601 UTC, from the job's final event


class JobStatusReader(ABC):
    @abstractmethod
    def get(self, job_id: str) -> JobState | None: ...


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

    def acquire_scan(self, route_id: str, owner: str, now: float, ttl: float) -> bool:
        """The lease on scanning one route: True if ``owner`` holds it now (taken, or renewed
        by its holder); False while another owner's lease has not expired. Scanner workers
        (threads and processes) take it before listing, so two scans of one route never run
        at once. This default is one process's; the DynamoDB store's is a conditional write."""
        with _LEASE_LOCK:
            held = self._leases().get(route_id)
            if held is not None and held[0] != owner and held[1] > now:
                return False
            self._leases()[route_id] = (owner, now + ttl)
            return True

    def release_scan(self, route_id: str, owner: str) -> None:
        with _LEASE_LOCK:
            if self._leases().get(route_id, (None,))[0] == owner:
                del self._leases()[route_id]

    def _leases(self) -> dict[str, tuple[str, float]]:
        leases: dict[str, tuple[str, float]] | None = getattr(self, "_scan_leases", None)
        if leases is None:
            leases = {}
            self._scan_leases = leases
        return leases


_LEASE_LOCK = threading.Lock()


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
