"""The routes application: route commands (API) and the ledger commands the push consumer and
the pull scanner use to record decisions and turn files into jobs.

Jobs are ordinary jobs, created through the jobs service's application (port ``JobSubmitter``)
with a deterministic idempotency key per (route, target, file version): a repeated S3 event, a
replay or a second scanner never makes a second job, while a new version of a file does.

Why one module over 400 lines: it is the command side of the Route aggregate and its RouteFile
ledger; route commands and ledger commands (dispatch, settle, retry) share the save / name-claim
/ endpoint-check helpers and the deterministic idempotency keys. The request, view and error
types are small and belong to these commands.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from pydantic import BaseModel, ConfigDict, Field

from events.aggregate import FerryApplication
from events.contract import Direction, EndpointStatus, EndpointType, FerryEvent
from events.translate import stream_events
from ferry import errors
from services.routes.definition import (
    UPDATABLE,
    InvalidDefinition,
    RouteDefinition,
    check_rendered,
    parse_definition,
    render,
    template_values,
)
from services.routes.domain import Route, RouteConflict, RouteError, RouteFile, file_stream_id
from services.routes.ports import (
    EndpointDirectory,
    EndpointInfo,
    JobSubmitter,
    RouteIndex,
)

#: A name claim or bucket entry younger than this whose route is not saved yet belongs to a
#: command still in flight (it is waited for); older, to a command that failed (it is ignored).
IN_FLIGHT_SECONDS = 60.0


class RoutesError(errors.Invalid):
    """Base of the routes service's API errors: ``ferry.errors`` kinds (422 unless a subclass
    names another kind first: ``ferry.api.HTTP_STATUS`` takes the first kind in the MRO)."""

    code = "validation_error"


class InvalidRoute(RoutesError):
    pass


class NotFound(errors.NotFound, RoutesError):
    code = "not_found"


class RouteNameTaken(errors.Conflict, RoutesError):
    code = "name_taken"


class NothingToRetry(errors.Conflict, RoutesError):
    code = "nothing_to_retry"


class RetryFileRequest(BaseModel):
    """POST /routes/{route_id}/files/retry."""

    model_config = ConfigDict(extra="forbid", strict=True)

    path: str = Field(
        min_length=1, max_length=4096, description="The file's path, as the ledger shows it."
    )


class RetryLater(Exception):
    """A consumer must not decide yet (a route command is in flight): redeliver the message."""


class DispatchRefused(Exception):
    """The jobs service refused a job (e.g. a target endpoint was disabled since).
    ``permanent``: the request itself is invalid for this file (retrying cannot help)."""

    def __init__(self, code: str, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.permanent = permanent


@dataclass(frozen=True)
class RouteView:
    """A route as the data plane uses it."""

    route_id: str
    customer_id: str
    definition: RouteDefinition
    scan_error: str | None = None  # as the route's stream says (None when not read from it)

    @classmethod
    def of(
        cls,
        route_id: str,
        customer_id: str,
        definition: dict[str, Any],
        scan_error: str | None = None,
    ) -> RouteView:
        return cls(route_id, customer_id, RouteDefinition.model_validate(definition), scan_error)


@dataclass(frozen=True)
class Candidate:
    """A file a route may dispatch (pull: a listed file; push: an S3 object)."""

    path: str  # endpoint-relative (what the job names)
    relpath: str  # relative to the route's source path ({relpath})
    size: int
    modified_at: datetime | None
    file_version: str
    key_parts: tuple[str, ...]  # what identifies this version in the idempotency key
    first_seen_at: datetime


@dataclass(frozen=True)
class Retried:
    """A retried file version and the jobs now responsible for it (in target order)."""

    route_id: str
    path: str
    file_version: str
    job_ids: tuple[str, ...]


@dataclass(frozen=True)
class Dispatch:
    outcome: str  # dispatched | duplicate | refused | invalid_path
    job_ids: tuple[str, ...] = ()


def idempotency_key(route_id: str, target_index: int, target_endpoint: str, *parts: str) -> str:
    digest = hashlib.sha256(
        json.dumps([route_id, target_index, target_endpoint, *parts]).encode()
    ).hexdigest()
    return f"route-{digest}"


class RoutesApplication(FerryApplication):
    def __init__(
        self,
        *,
        endpoints: EndpointDirectory,
        jobs: JobSubmitter,
        staging_bucket: str = "ferry-staging",
        index: RouteIndex,
        env: Any = None,
        clock: Any = time.time,
        listed_names: Callable[[str], Iterable[tuple[str, str]]] | None = None,
    ) -> None:
        """``listed_names``: (route_id, name) of a customer's routes as the read model lists
        them — how routes created before name claims existed are found (they have none)."""
        super().__init__(env=env)
        self.endpoints = endpoints
        self.jobs = jobs
        self.staging_bucket = staging_bucket
        self.index = index
        self.clock = clock
        self.listed_names = listed_names

    # -- route commands ----------------------------------------------------------------------

    def create(self, customer_id: str, actor: str, raw: Any) -> Route:
        definition = _parse(raw)
        source = self._check_endpoints(customer_id, definition)
        route = Route.create(uuid4(), customer_id, definition.as_json(), actor)
        self._claim_name(customer_id, definition.name, route.route_id)
        try:
            self._index_source(route, source)
            self.save(route)
        except BaseException:
            self.index.release_name(customer_id, definition.name, route.route_id)
            raise
        return route

    def update(self, customer_id: str, actor: str, route_id: str, raw: Any) -> Route:
        if not isinstance(raw, dict) or not raw:
            raise InvalidRoute("a JSON object with the fields to change is required", field="body")
        for key in raw:
            if key not in UPDATABLE:
                hint = " (use /disable or /enable)" if key == "enabled" else ""
                raise InvalidRoute(f"{key}: unknown or not updatable field{hint}", field=key)
        route = self.get_route(customer_id, route_id)
        old_name = route.definition.get("name")
        definition = _parse({**route.definition, **raw})
        source = self._check_endpoints(customer_id, definition)
        full = definition.as_json()
        if not route.update({k: full[k] for k in raw}, actor):
            return route
        renamed = definition.name != old_name
        if renamed:
            self._claim_name(customer_id, definition.name, route.route_id)
        try:
            self._index_source(route, source)
            self._save(route)
        except BaseException:
            if renamed:
                self.index.release_name(customer_id, definition.name, route.route_id)
            raise
        if renamed and old_name:
            self.index.release_name(customer_id, str(old_name), route.route_id)
        return route

    def disable(self, customer_id: str, actor: str, route_id: str) -> Route:
        route = self.get_route(customer_id, route_id)
        if route.disable(actor):
            self._save(route)
        return route

    def enable(self, customer_id: str, actor: str, route_id: str) -> Route:
        route = self.get_route(customer_id, route_id)
        if route.enable(actor):
            self._save(route)
        return route

    # -- queries -----------------------------------------------------------------------------

    def get_route(self, customer_id: str, route_id: str) -> Route:
        try:
            stream_id = UUID(route_id)
            if str(stream_id) != route_id:  # only canonical ids: never a non-canonical lookup
                raise ValueError(route_id)
            found: Any = self.repository.get(stream_id)
        except (ValueError, AggregateNotFoundError):
            raise NotFound("route not found", field="route_id") from None
        if not isinstance(found, Route) or found.customer_id != customer_id:
            raise NotFound("route not found", field="route_id")
        return found

    def current(self, route_id: str) -> Route | None:
        """A route as the event store says now (the data plane's consistent read)."""
        try:
            found: Any = self.repository.get(UUID(route_id))
        except (ValueError, AggregateNotFoundError):
            return None
        return found if isinstance(found, Route) else None

    def route_events(self, customer_id: str, route_id: str) -> list[FerryEvent]:
        route = self.get_route(customer_id, route_id)
        return stream_events(self.aggregate_recorder, route.id)

    def ledger(self, route_id: str, path: str) -> RouteFile | None:
        try:
            found: Any = self.repository.get(file_stream_id(route_id, path))
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, RouteFile) else None

    def file_events(self, route_id: str, path: str) -> list[FerryEvent]:
        return stream_events(self.aggregate_recorder, file_stream_id(route_id, path))

    def record_unrouted(
        self,
        bucket: str,
        *,
        key: str,
        size: int,
        version: str,
        reason: str,
        detail: str | None,
        at: datetime,
    ) -> None:
        """An S3 object no route took: kept per bucket so "why wasn't X sent?" has an answer."""
        self.index.record_unrouted(
            bucket,
            {
                "key": key,
                "size": size,
                "version": version,
                "reason": reason,
                "detail": detail,
                "at": at.isoformat(),
            },
        )

    def unrouted(
        self, customer_id: str, endpoint_id: Any, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Objects no route took, under one of the caller's ACTIVE S3 endpoints (its bucket and
        prefix): only a customer whose validated endpoint names the bucket may ask."""
        if not isinstance(endpoint_id, str) or not endpoint_id:
            raise InvalidRoute("endpoint_id: an S3 endpoint's id is required", field="endpoint_id")
        found = self.endpoints.get(endpoint_id)
        if found is None or found.customer_id != customer_id:
            raise NotFound(
                f"no endpoint {endpoint_id}", field="endpoint_id", code="endpoint_not_found"
            )
        if found.type is not EndpointType.S3 or not found.bucket:
            raise InvalidRoute("endpoint_id: an S3 endpoint is required", field="endpoint_id")
        if found.status != EndpointStatus.ACTIVE:
            raise InvalidRoute(
                f"endpoint {endpoint_id} is {found.status.value}: only a validated endpoint "
                "answers for its bucket",
                field="endpoint_id",
                code="endpoint_not_active",
            )
        return self.index.unrouted(found.bucket, found.prefix, limit)

    def record_scan(self, route_id: str, failure: str | None) -> bool:
        """The outcome of listing a route's source: RouteScanFailed (``failure``: the reason)
        or, after a failure, RouteScanRecovered. Recorded once per change."""
        for _ in range(5):
            route = self.current(route_id)
            if route is None:
                return False
            changed = route.scan_failed(failure) if failure else route.scan_succeeded()
            if not changed:
                return False
            try:
                self.save(route)
                return True
            except IntegrityError:
                continue
        return False

    def record_tick_late(
        self, route_id: str, scheduled_for: datetime, ran_at: datetime, missed_slots: int
    ) -> bool:
        """ScheduleTickLate: the route's scan ran after its slot (once per slot)."""
        for _ in range(5):
            route = self.current(route_id)
            if route is None or not route.tick_late(scheduled_for, ran_at, missed_slots):
                return False
            try:
                self.save(route)
                return True
            except IntegrityError:
                continue
        return False

    def retry_file(self, customer_id: str, actor: str, route_id: str, path: Any) -> Retried:
        """Retry a file's failed delivery: each failed target's job is redriven (through the
        jobs service, so a ``POST /jobs/{id}/redrive`` of the same job converges on the same new
        job); FileRetried records it and the scanner settles the new jobs like any dispatch."""
        if not isinstance(path, str) or not path or len(path) > 4096:
            raise InvalidRoute("path: the file's path, as the ledger shows it", field="path")
        self.get_route(customer_id, route_id)
        for _ in range(5):
            ledger = self.ledger(route_id, path)
            if ledger is None:
                raise NotFound(f"the route has no file {path!r}", field="path")
            version = ledger.last_failed_version()
            if version is None:
                raise NothingToRetry(f"{path!r} has no failed delivery to retry", field="path")
            replaced: dict[str, str] = {}
            for job_id in ledger.dispatched[version]["job_ids"]:
                try:
                    new_id = self.jobs.retry(customer_id, actor, job_id)
                except DispatchRefused as refused:
                    raise NothingToRetry(
                        f"job {job_id} cannot be retried: {refused.message}", field="path"
                    ) from None
                if new_id != job_id:
                    replaced[job_id] = new_id
            ledger.retried(version, replaced, actor)
            try:
                self.save(ledger)
            except IntegrityError:
                continue  # the scanner recorded an outcome meanwhile: look again
            return Retried(route_id, path, version, tuple(ledger.dispatched[version]["job_ids"]))
        raise RouteConflict("the file ledger kept changing; try again")

    # -- ledger commands (push consumer, pull scanner) --------------------------------------

    def record_skip(
        self,
        route: RouteView,
        candidate: Candidate,
        reason: str,
        detail: str | None = None,
    ) -> bool:
        for _ in range(5):
            ledger = self._ledger_for(route, candidate)
            recorded = ledger.skip(
                reason,
                size=candidate.size,
                modified_at=candidate.modified_at,
                file_version=candidate.file_version,
                detail=detail,
            )
            if not recorded and not ledger.pending_events:
                return False
            try:
                self.save(ledger)
                return recorded
            except IntegrityError:
                continue
        raise RouteConflict("the file ledger kept changing; try again")

    def dispatch(self, route: RouteView, candidate: Candidate, when: datetime) -> Dispatch:
        """Create one job per target for a file version, unless it was dispatched already."""
        definition = route.definition
        for _ in range(5):
            ledger = self._ledger_for(route, candidate)
            if ledger.was_dispatched(
                candidate.file_version, once_per_name=definition.once_per_name
            ):
                self._save_quietly(ledger, "duplicate", candidate)
                return Dispatch("duplicate")
            values = template_values(
                candidate.relpath, customer=route.customer_id, route=definition.name, when=when
            )
            targets: list[str] = []
            for index, target in enumerate(definition.targets):
                try:
                    targets.append(check_rendered(render(target.path_template, values)))
                except ValueError as error:
                    self._save_quietly(
                        ledger, "invalid_path", candidate, f"targets.{index}: {error}"
                    )
                    return Dispatch("invalid_path")
            job_ids: list[str] = []
            for index, (target, target_path) in enumerate(
                zip(definition.targets, targets, strict=True)
            ):
                request = {
                    "source": {
                        "endpoint_id": definition.source.endpoint_id,
                        "path": candidate.path,
                        "version": candidate.file_version,
                    },
                    "target": {"endpoint_id": target.endpoint_id, "path": target_path},
                    "options": {
                        "overwrite": definition.overwrite,
                        "post_action": "none",  # the route's post_action runs after all targets
                        "max_attempts": definition.max_attempts,
                        "verify": definition.verify.value,
                    },
                }
                parts = (candidate.path,) if definition.once_per_name else candidate.key_parts
                key = idempotency_key(route.route_id, index, target.endpoint_id, *parts)
                try:
                    job_ids.append(
                        self.jobs.submit(
                            route.customer_id,
                            f"route:{route.route_id}",
                            request,
                            key,
                            route.route_id,
                        )
                    )
                except DispatchRefused as refused:
                    outcome = "invalid_path" if refused.permanent else "refused"
                    self._save_quietly(
                        ledger, outcome, candidate, f"{refused.code}: {refused.message}"
                    )
                    return Dispatch(outcome)
            ledger.dispatch(
                size=candidate.size,
                modified_at=candidate.modified_at,
                file_version=candidate.file_version,
                job_ids=job_ids,
                target_paths=targets,
            )
            try:
                self.save(ledger)
            except IntegrityError:
                continue  # another consumer recorded first: reload (the jobs are idempotent)
            return Dispatch("dispatched", tuple(job_ids))
        raise RouteConflict("the file ledger kept changing; try again")

    def settle(
        self,
        route_id: str,
        path: str,
        file_version: str,
        *,
        failed: list[tuple[str, str, str]] | None = None,
        post_action: tuple[str, str | None] | None = None,
        job_ids: list[str] | None = None,
    ) -> bool:
        """Record a dispatched version's outcome: FileDeliveryFailed (``failed`` = job id,
        error code, message), FilePostActionCompleted (``post_action`` = action, moved_to) or
        FileDelivered (``job_ids``: the jobs that delivered, when redrives replaced some).
        True only for the caller whose event was appended (conditional on the stream version):
        that caller alone runs what follows (the route's post_action)."""
        ledger = self.ledger(route_id, path)
        if ledger is None:
            return False
        if failed:
            first = failed[0]
            changed = ledger.delivery_failed(
                file_version, [f[0] for f in failed], first[1], first[2]
            )
        elif post_action is not None:
            changed = ledger.post_action_completed(file_version, post_action[0], post_action[1])
        else:
            changed = ledger.delivered(file_version, job_ids)
        if changed:
            try:
                self.save(ledger)
            except IntegrityError:
                return False
        return changed

    # -- internals ---------------------------------------------------------------------------

    def _ledger_for(self, route: RouteView, candidate: Candidate) -> RouteFile:
        found = self.ledger(route.route_id, candidate.path)
        if found is not None:
            return found
        return RouteFile.discover(
            customer_id=route.customer_id,
            route_id=route.route_id,
            path=candidate.path,
            size=candidate.size,
            modified_at=candidate.modified_at,
            file_version=candidate.file_version,
            first_seen_at=candidate.first_seen_at,
        )

    def _save_quietly(
        self, ledger: RouteFile, reason: str, candidate: Candidate, detail: str | None = None
    ) -> None:
        ledger.skip(
            reason,
            size=candidate.size,
            modified_at=candidate.modified_at,
            file_version=candidate.file_version,
            detail=detail,
        )
        try:
            self.save(ledger)
        except IntegrityError:
            pass  # someone else recorded a decision about this file first: theirs stands

    def _save(self, route: Route) -> None:
        try:
            self.save(route)
        except IntegrityError:
            raise RouteConflict("the route was changed concurrently; try again") from None

    def _claim_name(self, customer_id: str, name: str, route_id: str) -> None:
        """Names are unique per customer: a conditional claim written before the event."""
        now = self.clock()
        held = self.index.claim_name(customer_id, name, route_id, now)
        if held is None:
            self._no_unclaimed_holder(customer_id, name, route_id)
            return
        owner = self.current(held.route_id)
        stale = (
            owner.definition.get("name") != name
            if owner is not None
            else now - held.since > IN_FLIGHT_SECONDS  # its create failed after the claim
        )
        if (
            stale
            and self.index.claim_name(customer_id, name, route_id, now, replace=held.route_id)
            is None
        ):
            self._no_unclaimed_holder(customer_id, name, route_id)
            return
        raise RouteNameTaken(f"a route named {name!r} exists already", field="name")

    def _no_unclaimed_holder(self, customer_id: str, name: str, route_id: str) -> None:
        """A route made before name claims existed holds its name without a claim."""
        if self.listed_names is None:
            return
        for other_id, other_name in self.listed_names(customer_id):
            if other_name != name or other_id == route_id:
                continue
            other = self.current(other_id)
            if other is not None and other.definition.get("name") == name:
                self.index.release_name(customer_id, name, route_id)
                raise RouteNameTaken(f"a route named {name!r} exists already", field="name")

    def _index_source(self, route: Route, source: EndpointInfo) -> None:
        """A push route's bucket, written before the event: the push consumer reads it
        strongly consistently, so an object uploaded right after the response is routed."""
        definition = route.definition
        if (definition.get("trigger") or {}).get("type") == "event" and source.bucket:
            self.index.add_bucket(source.bucket, route.route_id, route.customer_id, self.clock())

    def _check_endpoints(self, customer_id: str, definition: RouteDefinition) -> EndpointInfo:
        source = self._endpoint(customer_id, definition.source.endpoint_id, "source.endpoint_id")
        if source.direction not in (Direction.INBOUND, Direction.BOTH):
            raise InvalidRoute(
                f"endpoint {source.endpoint_id} is {source.direction}: it cannot be a source",
                field="source.endpoint_id",
                code="direction_mismatch",
            )
        if definition.trigger.type == "event" and source.type is not EndpointType.S3:
            raise InvalidRoute(
                "an event trigger needs an S3 source (SFTP sources are polled: use a schedule)",
                field="trigger.type",
            )
        if source.type is EndpointType.S3 and source.bucket == self.staging_bucket:
            raise InvalidRoute(
                "Ferry's staging bucket cannot be a route source", field="source.endpoint_id"
            )
        for index, target in enumerate(definition.targets):
            field = f"targets.{index}.endpoint_id"
            found = self._endpoint(customer_id, target.endpoint_id, field)
            if found.direction not in (Direction.OUTBOUND, Direction.BOTH):
                raise InvalidRoute(
                    f"endpoint {found.endpoint_id} is {found.direction}: it cannot be a target",
                    field=field,
                    code="direction_mismatch",
                )
        return source

    def _endpoint(self, customer_id: str, endpoint_id: str, field: str) -> EndpointInfo:
        found = self.endpoints.get(endpoint_id)
        if found is None or found.customer_id != customer_id:
            raise NotFound(f"no endpoint {endpoint_id}", field=field, code="endpoint_not_found")
        if found.status == EndpointStatus.DISABLED:
            raise InvalidRoute(
                f"endpoint {endpoint_id} is disabled", field=field, code="endpoint_disabled"
            )
        if found.status not in (EndpointStatus.ACTIVE, EndpointStatus.PENDING_VALIDATION):
            raise InvalidRoute(
                f"endpoint {endpoint_id} is {found.status.value}: validate it first",
                field=field,
                code="endpoint_not_usable",
            )
        return found


def _parse(raw: Any) -> RouteDefinition:
    try:
        return parse_definition(raw)
    except InvalidDefinition as error:
        raise InvalidRoute(error.message, field=error.field) from None


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


__all__ = [
    "IN_FLIGHT_SECONDS",
    "Candidate",
    "Dispatch",
    "DispatchRefused",
    "InvalidRoute",
    "NotFound",
    "NothingToRetry",
    "Retried",
    "RetryFileRequest",
    "RetryLater",
    "RouteError",
    "RouteNameTaken",
    "RouteView",
    "RoutesApplication",
    "RoutesError",
    "idempotency_key",
    "utc",
]
