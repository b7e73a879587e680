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
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from events import contract as c
from events.contract import EndpointStatus, FerryEvent, JobStatus

Item = dict[str, Any]

ENDPOINT_EVENTS: tuple[type[FerryEvent], ...] = (
    c.EndpointRegistered,
    c.EndpointValidated,
    c.EndpointValidationFailed,
    c.EndpointUpdated,
    c.EndpointDisabled,
    c.EndpointEnabled,
    c.EndpointValidationRequested,
    c.EndpointRetired,
)
JOB_STREAM_EVENTS: tuple[type[FerryEvent], ...] = (
    c.JobRequested,
    c.JobQueued,
    c.JobStarted,
    c.JobVerified,
    c.JobRetryScheduled,
    c.JobSucceeded,
    c.JobFailed,
    c.JobCancelRequested,
    c.JobCancelled,
    c.JobRedriven,
)
TRANSFER_STREAM_EVENTS: tuple[type[FerryEvent], ...] = (
    c.LeaseAcquired,
    c.LeaseRenewed,
    c.TransferStarted,
    c.ChunkCommitted,
    c.TransferVerified,
    c.TransferAttemptFailed,
    c.PostActionCompleted,
    c.LeaseReleased,
)

ENDPOINTS = "endpoints"
JOBS = "jobs"

_SECRET_KEYS = frozenset({"password", "private_key", "passphrase", "secret", "credentials"})
_CONFIG_KEYS = frozenset(c.EndpointConfig.model_fields) - {"type"}
_ENDPOINT_TOP_KEYS = frozenset({"name", "direction", "max_concurrency"})


def timestamp(value: datetime) -> str:
    """Canonical stored form of a time: UTC, microseconds, sortable as a string."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def customer_status(customer_id: str, status: str) -> str:
    return f"{customer_id}#{status}"


# --------------------------------------------------------------------------- routing


def target_of(event: FerryEvent) -> tuple[str, str, str] | None:
    """(read model, item key, version attribute) an event is folded into, or None."""
    if isinstance(event, ENDPOINT_EVENTS):
        assert isinstance(event, c.EndpointEvent)
        return ENDPOINTS, event.endpoint_id, "version"
    if isinstance(event, JOB_STREAM_EVENTS):
        assert isinstance(event, c.JobEvent)
        return JOBS, event.job_id, "job_version"
    if isinstance(event, TRANSFER_STREAM_EVENTS):
        assert isinstance(event, c.ExecutorEvent)
        return JOBS, event.job_id, "transfer_version"
    return None  # routes: no read model here (issue 5)


VERSION_ATTRIBUTES = {ENDPOINTS: ("version",), JOBS: ("job_version", "transfer_version")}
KEY_ATTRIBUTE = {ENDPOINTS: "endpoint_id", JOBS: "job_id"}


def fold(item: Item | None, event: FerryEvent) -> Item:
    """Fold one event into its read-model item (the caller guarantees stream order)."""
    target = target_of(event)
    if target is None:
        raise ValueError(f"{event.detail_type()} has no read model")
    kind, _, version_attribute = target
    new = fold_endpoint(item, event) if kind == ENDPOINTS else fold_job(item, event)
    new[version_attribute] = event.version
    return new


# --------------------------------------------------------------------------- endpoints


def _endpoint_base(item: Item | None, event: c.EndpointEvent) -> Item:
    new: Item = dict(item) if item else {}
    new.setdefault("endpoint_id", event.endpoint_id)
    new.setdefault("customer_id", event.customer_id)
    new.setdefault("version", 0)
    new["updated_at"] = timestamp(event.occurred_at)
    return new


def _status_after_validation(new: Item) -> str:
    return {
        "ok": EndpointStatus.ACTIVE.value,
        "failed": EndpointStatus.VALIDATION_FAILED.value,
    }.get(new.get("validation") or "", EndpointStatus.PENDING_VALIDATION.value)


def fold_endpoint(item: Item | None, event: FerryEvent) -> Item:
    assert isinstance(event, c.EndpointEvent)
    new = _endpoint_base(item, event)
    if new.get("status") == EndpointStatus.RETIRED.value:
        return new  # final: nothing after EndpointRetired changes the endpoint
    disabled = new.get("status") == EndpointStatus.DISABLED.value
    if isinstance(event, c.EndpointRegistered):
        config = event.config.model_dump(mode="json", exclude_none=True)
        new.update(
            name=event.name,
            type=config.pop("type"),
            direction=event.direction.value,
            max_concurrency=event.max_concurrency,
            config=config,
            secret_arn=event.secret_arn,
            status=EndpointStatus.PENDING_VALIDATION.value,
            status_reason=None,
            validation=None,
            created_at=timestamp(event.occurred_at),
            created_by=event.actor,
        )
    elif isinstance(event, c.EndpointValidated):
        new.update(
            validation="ok",
            validated_at=timestamp(event.occurred_at),
            validation_checks=list(event.checks),
        )
        if event.host_key_fingerprint:
            new["host_key_fingerprint"] = event.host_key_fingerprint
        if not disabled:
            new.update(status=EndpointStatus.ACTIVE.value, status_reason=None)
    elif isinstance(event, c.EndpointValidationFailed):
        new.update(validation="failed", validated_at=timestamp(event.occurred_at))
        new["validation_error"] = {"code": event.reason_code, "message": event.message}
        if not disabled:
            new.update(
                status=EndpointStatus.VALIDATION_FAILED.value,
                status_reason=f"{event.reason_code}: {event.message}",
            )
    elif isinstance(event, c.EndpointUpdated):
        _apply_endpoint_changes(new, event)
        if _needs_revalidation(event):  # the current configuration was never validated
            new.update(validation=None, validation_error=None)
            if not disabled:
                new.update(status=EndpointStatus.PENDING_VALIDATION.value, status_reason=None)
    elif isinstance(event, c.EndpointDisabled):
        new.update(status=EndpointStatus.DISABLED.value, status_reason=event.reason)
    elif isinstance(event, c.EndpointValidationRequested):
        new.update(validation=None, validation_error=None)
        if not disabled:
            new.update(status=EndpointStatus.PENDING_VALIDATION.value, status_reason=None)
    elif isinstance(event, c.EndpointRetired):
        new.update(status=EndpointStatus.RETIRED.value, status_reason="retired")
        new["retired_at"] = timestamp(event.occurred_at)
    elif isinstance(event, c.EndpointEnabled):
        status = _status_after_validation(new)
        reason = None
        if status == EndpointStatus.VALIDATION_FAILED.value:
            error = new.get("validation_error") or {}
            reason = f"{error.get('code')}: {error.get('message')}"
        new.update(status=status, status_reason=reason)
    return new


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
    if new.get("created_at"):
        new["customer_status"] = customer_status(new["customer_id"], status.value)


def _spec_fields(spec: c.JobSpec) -> Item:
    return {
        "flow": spec.flow.value,
        "source": spec.source.model_dump(mode="json"),
        "target": spec.target.model_dump(mode="json"),
        "options": spec.options.model_dump(mode="json"),
        "max_attempts": spec.options.max_attempts,
    }


def fold_job(item: Item | None, event: FerryEvent) -> Item:
    assert isinstance(event, (c.JobEvent, c.ExecutorEvent))
    new = _job_base(item, event)
    at = timestamp(event.occurred_at)
    # ---- the job stream: status, attempt, errors, result, times
    if isinstance(event, c.JobRequested):
        new.update(_spec_fields(event.spec))
        new.update(
            created_at=at,
            attempt=0,
            redrive_of=event.redrive_of,
            route_id=event.route_id,
            requested_by=event.actor,
        )
        _advance(new, JobStatus.RECEIVED)
        new["customer_status"] = customer_status(new["customer_id"], new["status"])
    elif isinstance(event, c.JobQueued):
        new.update(_spec_fields(event.spec))
        new["attempt"] = event.attempt
        _advance(new, JobStatus.QUEUED)
    elif isinstance(event, c.JobStarted):
        new.update(attempt=event.attempt, executor_id=event.executor_id, next_attempt_at=None)
        new.setdefault("started_at", at)
        _advance(new, JobStatus.RUNNING)
    elif isinstance(event, c.JobVerified):
        new.update(_result(event))
        _advance(new, JobStatus.VERIFYING)
    elif isinstance(event, c.JobRetryScheduled):
        new.update(
            attempt=event.attempt,
            next_attempt_at=timestamp(event.next_attempt_at),
            error_code=event.error_code,
            error_message=event.error_message,
        )
        _advance(new, JobStatus.RUNNING)
    elif isinstance(event, c.JobSucceeded):
        new.update(_result(event))
        new.update(attempt=event.attempts, finished_at=at, next_attempt_at=None)
        if event.cancel_outcome is not None:  # cancel requested after the file was delivered
            new["cancel_outcome"] = event.cancel_outcome
        _advance(new, JobStatus.SUCCEEDED)
    elif isinstance(event, c.JobFailed):
        new.update(
            attempt=event.attempts,
            error_code=event.error_code,
            error_message=event.error_message,
            finished_at=at,
            next_attempt_at=None,
        )
        _advance(new, JobStatus.FAILED)
    elif isinstance(event, c.JobCancelRequested):  # the status stays; the executor decides
        new.update(cancel_requested=True, cancelled_by=event.actor, cancel_reason=event.reason)
    elif isinstance(event, c.JobCancelled):
        new["cancel_requested"] = True
        new.update(finished_at=new.get("finished_at") or at, next_attempt_at=None)
        new.update(cancelled_by=event.actor, cancel_reason=event.reason)
        _advance(new, JobStatus.CANCELLED)
    elif isinstance(event, c.JobRedriven):
        new["redriven_to"] = event.new_job_id
    # ---- the Transfer stream: progress only
    elif isinstance(event, c.TransferStarted):
        new.update(
            leg=event.leg,
            legs=event.legs,
            bytes_total=event.size,
            chunk_count=event.chunk_count,
            chunk_size=event.chunk_size,
        )
        if new.get("transfer_leg") != event.leg:  # a new leg starts from zero
            new.update(bytes_committed=0, chunks_committed=0, transfer_leg=event.leg)
    elif isinstance(event, c.ChunkCommitted):
        new.update(
            leg=event.leg,
            transfer_leg=event.leg,
            bytes_committed=event.bytes_committed,
            bytes_total=event.bytes_total,
            chunks_committed=event.chunks_committed or event.index + 1,
        )
    elif isinstance(event, c.TransferAttemptFailed):
        new["bytes_committed"] = event.bytes_committed
    elif isinstance(event, c.TransferVerified):
        new.update(bytes_committed=event.size, bytes_total=event.size)
        if new.get("chunk_count") is not None:
            new["chunks_committed"] = new["chunk_count"]
    elif isinstance(event, c.LeaseAcquired):
        new["lease_owner"] = event.owner_id
    elif isinstance(event, c.LeaseReleased):
        new["lease_owner"] = None
    # LeaseRenewed, PostActionCompleted: version bookkeeping only
    return new


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
