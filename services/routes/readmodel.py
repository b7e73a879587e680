"""The routes read model: one item per route and one per (route, file path) — the ledger answer
of GET /routes/{id}/files?name=… — folded from ferry.routes events by the routes projection
consumer (``services/routes/consumer.py``).

Table ``<prefix>-routes``: pk ``route_id`` (S), sk ``sk`` (S): ``"route"`` for the route item,
``"file#<path>"`` for a file item. Sparse GSI ``customer-index`` (``customer_id``,
``created_at``) holds route items only (file items carry ``route_customer`` instead).

Order-safe and idempotent like the other read models (docs/architecture.md): an item records the
last applied version of its stream; an event at or below it is a duplicate and is dropped; an
event beyond the next version triggers a catch-up read of the stream from the event store; writes
are conditional on the version read.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from events import contract as c

Item = dict[str, Any]
ROUTE_SK = "route"
FILE_SK = "file#"

#: DynamoDB caps a sort key at 1,024 bytes: a path too long to be part of one is keyed by its
#: sha256 instead (the item keeps the path itself as an attribute).
MAX_KEY_PATH_BYTES = 900


def path_key(path: str) -> str:
    """The part of a sort key that names a file: the path, or the sha256 of a very long one."""
    raw = path.encode()
    if len(raw) <= MAX_KEY_PATH_BYTES:
        return path
    return "#sha256:" + hashlib.sha256(raw).hexdigest()


HISTORY_LIMIT = 20


class VersionConflict(Exception):
    """The item changed since it was read (another consumer wrote first)."""


class RoutesReadModel(ABC):
    @abstractmethod
    def get(self, route_id: str, sk: str) -> Item | None: ...

    @abstractmethod
    def put(self, item: Item, expected_version: int | None) -> None:
        """Write ``item``; ``expected_version`` None = must not exist, else must equal."""

    @abstractmethod
    def routes_of(self, customer_id: str) -> list[Item]: ...

    @abstractmethod
    def enabled(self, trigger: str) -> list[Item]: ...

    @abstractmethod
    def files(self, route_id: str, name: str | None, limit: int) -> list[Item]: ...


# ---------------------------------------------------------------------------------------------
# Folds
# ---------------------------------------------------------------------------------------------


_ROUTE_EVENTS = (
    c.RouteCreated,
    c.RouteUpdated,
    c.RouteDisabled,
    c.RouteEnabled,
    c.RouteScanFailed,
    c.RouteScanRecovered,
    c.ScheduleTickLate,
)
#: The route's delivery SLA item: per window deadline, late / arrived (services/routes/sla.py).
SLA_SK = "sla"
_SLA_EVENTS = (c.RouteFileLate, c.RouteFileArrived)
SLA_WINDOWS_KEPT = 50


def key_of(event: c.FerryEvent) -> tuple[str, str] | None:
    if isinstance(event, _ROUTE_EVENTS):
        return event.route_id, ROUTE_SK
    if isinstance(event, _SLA_EVENTS):
        return event.route_id, SLA_SK
    path = getattr(event, "path", None)
    if isinstance(event, c.RouteEvent) and isinstance(path, str):
        return event.route_id, FILE_SK + path_key(path)
    return None


def fold(item: Item | None, event: c.FerryEvent) -> Item:
    if key_of(event) is None:
        raise ValueError(f"not a routes event: {event.detail_type()}")
    if isinstance(event, _ROUTE_EVENTS):
        return fold_route(item, event)
    assert isinstance(event, c.RouteEvent)
    return fold_file(item, event)


def fold_route(item: Item | None, event: c.RouteEvent) -> Item:
    at = event.occurred_at.isoformat()
    new: Item = dict(item or {})
    if isinstance(event, c.RouteCreated):
        new = {
            "route_id": event.route_id,
            "sk": ROUTE_SK,
            "customer_id": event.customer_id,
            "definition": dict(event.definition),
            "created_at": at,
        }
    elif isinstance(event, c.RouteUpdated):
        new["definition"] = {**new.get("definition", {}), **event.changed}
    elif isinstance(event, c.RouteDisabled):
        new["definition"] = {**new.get("definition", {}), "enabled": False}
    elif isinstance(event, c.RouteEnabled):
        new["definition"] = {**new.get("definition", {}), "enabled": True}
    elif isinstance(event, c.RouteScanFailed):
        new["scan_error"] = event.reason
        new["scan_failed_at"] = at
    elif isinstance(event, c.RouteScanRecovered):
        new["scan_error"] = None
    elif isinstance(event, c.ScheduleTickLate):
        new["last_tick_late"] = {
            "scheduled_for": event.scheduled_for.isoformat(),
            "ran_at": event.ran_at.isoformat(),
            "missed_slots": event.missed_slots,
        }
    definition = new.get("definition", {})
    new["name"] = definition.get("name")
    new["enabled"] = bool(definition.get("enabled", True))
    new["trigger_type"] = (definition.get("trigger") or {}).get("type")
    new["updated_at"] = at
    new["version"] = event.version
    return new


def fold_sla(item: Item | None, event: c.RouteFileLate | c.RouteFileArrived) -> Item:
    """The SLA item folds window events from many window streams, so it is not versioned by
    one stream: each window's entry only ever gains ``late`` and ``arrived`` (commutative and
    idempotent, whatever order EventBridge delivers them in); ``version`` counts writes."""
    new: Item = dict(item or {"route_id": event.route_id, "sk": SLA_SK, "version": 0})
    windows: dict[str, Item] = {k: dict(v) for k, v in (new.get("windows") or {}).items()}
    key = event.deadline.isoformat()
    entry = windows.setdefault(key, {})
    if isinstance(event, c.RouteFileLate):
        entry.update(late=True, delivered_files=event.delivered_files)
        entry["expected_files"] = event.expected_files
    else:
        entry.update(arrived_at=event.arrived_at.isoformat())
        entry.update(late_by_minutes=event.late_by_minutes, path=event.path)
    new["windows"] = dict(sorted(windows.items())[-SLA_WINDOWS_KEPT:])
    new["version"] = int(new.get("version") or 0) + 1
    return new


def late_since(sla: Item | None) -> str | None:
    """The oldest deadline reported late whose files have not arrived (None: not LATE)."""
    windows = (sla or {}).get("windows") or {}
    open_late = [d for d, w in windows.items() if w.get("late") and not w.get("arrived_at")]
    return min(open_late) if open_late else None


def fold_file(item: Item | None, event: c.RouteEvent) -> Item:
    at = event.occurred_at.isoformat()
    path = str(getattr(event, "path"))  # noqa: B009 - every file event has a path
    new: Item = dict(item or {})
    if isinstance(event, c.FileDiscovered):
        new = {
            "route_id": event.route_id,
            "sk": FILE_SK + path_key(path),
            "route_customer": event.customer_id,
            "path": path,
            "name": path.rsplit("/", 1)[-1],
            "first_seen_at": event.first_seen_at.isoformat(),
            "status": "discovered",
            "history": [],
        }
    entry: Item = {"at": at, "event": event.detail_type()}
    fv = getattr(event, "file_version", None)
    if fv is not None:
        entry["file_version"] = fv
        new["file_version"] = fv
    if isinstance(event, c.FileDiscovered):
        entry["size"] = event.size
    elif isinstance(event, c.FileSkipped):
        new["status"] = "skipped"
        new["reason"] = event.reason
        new["detail"] = event.detail
        entry.update(reason=event.reason, detail=event.detail)
    elif isinstance(event, c.FileDispatched):
        new["status"] = "dispatched"
        new["reason"] = None
        new["detail"] = None
        new["job_ids"] = list(event.job_ids)
        new["target_paths"] = list(event.target_paths)
        new["dispatched_at"] = at
        entry.update(job_ids=list(event.job_ids), size=event.size)
    elif isinstance(event, c.FileRetried):
        new["status"] = "dispatched"
        new["reason"] = None
        new["detail"] = None
        new["job_ids"] = list(event.job_ids)
        entry.update(job_ids=list(event.job_ids), failed_job_ids=list(event.failed_job_ids))
    elif isinstance(event, c.FileDelivered):
        new["status"] = "delivered"
        new["reason"] = None
        new["detail"] = None
        new["job_ids"] = list(event.job_ids)
    elif isinstance(event, c.FileDeliveryFailed):
        new["status"] = "failed"
        new["reason"] = event.error_code
        new["detail"] = event.error_message
        entry.update(failed_job_ids=list(event.failed_job_ids), error_code=event.error_code)
    elif isinstance(event, c.FilePostActionCompleted):
        new["status"] = "post_action_completed"
        new["moved_to"] = event.moved_to
        entry.update(action=event.action.value, moved_to=event.moved_to)
    new["history"] = [*new.get("history", []), entry][-HISTORY_LIMIT:]
    new["updated_at"] = at
    new["version"] = event.version
    return new


# ---------------------------------------------------------------------------------------------
# The projector
# ---------------------------------------------------------------------------------------------


class RoutesProjector:
    def __init__(
        self,
        store: RoutesReadModel,
        history: Callable[[str], list[c.FerryEvent]],
        max_attempts: int = 5,
    ) -> None:
        self.store = store
        self.history = history
        self.max_attempts = max_attempts

    def handle(self, event: c.FerryEvent) -> str:
        key = key_of(event)
        if key is None:
            return "ignored"
        if isinstance(event, _SLA_EVENTS):
            return self._handle_sla(event)
        for _ in range(self.max_attempts):
            item = self.store.get(*key)
            applied = int(item["version"]) if item else 0
            if event.version <= applied:
                return "duplicate"
            if event.version == applied + 1:
                events = [event]
                outcome = "applied"
            else:
                events = [e for e in self.history(event.stream_id) if e.version > applied]
                outcome = "caught_up"
            new = item
            for each in events:
                new = fold(new, each)
            assert new is not None
            try:
                self.store.put(new, applied if item else None)
                return outcome
            except VersionConflict:
                continue
        raise VersionConflict(f"gave up on {key}")

    def _handle_sla(self, event: c.RouteFileLate | c.RouteFileArrived) -> str:
        for _ in range(self.max_attempts):
            item = self.store.get(event.route_id, SLA_SK)
            entry = ((item or {}).get("windows") or {}).get(event.deadline.isoformat()) or {}
            if (isinstance(event, c.RouteFileLate) and entry.get("late")) or (
                isinstance(event, c.RouteFileArrived) and entry.get("arrived_at")
            ):
                return "duplicate"
            try:
                self.store.put(fold_sla(item, event), int(item["version"]) if item else None)
                return "applied"
            except VersionConflict:
                continue
        raise VersionConflict(f"gave up on {event.route_id} sla")


def sla_body(sla: Item | None) -> Item:
    """What GET /routes shows of a route's delivery SLA."""
    since = late_since(sla)
    windows = (sla or {}).get("windows") or {}
    last = max(windows) if windows else None
    return {
        "status": "LATE" if since else "OK",
        "late_since": since,
        "last_late_window": ({"deadline": last, **windows[last]} if last else None),
    }


def route_body(item: Item, failing_files: int | None = None) -> Item:
    body = {
        "route_id": item["route_id"],
        **item.get("definition", {}),
        "enabled": item.get("enabled"),
        "created_at": item.get("created_at"),
        "updated_at": item.get("updated_at"),
        "version": item.get("version"),
    }
    if item.get("scan_error"):
        body["scan_error"] = item["scan_error"]
    if failing_files is not None:
        failing = failing_files or item.get("scan_error")
        body["status"] = (
            "FAILING" if failing else ("ENABLED" if item.get("enabled") else "DISABLED")
        )
        body["failing_files"] = failing_files
    return body


def file_body(item: Item) -> Item:
    return {k: v for k, v in item.items() if k not in ("sk", "route_customer")}
