"""The Route aggregate (a customer's "files that arrive here go there" rule) and the RouteFile
aggregate (the de-duplication ledger of one file path of one route).

Route stream: id = route_id (uuid4), correlation_id = route_id. Events: RouteCreated (the full
validated definition), RouteUpdated (changed top-level fields with their new values),
RouteDisabled, RouteEnabled.

Route events also say whether the source could be listed: RouteScanFailed (reason) and
RouteScanRecovered (a later listing worked), and when a schedule's scan ran late
(ScheduleTickLate: the missed slot ran once, as a catch-up).

RouteFile stream: id = :func:`file_stream_id` (uuid5 of route_id and path), correlation_id =
route_id. Events record *decisions*: FileDiscovered (first sight), FileSkipped (reason),
FileDispatched (job ids), FileDelivered / FileDeliveryFailed (outcome of every fan-out job),
FileRetried (failed jobs redriven; FileDelivered follows once they succeed, also after a
failure), FilePostActionCompleted. A decision is recorded once per file version (``file_version``: size and
mtime for pull, ETag / version id for push), so repeated observations add nothing.

Pure: no boto3, no clock (times are passed in).

Why one module over 400 lines: two small aggregates (Route and its RouteFile ledger) with their
event classes, declared once each. Stored event topics are this module's path
(``module:Class.Event``): moving the event classes out would change the topic of every stored
event and need a ``register_topic`` alias for each (events/aggregate.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from events import contract as c
from events.aggregate import FerryAggregate
from ferry.errors import Conflict

_FILE_NS = uuid5(NAMESPACE_URL, "https://ferry.invalid/route-file")


def file_stream_id(route_id: str, path: str) -> UUID:
    """The ledger stream of one path of one route: deterministic, so every scanner finds it."""
    return uuid5(_FILE_NS, f"{route_id}\x00{path}")


class RouteError(Conflict):
    """A route or ledger command lost a race or meets a state that forbids it (409)."""

    code = "conflict"


class RouteNotFound(RouteError):
    pass


class RouteConflict(RouteError):
    pass


class Route(FerryAggregate):
    class RouteCreated(FerryAggregate.Created):
        contract = c.RouteCreated  # applied by __init__

    def __init__(
        self,
        *,
        customer_id: str,
        correlation_id: str,
        route_id: str,
        definition: dict[str, Any],
        actor: str,
    ) -> None:
        self.customer_id = customer_id
        self.correlation_id = correlation_id
        self.route_id = route_id
        self.definition = dict(definition)
        self.enabled = bool(definition.get("enabled", True))
        self.last_actor = actor
        self.scan_error: str | None = None  # why the last listing failed (None: it worked)

    @classmethod
    def create(
        cls, route_id: UUID, customer_id: str, definition: dict[str, Any], actor: str
    ) -> Route:
        return cls._create(
            cls.RouteCreated,
            id=route_id,
            customer_id=customer_id,
            correlation_id=str(route_id),
            route_id=str(route_id),
            definition=definition,
            actor=actor,
        )

    # -- events: fields from the contract model; each @event body applies it ---------------
    class RouteUpdated(FerryAggregate.Event):
        contract = c.RouteUpdated

    class RouteDisabled(FerryAggregate.Event):
        contract = c.RouteDisabled

    class RouteEnabled(FerryAggregate.Event):
        contract = c.RouteEnabled

    class RouteScanFailed(FerryAggregate.Event):
        contract = c.RouteScanFailed

    class RouteScanRecovered(FerryAggregate.Event):
        contract = c.RouteScanRecovered

    class ScheduleTickLate(FerryAggregate.Event):
        contract = c.ScheduleTickLate

    @event(RouteUpdated)
    def _updated(self, route_id: str, changed: dict[str, Any], actor: str) -> None:
        self.definition = {**self.definition, **changed}
        self.last_actor = actor

    @event(RouteDisabled)
    def _disabled(self, route_id: str, actor: str) -> None:
        self.enabled = False
        self.definition = {**self.definition, "enabled": False}
        self.last_actor = actor

    @event(RouteEnabled)
    def _enabled(self, route_id: str, actor: str) -> None:
        self.enabled = True
        self.definition = {**self.definition, "enabled": True}
        self.last_actor = actor

    @event(RouteScanFailed)
    def _scan_failed(self, route_id: str, reason: str) -> None:
        self.scan_error = reason

    @event(RouteScanRecovered)
    def _scan_recovered(self, route_id: str, previous_reason: str) -> None:
        self.scan_error = None

    @event(ScheduleTickLate)
    def _tick_late(
        self,
        route_id: str,
        scheduled_for: datetime,
        ran_at: datetime,
        late_by_seconds: float,
        missed_slots: int,
    ) -> None:
        self.last_late_slot = scheduled_for

    # -- commands ----------------------------------------------------------------------------
    def tick_late(self, scheduled_for: datetime, ran_at: datetime, missed_slots: int) -> bool:
        """A scan ran after its slot (catch-up): recorded once per slot."""
        if getattr(self, "last_late_slot", None) == scheduled_for:
            return False
        self._tick_late(
            route_id=self.route_id,
            scheduled_for=scheduled_for,
            ran_at=ran_at,
            late_by_seconds=round((ran_at - scheduled_for).total_seconds(), 3),
            missed_slots=missed_slots,
        )
        return True

    def scan_failed(self, reason: str) -> bool:
        """The source could not be listed: recorded once per distinct reason."""
        if self.scan_error == reason:
            return False
        self._scan_failed(route_id=self.route_id, reason=reason)
        return True

    def scan_succeeded(self) -> bool:
        if self.scan_error is None:
            return False
        self._scan_recovered(route_id=self.route_id, previous_reason=self.scan_error)
        return True

    def update(self, changed: dict[str, Any], actor: str) -> bool:
        changes = {k: v for k, v in changed.items() if self.definition.get(k) != v}
        if not changes:
            return False
        self._updated(route_id=self.route_id, changed=changes, actor=actor)
        return True

    def disable(self, actor: str) -> bool:
        if not self.enabled:
            return False
        self._disabled(route_id=self.route_id, actor=actor)
        return True

    def enable(self, actor: str) -> bool:
        if self.enabled:
            return False
        self._enabled(route_id=self.route_id, actor=actor)
        return True


class RouteFile(FerryAggregate):
    """The ledger of one path of one route."""

    class FileDiscovered(FerryAggregate.Created):
        contract = c.FileDiscovered  # applied by __init__

    def __init__(
        self,
        *,
        customer_id: str,
        correlation_id: str,
        route_id: str,
        path: str,
        size: int,
        modified_at: datetime | None,
        file_version: str,
        first_seen_at: datetime,
    ) -> None:
        self.customer_id = customer_id
        self.correlation_id = correlation_id
        self.route_id = route_id
        self.path = path
        self.first_seen_at = first_seen_at
        self.last_skip: tuple[str | None, str] | None = None
        # file_version -> {"job_ids": [...], "target_paths": [...], "outcome": None|...}
        self.dispatched: dict[str, dict[str, Any]] = {}

    @classmethod
    def discover(
        cls,
        *,
        customer_id: str,
        route_id: str,
        path: str,
        size: int,
        modified_at: datetime | None,
        file_version: str,
        first_seen_at: datetime,
    ) -> RouteFile:
        return cls._create(
            cls.FileDiscovered,
            id=file_stream_id(route_id, path),
            customer_id=customer_id,
            correlation_id=route_id,
            route_id=route_id,
            path=path,
            size=size,
            modified_at=modified_at,
            file_version=file_version,
            first_seen_at=first_seen_at,
        )

    # -- events: fields from the contract model; each @event body applies it ---------------
    class FileSkipped(FerryAggregate.Event):
        contract = c.FileSkipped

    class FileDispatched(FerryAggregate.Event):
        contract = c.FileDispatched

    class FileDelivered(FerryAggregate.Event):
        contract = c.FileDelivered

    class FileDeliveryFailed(FerryAggregate.Event):
        contract = c.FileDeliveryFailed

    class FileRetried(FerryAggregate.Event):
        contract = c.FileRetried

    class FilePostActionCompleted(FerryAggregate.Event):
        contract = c.FilePostActionCompleted

    @event(FileSkipped)
    def _skipped(
        self,
        route_id: str,
        path: str,
        reason: str,
        size: int | None,
        modified_at: datetime | None,
        file_version: str | None,
        detail: str | None,
    ) -> None:
        self.last_skip = (file_version, reason)

    @event(FileDispatched)
    def _dispatched(
        self,
        route_id: str,
        path: str,
        size: int,
        modified_at: datetime | None,
        file_version: str,
        job_ids: list[str],
        target_paths: list[str],
    ) -> None:
        self.last_skip = None
        self.dispatched[file_version] = {
            "job_ids": list(job_ids),
            "target_paths": list(target_paths),
            "outcome": None,
        }

    @event(FileDelivered)
    def _delivered(self, route_id: str, path: str, file_version: str, job_ids: list[str]) -> None:
        entry = self.dispatched[file_version]
        entry["outcome"] = "delivered"
        entry["job_ids"] = list(job_ids)

    @event(FileDeliveryFailed)
    def _delivery_failed(
        self,
        route_id: str,
        path: str,
        file_version: str,
        job_ids: list[str],
        failed_job_ids: list[str],
        error_code: str,
        error_message: str,
    ) -> None:
        self.dispatched[file_version]["outcome"] = "failed"

    @event(FileRetried)
    def _retried(
        self,
        route_id: str,
        path: str,
        file_version: str,
        failed_job_ids: list[str],
        job_ids: list[str],
        actor: str,
    ) -> None:
        entry = self.dispatched[file_version]
        entry["job_ids"] = list(job_ids)
        entry["outcome"] = None

    @event(FilePostActionCompleted)
    def _post_action_completed(
        self, route_id: str, path: str, file_version: str, action: str, moved_to: str | None
    ) -> None:
        self.dispatched[file_version]["outcome"] = "post_action_completed"

    # -- commands ----------------------------------------------------------------------------

    def was_dispatched(self, file_version: str, *, once_per_name: bool = False) -> bool:
        return bool(self.dispatched) if once_per_name else file_version in self.dispatched

    def skip(
        self,
        reason: str,
        *,
        size: int | None,
        modified_at: datetime | None,
        file_version: str | None,
        detail: str | None = None,
    ) -> bool:
        """Record a skip unless the same decision was already recorded for this version."""
        if self.last_skip == (file_version, reason):
            return False
        self._skipped(
            route_id=self.route_id,
            path=self.path,
            reason=reason,
            size=size,
            modified_at=modified_at,
            file_version=file_version,
            detail=detail,
        )
        return True

    def dispatch(
        self,
        *,
        size: int,
        modified_at: datetime | None,
        file_version: str,
        job_ids: list[str],
        target_paths: list[str],
    ) -> None:
        self._dispatched(
            route_id=self.route_id,
            path=self.path,
            size=size,
            modified_at=modified_at,
            file_version=file_version,
            job_ids=job_ids,
            target_paths=target_paths,
        )

    def outcome(self, file_version: str) -> str | None:
        found = self.dispatched.get(file_version)
        return None if found is None else found["outcome"]

    def last_failed_version(self) -> str | None:
        """The most recently dispatched version whose delivery failed (None: nothing failed)."""
        failed = [v for v, e in self.dispatched.items() if e["outcome"] == "failed"]
        return failed[-1] if failed else None

    def delivered(self, file_version: str, job_ids: list[str] | None = None) -> bool:
        """Every target's job SUCCEEDED (``job_ids``: the jobs that did it, when a retry or a
        redrive replaced some); also after a recorded failure, once it was recovered."""
        found = self.dispatched.get(file_version)
        if found is None or found["outcome"] not in (None, "failed"):
            return False
        self._delivered(
            route_id=self.route_id,
            path=self.path,
            file_version=file_version,
            job_ids=list(job_ids or found["job_ids"]),
        )
        return True

    def retried(self, file_version: str, replaced: dict[str, str], actor: str) -> bool:
        """The failed jobs of a version were redriven (``replaced``: old job id → new one)."""
        found = self.dispatched.get(file_version)
        if found is None or found["outcome"] != "failed":
            return False
        job_ids = [replaced.get(j, j) for j in found["job_ids"]]
        self._retried(
            route_id=self.route_id,
            path=self.path,
            file_version=file_version,
            failed_job_ids=list(replaced),
            job_ids=job_ids,
            actor=actor,
        )
        return True

    def delivery_failed(
        self, file_version: str, failed_job_ids: list[str], error_code: str, error_message: str
    ) -> bool:
        found = self.dispatched.get(file_version)
        if found is None or found["outcome"] is not None:
            return False
        self._delivery_failed(
            route_id=self.route_id,
            path=self.path,
            file_version=file_version,
            job_ids=found["job_ids"],
            failed_job_ids=failed_job_ids,
            error_code=error_code,
            error_message=error_message,
        )
        return True

    def post_action_completed(self, file_version: str, action: str, moved_to: str | None) -> bool:
        found = self.dispatched.get(file_version)
        if found is None or found["outcome"] not in (None, "delivered"):
            return False
        self._post_action_completed(
            route_id=self.route_id,
            path=self.path,
            file_version=file_version,
            action=action,
            moved_to=moved_to,
        )
        return True
