"""In-memory fakes of the routes service's ports (moved out of ``services/routes/ports.py`` and
``services/routes/readmodel.py``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

from ferry.endpoint_directory import EndpointInfo
from services.routes.ports import (
    IndexedRoute,
    JobState,
    JobStatusReader,
    JobSubmitter,
    ListedFile,
    ObjectInfo,
    ObjectInspector,
    PendingDelivery,
    RouteIndex,
    ScanState,
    ScanStateStore,
    SourceOpener,
    SourceSession,
    watch_cursor,
)
from services.routes.readmodel import FILE_SK, ROUTE_SK, Item, RoutesReadModel, VersionConflict
from tests.support.fakes.endpoints import InMemoryEndpointDirectory

__all__ = [
    "FakeJobs",
    "FakeObjects",
    "FakeSource",
    "InMemoryEndpointDirectory",
    "InMemoryScanStateStore",
]


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


class InMemoryRoutesReadModel(RoutesReadModel):
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Item] = {}

    def get(self, route_id: str, sk: str) -> Item | None:
        found = self.items.get((route_id, sk))
        return dict(found) if found else None

    def put(self, item: Item, expected_version: int | None) -> None:
        key = (item["route_id"], item["sk"])
        current = self.items.get(key)
        if (current is None) != (expected_version is None) or (
            current is not None and current["version"] != expected_version
        ):
            raise VersionConflict(str(key))
        self.items[key] = dict(item)

    def routes_of(self, customer_id: str) -> list[Item]:
        found = [
            i
            for i in self.items.values()
            if i["sk"] == ROUTE_SK and i["customer_id"] == customer_id
        ]
        return sorted(found, key=lambda i: i["created_at"])

    def enabled(self, trigger: str) -> list[Item]:
        return [
            i
            for i in self.items.values()
            if i["sk"] == ROUTE_SK and i["enabled"] and i["trigger_type"] == trigger
        ]

    def files(self, route_id: str, name: str | None, limit: int) -> list[Item]:
        found = [
            i
            for (r, sk), i in sorted(self.items.items())
            if r == route_id and sk.startswith(FILE_SK) and _named(i, name)
        ]
        return found[:limit]


def _named(item: Item, name: str | None) -> bool:
    return name is None or item["path"] == name or item["name"] == name or name in item["path"]
