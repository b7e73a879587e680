"""Read-model folds: pure functions ``(item | None, event) -> item``.

Items are plain JSON-like dicts (str, int, float, bool, None, dict, list) in the shape of the
DynamoDB items described in docs/architecture.md. The folds know nothing about storage, order or
duplicates: ``services.projections.application.Projector`` applies each stream's events exactly
once and in version order, and records the last applied version per stream on the item
(``version`` for endpoints; ``job_version`` and ``transfer_version`` for jobs).

A job item is fed by two streams (the job stream and its Transfer stream) whose relative order
differs between live delivery and a rebuild. So that both end with identical items, every job
attribute is owned by exactly one of the two streams (status, attempt, errors, size/sha256, times
from the job stream; progress from the Transfer stream), and the only shared attribute,
``updated_at``, is a max.

Each contract event class has exactly one fold, registered by the decorator that names it
(``@endpoint_fold(c.EndpointValidated)``, ``@job_fold``, ``@transfer_fold``): the fold takes the
typed contract model and reads its fields by attribute, so an event's fields are declared only
in ``events/contract.py``. The registry says which read model, key and version attribute an
event feeds; events of streams no read model here folds are listed in :data:`NOT_FOLDED`, and
``tests/unit/test_projections_folds.py`` fails for a published event that is in neither.

Over 400 lines because it holds one small fold per contract event class, every read model's
folds in one registry (the coverage test walks it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from events import contract as c
from events.contract import EndpointStatus, FerryEvent, JobStatus

Item = dict[str, Any]
E = TypeVar("E", bound=FerryEvent)
Fold = Callable[[Item, Any], None]
"""Changes the new item in place from one event (its typed contract model)."""

ENDPOINTS = "endpoints"
JOBS = "jobs"
VERSION_ATTRIBUTES = {ENDPOINTS: ("version",), JOBS: ("job_version", "transfer_version")}
KEY_ATTRIBUTE = {ENDPOINTS: "endpoint_id", JOBS: "job_id"}


@dataclass(frozen=True)
class Folding:
    """How one contract event class is folded: into which read model, under which version
    attribute (its stream's), by which function."""

    kind: str
    version_attribute: str
    apply: Fold


FOLDS: dict[type[FerryEvent], Folding] = {}
"""contract event class -> its one fold."""

NOT_FOLDED: tuple[type[FerryEvent], ...] = (
    c.RouteEvent,  # the routes read model: services/routes/readmodel.py
    c.EndpointCheckCompleted,  # the validator's verdict: the endpoints service applies it
)
"""Published events (and families) no read model here folds."""


def _registers(kind: str, version_attribute: str) -> Callable[[type[E]], Callable[[Fold], Fold]]:
    def naming(model: type[E]) -> Callable[[Fold], Fold]:
        def register(apply: Fold) -> Fold:
            if model in FOLDS:
                raise ValueError(f"{model.__name__} has two folds")
            FOLDS[model] = Folding(kind, version_attribute, apply)
            return apply

        return register

    return naming


endpoint_fold = _registers(ENDPOINTS, "version")
job_fold = _registers(JOBS, "job_version")
transfer_fold = _registers(JOBS, "transfer_version")

_SECRET_KEYS = frozenset({"password", "private_key", "passphrase", "secret", "credentials"})
_CONFIG_KEYS = frozenset(c.EndpointConfig.model_fields) - {"type"}
_ENDPOINT_TOP_KEYS = frozenset({"name", "direction", "max_concurrency", "bandwidth_limit"})


def timestamp(value: datetime) -> str:
    """Canonical stored form of a time: UTC, microseconds, sortable as a string."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def customer_status(customer_id: str, status: str) -> str:
    return f"{customer_id}#{status}"


def customer_route(customer_id: str, route_id: str, status: str | None = None) -> str:
    """The route indexes' partitions: customer#route, and customer#route#status (sparse: only
    jobs a route started carry them; the customer id keeps every partition one customer's)."""
    return f"{customer_id}#{route_id}" if status is None else f"{customer_id}#{route_id}#{status}"


def customer_endpoint(customer_id: str, endpoint_id: str, status: str | None = None) -> str:
    """The source and target indexes' partitions: customer#endpoint, and
    customer#endpoint#status (the customer id keeps every partition one customer's)."""
    return customer_route(customer_id, endpoint_id, status)


def _index_keys(new: Item) -> None:
    """The status, route and endpoint partitions, once the job's customer, creation and status
    are known."""
    if not (new.get("created_at") and new.get("status")):
        return
    customer, status = new["customer_id"], new["status"]
    new["customer_status"] = customer_status(customer, status)
    if new.get("route_id"):
        new["customer_route"] = customer_route(customer, new["route_id"])
        new["customer_route_status"] = customer_route(customer, new["route_id"], status)
    source = (new.get("source") or {}).get("endpoint_id")
    target = (new.get("target") or {}).get("endpoint_id")
    for side, endpoint in (("source", source), ("target", target if target != source else None)):
        if endpoint:  # a job from an endpoint to itself is in the source indexes only
            new[f"customer_{side}"] = customer_endpoint(customer, endpoint)
            new[f"customer_{side}_status"] = customer_endpoint(customer, endpoint, status)


# --------------------------------------------------------------------------- routing


def target_of(event: FerryEvent) -> tuple[str, str, str] | None:
    """(read model, item key, version attribute) an event is folded into, or None."""
    folding = FOLDS.get(type(event))
    if folding is None:
        return None
    return folding.kind, str(getattr(event, KEY_ATTRIBUTE[folding.kind])), folding.version_attribute


def fold(item: Item | None, event: FerryEvent) -> Item:
    """Fold one event into its read-model item (the caller guarantees stream order)."""
    folding = FOLDS.get(type(event))
    if folding is None:
        raise ValueError(f"{event.detail_type()} has no read model")
    new = _apply(folding, item, event)
    new[folding.version_attribute] = event.version
    return new


def _apply(folding: Folding, item: Item | None, event: FerryEvent) -> Item:
    if folding.kind == ENDPOINTS:
        assert isinstance(event, c.EndpointEvent)
        new = _endpoint_base(item, event)
        if new.get("status") == EndpointStatus.RETIRED.value:
            return new  # final: nothing after EndpointRetired changes the endpoint
    else:
        assert isinstance(event, c.JobEvent | c.ExecutorEvent)
        new = _job_base(item, event)
    folding.apply(new, event)
    return new


def fold_endpoint(item: Item | None, event: FerryEvent) -> Item:
    """An endpoint event's fold without the version bookkeeping."""
    folding = FOLDS[type(event)]
    assert folding.kind == ENDPOINTS, event.detail_type()
    return _apply(folding, item, event)


def fold_job(item: Item | None, event: FerryEvent) -> Item:
    """A job or Transfer stream event's fold without the version bookkeeping."""
    folding = FOLDS[type(event)]
    assert folding.kind == JOBS, event.detail_type()
    return _apply(folding, item, event)


# --------------------------------------------------------------------------- endpoints


def _endpoint_base(item: Item | None, event: c.EndpointEvent) -> Item:
    new: Item = dict(item) if item else {}
    new.setdefault("endpoint_id", event.endpoint_id)
    new.setdefault("customer_id", event.customer_id)
    new.setdefault("version", 0)
    new["updated_at"] = timestamp(event.occurred_at)
    return new


def _disabled(new: Item) -> bool:
    return bool(new.get("status") == EndpointStatus.DISABLED.value)


def _status_after_validation(new: Item) -> str:
    return {
        "ok": EndpointStatus.ACTIVE.value,
        "failed": EndpointStatus.VALIDATION_FAILED.value,
    }.get(new.get("validation") or "", EndpointStatus.PENDING_VALIDATION.value)


def _pending_again(new: Item) -> None:
    """The current configuration has no verdict (yet)."""
    new.update(validation=None, validation_error=None)
    if not _disabled(new):
        new.update(status=EndpointStatus.PENDING_VALIDATION.value, status_reason=None)


@endpoint_fold(c.EndpointRegistered)
def _registered(new: Item, event: c.EndpointRegistered) -> None:
    config = event.config.model_dump(mode="json", exclude_none=True)
    new.update(
        name=event.name,
        type=config.pop("type"),
        direction=event.direction.value,
        max_concurrency=event.max_concurrency,
        bandwidth_limit=event.bandwidth_limit,
        config=config,
        secret_arn=event.secret_arn,
        status=EndpointStatus.PENDING_VALIDATION.value,
        status_reason=None,
        validation=None,
        created_at=timestamp(event.occurred_at),
        created_by=event.actor,
    )


@endpoint_fold(c.EndpointValidated)
def _validated(new: Item, event: c.EndpointValidated) -> None:
    disabled = _disabled(new)
    new.update(
        validation="ok",
        validated_at=timestamp(event.occurred_at),
        validation_checks=list(event.checks),
    )
    if event.host_key_fingerprint:
        new["host_key_fingerprint"] = event.host_key_fingerprint
    if not disabled:
        new.update(status=EndpointStatus.ACTIVE.value, status_reason=None)


@endpoint_fold(c.EndpointValidationFailed)
def _validation_failed(new: Item, event: c.EndpointValidationFailed) -> None:
    disabled = _disabled(new)
    new.update(validation="failed", validated_at=timestamp(event.occurred_at))
    new["validation_error"] = {"code": event.reason_code, "message": event.message}
    if not disabled:
        new.update(
            status=EndpointStatus.VALIDATION_FAILED.value,
            status_reason=f"{event.reason_code}: {event.message}",
        )


@endpoint_fold(c.EndpointUpdated)
def _updated(new: Item, event: c.EndpointUpdated) -> None:
    _apply_endpoint_changes(new, event)
    if _needs_revalidation(event):  # the current configuration was never validated
        _pending_again(new)


@endpoint_fold(c.EndpointDisabled)
def _disabled_by(new: Item, event: c.EndpointDisabled) -> None:
    new.update(status=EndpointStatus.DISABLED.value, status_reason=event.reason)


@endpoint_fold(c.EndpointValidationRequested)
def _validation_requested(new: Item, event: c.EndpointValidationRequested) -> None:
    _pending_again(new)


@endpoint_fold(c.EndpointRetired)
def _retired(new: Item, event: c.EndpointRetired) -> None:
    new.update(status=EndpointStatus.RETIRED.value, status_reason="retired")
    new["retired_at"] = timestamp(event.occurred_at)


@endpoint_fold(c.EndpointEnabled)
def _enabled(new: Item, event: c.EndpointEnabled) -> None:
    status = _status_after_validation(new)
    reason = None
    if status == EndpointStatus.VALIDATION_FAILED.value:
        error = new.get("validation_error") or {}
        reason = f"{error.get('code')}: {error.get('message')}"
    new.update(status=status, status_reason=reason)


def _apply_endpoint_changes(new: Item, event: c.EndpointUpdated) -> None:
    config = dict(new.get("config") or {})
    for key, value in event.changed.items():
        if key in _SECRET_KEYS:
            continue  # defensive: credentials never reach a read model
        if key in _ENDPOINT_TOP_KEYS:
            new[key] = value
        elif key == "config" and isinstance(value, dict):
            for sub, sub_value in value.items():
                if sub in _CONFIG_KEYS:
                    _set_or_drop(config, sub, sub_value)
        elif key in _CONFIG_KEYS:
            _set_or_drop(config, key, value)
    new["config"] = config
    if event.secret_arn:
        new["secret_arn"] = event.secret_arn


def _set_or_drop(config: Item, key: str, value: Any) -> None:
    if value is None:
        config.pop(key, None)
    else:
        config[key] = value


def _needs_revalidation(event: c.EndpointUpdated) -> bool:
    changed = set(event.changed)
    if isinstance(event.changed.get("config"), dict):
        changed |= set(event.changed["config"])
    return event.credentials_rotated or bool(changed & _CONFIG_KEYS)


# --------------------------------------------------------------------------- jobs


def _job_base(item: Item | None, event: c.JobEvent | c.ExecutorEvent) -> Item:
    new: Item = dict(item) if item else {}
    new.setdefault("job_id", event.job_id)
    new.setdefault("customer_id", event.customer_id)
    new.setdefault("job_version", 0)
    new.setdefault("transfer_version", 0)
    occurred = timestamp(event.occurred_at)
    if occurred > (new.get("updated_at") or ""):
        new["updated_at"] = occurred
    return new


def _advance(new: Item, status: JobStatus) -> None:
    """Move the status forward only (a final status is never left)."""
    current = new.get("status")
    if current is not None and JobStatus(current).rank >= status.rank:
        return
    new["status"] = status.value
    _index_keys(new)


def _spec_fields(spec: c.JobSpec) -> Item:
    return {
        "flow": spec.flow.value,
        "source": spec.source.model_dump(mode="json"),
        "target": spec.target.model_dump(mode="json"),
        "options": spec.options.model_dump(mode="json"),
        "max_attempts": spec.options.max_attempts,
    }


# ---- the job stream: status, attempt, errors, result, times


@job_fold(c.JobRequested)
def _requested(new: Item, event: c.JobRequested) -> None:
    new.update(_spec_fields(event.spec))
    new.update(
        created_at=timestamp(event.occurred_at),
        attempt=0,
        redrive_of=event.redrive_of,
        route_id=event.route_id,
        requested_by=event.actor,
    )
    _advance(new, JobStatus.RECEIVED)
    _index_keys(new)


@job_fold(c.JobQueued)
def _queued(new: Item, event: c.JobQueued) -> None:
    new.update(_spec_fields(event.spec))
    new["attempt"] = event.attempt
    _advance(new, JobStatus.QUEUED)


@job_fold(c.JobStarted)
def _started(new: Item, event: c.JobStarted) -> None:
    new.update(attempt=event.attempt, executor_id=event.executor_id, next_attempt_at=None)
    new.setdefault("started_at", timestamp(event.occurred_at))
    _advance(new, JobStatus.RUNNING)


@job_fold(c.JobVerified)
def _verified(new: Item, event: c.JobVerified) -> None:
    new.update(_result(event))
    _advance(new, JobStatus.VERIFYING)


@job_fold(c.JobRetryScheduled)
def _retry_scheduled(new: Item, event: c.JobRetryScheduled) -> None:
    new.update(
        attempt=event.attempt,
        next_attempt_at=timestamp(event.next_attempt_at),
        error_code=event.error_code,
        error_message=event.error_message,
    )
    _advance(new, JobStatus.RUNNING)


@job_fold(c.JobSucceeded)
def _succeeded(new: Item, event: c.JobSucceeded) -> None:
    new.update(_result(event))
    new.update(attempt=event.attempts, finished_at=timestamp(event.occurred_at))
    new["next_attempt_at"] = None
    if event.cancel_outcome is not None:  # cancel requested after the file was delivered
        new["cancel_outcome"] = event.cancel_outcome
    _advance(new, JobStatus.SUCCEEDED)


@job_fold(c.JobFailed)
def _failed(new: Item, event: c.JobFailed) -> None:
    new.update(
        attempt=event.attempts,
        error_code=event.error_code,
        error_message=event.error_message,
        finished_at=timestamp(event.occurred_at),
        next_attempt_at=None,
    )
    _advance(new, JobStatus.FAILED)


@job_fold(c.JobCancelRequested)
def _cancel_requested(new: Item, event: c.JobCancelRequested) -> None:
    # the status stays; the executor decides
    new.update(cancel_requested=True, cancelled_by=event.actor, cancel_reason=event.reason)


@job_fold(c.JobCancelled)
def _cancelled(new: Item, event: c.JobCancelled) -> None:
    new["cancel_requested"] = True
    new.update(
        finished_at=new.get("finished_at") or timestamp(event.occurred_at), next_attempt_at=None
    )
    new.update(cancelled_by=event.actor, cancel_reason=event.reason)
    _advance(new, JobStatus.CANCELLED)


@job_fold(c.JobRedriven)
def _redriven(new: Item, event: c.JobRedriven) -> None:
    new["redriven_to"] = event.new_job_id


@job_fold(c.JobSlow)
def _slow(new: Item, event: c.JobSlow) -> None:
    """A warning on the job's stream (issue 12): version bookkeeping only."""


# ---- the Transfer stream: progress only


@transfer_fold(c.TransferStarted)
def _transfer_started(new: Item, event: c.TransferStarted) -> None:
    new.update(
        leg=event.leg,
        legs=event.legs,
        bytes_total=event.size,
        chunk_count=event.chunk_count,
        chunk_size=event.chunk_size,
    )
    if new.get("transfer_leg") != event.leg:  # a new leg starts from zero
        new.update(bytes_committed=0, chunks_committed=0, transfer_leg=event.leg)


@transfer_fold(c.ChunkCommitted)
def _chunk_committed(new: Item, event: c.ChunkCommitted) -> None:
    if event.leg < int(new.get("transfer_leg") or 0):
        return  # SFTP→SFTP runs its legs at once: progress is the delivering leg's
    new.update(
        leg=event.leg,
        transfer_leg=event.leg,
        bytes_committed=event.bytes_committed,
        bytes_total=event.bytes_total,
        chunks_committed=event.chunks_committed or event.index + 1,
    )


@transfer_fold(c.TransferAttemptFailed)
def _attempt_failed(new: Item, event: c.TransferAttemptFailed) -> None:
    new["bytes_committed"] = event.bytes_committed


@transfer_fold(c.TransferVerified)
def _transfer_verified(new: Item, event: c.TransferVerified) -> None:
    new.update(bytes_committed=event.size, bytes_total=event.size)
    if new.get("chunk_count") is not None:
        new["chunks_committed"] = new["chunk_count"]


@transfer_fold(c.LeaseAcquired)
def _lease_acquired(new: Item, event: c.LeaseAcquired) -> None:
    new["lease_owner"] = event.owner_id


@transfer_fold(c.LeaseReleased)
def _lease_released(new: Item, event: c.LeaseReleased) -> None:
    new["lease_owner"] = None


@transfer_fold(c.LeaseRenewed)
@transfer_fold(c.PostActionCompleted)
def _bookkeeping(new: Item, event: FerryEvent) -> None:
    """Version bookkeeping only."""


def _events_of(version_attribute: str) -> tuple[type[FerryEvent], ...]:
    return tuple(m for m, f in FOLDS.items() if f.version_attribute == version_attribute)


ENDPOINT_EVENTS = _events_of("version")
JOB_STREAM_EVENTS = _events_of("job_version")
TRANSFER_STREAM_EVENTS = _events_of("transfer_version")


def _result(event: c.JobVerified | c.JobSucceeded) -> Item:
    return {
        "size": event.size,
        "sha256": event.sha256,
        "duration_seconds": event.duration_seconds,
        "throughput_bytes_per_second": event.throughput_bytes_per_second,
    }


def progress_percent(item: Item) -> float:
    """0-100 across legs; 100 once SUCCEEDED."""
    if item.get("status") == JobStatus.SUCCEEDED.value:
        return 100.0
    total = item.get("bytes_total")
    if not total:
        return 0.0
    legs = max(int(item.get("legs") or 1), 1)
    leg = min(max(int(item.get("leg") or 1), 1), legs)
    done = min(int(item.get("bytes_committed") or 0), int(total)) / int(total)
    return round(((leg - 1) + done) / legs * 100, 1)
