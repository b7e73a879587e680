"""Ferry's published event contract.

Every integration event is a frozen pydantic model with its EventBridge ``source`` and
``detail-type``. The EventBridge ``detail`` of a published event is exactly
``model.model_dump(mode="json")``: the common envelope fields (event id, stream id and version,
occurred_at, customer_id, correlation_id, schema_version) followed by the event's own fields.

Rules:
- Past-tense names, grouped by bounded context (endpoints, jobs, executor, routes).
- No secret ever appears here: endpoint credentials are referenced by their Secrets Manager ARN.
- Changes are additive. A breaking change gets a new ``SCHEMA_VERSION`` for that event.
- ``events/schemas/<DetailType>.json`` is generated from these models
  (``python -m events.schema_gen``) and checked in; a test fails when they drift.

Why one module over 400 lines: it is the contract. Every published event model is here, one
small class each, so a consumer reads the whole contract in one file and ``events.schema_gen``
walks one module.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_serializer,
)

from ferry.names import SOURCE_ENDPOINTS, SOURCE_EXECUTOR, SOURCE_JOBS, SOURCE_ROUTES

# ---------------------------------------------------------------------------------------------
# Shared value types
# ---------------------------------------------------------------------------------------------


class EndpointType(StrEnum):
    S3 = "s3"
    SFTP = "sftp"


class Direction(StrEnum):
    INBOUND = "INBOUND"  # Ferry reads from it (a source)
    OUTBOUND = "OUTBOUND"  # Ferry writes to it (a target)
    BOTH = "BOTH"


class EndpointStatus(StrEnum):
    PENDING_VALIDATION = "PENDING_VALIDATION"
    ACTIVE = "ACTIVE"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    DISABLED = "DISABLED"
    RETIRED = "RETIRED"  # final: never used again (its name may be reused)


class Flow(StrEnum):
    S3_TO_S3 = "S3_TO_S3"
    S3_TO_SFTP = "S3_TO_SFTP"
    SFTP_TO_S3 = "SFTP_TO_S3"
    SFTP_TO_SFTP = "SFTP_TO_SFTP"

    @classmethod
    def of(cls, source: EndpointType | str, target: EndpointType | str) -> Flow:
        return cls(f"{EndpointType(source).value.upper()}_TO_{EndpointType(target).value.upper()}")


class JobStatus(StrEnum):
    RECEIVED = "RECEIVED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    VERIFYING = "VERIFYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)

    @property
    def rank(self) -> int:
        """Place in the machine; a job's status never moves to a lower rank (finals share the top)."""
        return 4 if self.is_final else list(JobStatus).index(self)


class PostAction(StrEnum):
    NONE = "none"
    DELETE = "delete"
    MOVE = "move"


class VerifyMode(StrEnum):
    SIZE = "size"
    DIGEST = "digest"
    REREAD = "reread"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Location(_Frozen):
    """A file on an endpoint; ``path`` is relative to the endpoint's base_path / prefix."""

    endpoint_id: str
    path: str


class TransferOptions(_Frozen):
    overwrite: bool = False
    post_action: PostAction = PostAction.NONE
    move_to: str | None = Field(
        default=None, description="Archive directory/prefix for post_action=move."
    )
    max_attempts: int = Field(default=5, ge=1, le=20)
    verify: VerifyMode = VerifyMode.DIGEST
    max_duration: str | None = Field(
        default=None,
        description="e.g. 30m, 2h: a job running longer (from its first start) emits JobSlow once.",
    )
    bandwidth_limit: int | None = Field(
        default=None,
        ge=1,
        description="Bytes/s this job moves at most (its endpoints' bandwidth_limit shares apply "
        "too: the lowest wins).",
    )

    @model_serializer(mode="wrap")
    def _without_unset_max_duration(self, handler: Any) -> dict[str, Any]:
        """A spec without max_duration / bandwidth_limit dumps as before they existed (request
        hashes, stored specs)."""
        out: dict[str, Any] = handler(self)
        for optional in ("max_duration", "bandwidth_limit"):
            if out.get(optional) is None:
                out.pop(optional, None)
        return out


class JobSpec(_Frozen):
    """Everything an executor needs to run a job (no secrets: credentials are looked up)."""

    flow: Flow
    source: Location
    target: Location
    options: TransferOptions


# ---------------------------------------------------------------------------------------------
# The envelope
# ---------------------------------------------------------------------------------------------


class FerryEvent(_Frozen):
    """Common fields of every published Ferry event."""

    SOURCE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: str = Field(
        description="Unique and deterministic (uuid5 of stream_id and version): dedupe on it."
    )
    stream_id: str = Field(description="The aggregate (event stream) this event belongs to.")
    version: int = Field(ge=1, description="Position of the event in its stream.")
    occurred_at: AwareDatetime = Field(description="UTC, ISO 8601.")
    customer_id: str
    correlation_id: str = Field(
        description="The job id for job and executor events; the endpoint/route id otherwise."
    )
    schema_version: int = 1
    replayed: bool = Field(
        default=False,
        description=(
            "true only on a copy re-published from the event store by `ferry replay` (absent "
            "on live events): the same event_id as the original, so consumers dedupe as usual."
        ),
    )

    @classmethod
    def detail_type(cls) -> str:
        return cls.__name__

    @model_serializer(mode="wrap")
    def _without_unset_replayed(self, handler: Any) -> dict[str, Any]:
        """A live event dumps without ``replayed`` (its detail is as before the field existed)."""
        out: dict[str, Any] = handler(self)
        if out.get("replayed") is False:
            out.pop("replayed", None)
        return out


# ---------------------------------------------------------------------------------------------
# ferry.endpoints
# ---------------------------------------------------------------------------------------------


class EndpointEvent(FerryEvent):
    SOURCE: ClassVar[str] = SOURCE_ENDPOINTS
    endpoint_id: str


class EndpointConfig(_Frozen):
    """Non-secret connection settings of an endpoint (flat; fields depend on ``type``)."""

    type: EndpointType
    # s3
    bucket: str | None = None
    prefix: str | None = None
    region: str | None = None
    kms_key_id: str | None = None
    role_arn: str | None = Field(
        default=None,
        description="s3: a role in the customer's account Ferry assumes for every S3 call.",
    )
    external_id: str | None = Field(
        default=None,
        description="s3: generated by Ferry; the sts:ExternalId of every AssumeRole (not secret).",
    )
    # sftp
    host: str | None = None
    port: int | None = None
    username: str | None = None
    base_path: str | None = None
    host_key: str | None = Field(
        default=None, description="Pinned host key: OpenSSH public key line or SHA256: fingerprint."
    )
    auth_method: str | None = Field(default=None, description="private_key | password (sftp).")


class EndpointRegistered(EndpointEvent):
    name: str
    direction: Direction
    max_concurrency: int
    bandwidth_limit: int | None = Field(
        default=None,
        description="Bytes/s all of Ferry's transfers to or from this endpoint share (none: "
        "no cap).",
    )
    config: EndpointConfig
    secret_arn: str | None = Field(default=None, description="Credentials (never the values).")
    actor: str


class EndpointValidated(EndpointEvent):
    checks: list[str] = Field(default_factory=list, description="What was checked.")
    host_key_fingerprint: str | None = None


class EndpointValidationFailed(EndpointEvent):
    reason_code: str
    message: str


class EndpointUpdated(EndpointEvent):
    changed: dict[str, Any] = Field(
        description="Non-secret fields that changed, with their new values."
    )
    credentials_rotated: bool = False
    secret_arn: str | None = None
    actor: str


class EndpointDisabled(EndpointEvent):
    actor: str
    reason: str | None = None


class EndpointEnabled(EndpointEvent):
    actor: str


class EndpointValidationRequested(EndpointEvent):
    """Re-run validation of the current configuration (POST /endpoints/{id}/validate, or
    enable of a VALIDATION_FAILED endpoint): the endpoint is PENDING_VALIDATION again."""

    actor: str


class EndpointRetired(EndpointEvent):
    """DELETE /endpoints/{id}: final; the endpoint is never used again, its name is free."""

    actor: str


# ---------------------------------------------------------------------------------------------
# ferry.jobs
# ---------------------------------------------------------------------------------------------


class JobEvent(FerryEvent):
    SOURCE: ClassVar[str] = SOURCE_JOBS
    job_id: str


class JobRequested(JobEvent):
    spec: JobSpec
    idempotency_key: str
    request_hash: str = Field(description="sha256 of the canonical request body.")
    actor: str
    redrive_of: str | None = None
    route_id: str | None = None


class JobQueued(JobEvent):
    spec: JobSpec
    attempt: int = 1


class JobStarted(JobEvent):
    """An executor holds the lease and is moving bytes (status RUNNING)."""

    attempt: int
    executor_id: str


class JobVerified(JobEvent):
    """All bytes are at the target and verified (status VERIFYING: post-action and release)."""

    size: int
    sha256: str
    duration_seconds: float
    throughput_bytes_per_second: float


class JobRetryScheduled(JobEvent):
    spec: JobSpec
    attempt: int = Field(description="The attempt that will run next.")
    next_attempt_at: AwareDatetime
    error_code: str
    error_message: str


class JobSucceeded(JobEvent):
    size: int
    sha256: str
    duration_seconds: float
    throughput_bytes_per_second: float
    attempts: int
    cancel_outcome: str | None = Field(
        default=None,
        description="too_late: a cancel was requested after the file was already delivered.",
    )


class JobFailed(JobEvent):
    error_code: str
    error_message: str
    attempts: int


class JobCancelRequested(JobEvent):
    """A cancel was requested (status unchanged): the executor honours it at its next commit
    point; the job becomes CANCELLED, or SUCCEEDED with cancel_outcome=too_late."""

    actor: str
    reason: str | None = None


class JobCancelled(JobEvent):
    actor: str
    reason: str | None = None


class JobRedriven(JobEvent):
    new_job_id: str
    actor: str


class JobSlow(JobEvent):
    """The job has run longer than its ``options.max_duration`` (from its first start) and is
    not final yet. Emitted once per job; the job goes on (this is a warning, not a timeout)."""

    max_duration_seconds: int
    started_at: AwareDatetime = Field(description="When the job first started (JobStarted).")
    running_seconds: float = Field(description="How long it had run when the check saw it.")


# ---------------------------------------------------------------------------------------------
# ferry.executor (stream: the job's Transfer aggregate, correlation_id = job_id)
# ---------------------------------------------------------------------------------------------


class ExecutorEvent(FerryEvent):
    SOURCE: ClassVar[str] = SOURCE_EXECUTOR
    job_id: str


class LeaseAcquired(ExecutorEvent):
    owner_id: str
    region: str
    expires_at: AwareDatetime
    attempt: int
    takeover_from: str | None = Field(default=None, description="Previous (expired) owner.")


class LeaseRenewed(ExecutorEvent):
    owner_id: str
    expires_at: AwareDatetime


class LeaseReleased(ExecutorEvent):
    owner_id: str
    outcome: str = Field(description="succeeded | failed | retry | cancelled | abandoned")


class TransferStarted(ExecutorEvent):
    flow: Flow
    leg: int = Field(default=1, description="1, or 2 for the staging→target leg of SFTP→SFTP.")
    legs: int = 1
    size: int
    chunk_size: int
    chunk_count: int
    source_version: str | None = Field(default=None, description="ETag / mtime+size of source.")
    upload_id: str | None = Field(default=None, description="S3 multipart upload id, if any.")
    temp_path: str | None = Field(default=None, description="SFTP temp file, if any.")


class ChunkCommitted(ExecutorEvent):
    leg: int = 1
    index: int
    offset: int
    length: int
    sha256: str
    part_number: int | None = None
    etag: str | None = None
    bytes_committed: int = Field(
        description="Bytes of this leg committed so far (chunks commit out of order: a count)."
    )
    bytes_total: int
    chunks_committed: int | None = Field(
        default=None,
        description="Chunks of this leg committed so far, this one included (chunks commit out "
        "of order, so index + 1 is not a count). Absent from events before 2026-12.",
    )


class TransferVerified(ExecutorEvent):
    size: int
    sha256: str
    verify: VerifyMode
    target_checksum: str | None = None
    duration_seconds: float
    throughput_bytes_per_second: float


class TransferAttemptFailed(ExecutorEvent):
    attempt: int
    error_code: str
    error_message: str
    transient: bool
    bytes_committed: int = 0


class PostActionCompleted(ExecutorEvent):
    action: PostAction
    moved_to: str | None = None


class EndpointCheckCompleted(FerryEvent):
    """The data plane's endpoint validator checked one configuration of an endpoint (stream:
    the EndpointCheck of (endpoint_id, checked_version), correlation_id = endpoint_id). The
    endpoints service applies it as EndpointValidated / EndpointValidationFailed, or drops it
    when the configuration has changed since ``checked_version`` or already has a verdict."""

    SOURCE: ClassVar[str] = SOURCE_EXECUTOR
    endpoint_id: str
    checked_version: int = Field(ge=1, description="The endpoint version whose config was checked.")
    ok: bool
    checks: list[str] = Field(default_factory=list, description="What was checked.")
    host_key_fingerprint: str | None = None
    reason_code: str | None = Field(default=None, description="Set when not ok: a stable code.")
    message: str | None = Field(default=None, description="Set when not ok: never a secret.")


# ---------------------------------------------------------------------------------------------
# ferry.routes (issue 5; declared here so the contract is defined once)
# ---------------------------------------------------------------------------------------------


class RouteEvent(FerryEvent):
    SOURCE: ClassVar[str] = SOURCE_ROUTES
    route_id: str


class RouteCreated(RouteEvent):
    definition: dict[str, Any]
    actor: str


class RouteUpdated(RouteEvent):
    changed: dict[str, Any]
    actor: str


class RouteDisabled(RouteEvent):
    actor: str


class RouteEnabled(RouteEvent):
    actor: str


class RouteScanFailed(RouteEvent):
    """The route's source could not be listed (the route is FAILING until a listing works)."""

    reason: str = Field(description="Why, without secrets or raw library text: e.g. NoSuchBucket.")


class RouteScanRecovered(RouteEvent):
    """A listing succeeded again after RouteScanFailed."""

    previous_reason: str


# Delivery SLAs and schedules (issue 12). On the route's stream's own aggregates: RouteFileLate
# and RouteFileArrived on the route's delivery window (one stream per (route, deadline)),
# ScheduleTickLate on the route's stream. Times are computed from events (what was delivered
# when), never from when a check happened to run.


class RouteFileLate(RouteEvent):
    """No (or too few) matching files were delivered in a window of the route's ``expect``
    by its deadline. Once per missed window; the route is LATE until RouteFileArrived."""

    deadline: AwareDatetime = Field(description="The window's deadline (UTC).")
    window_start: AwareDatetime = Field(description="The previous deadline (exclusive).")
    expected_files: int = Field(description="expect.min_files.")
    delivered_files: int = Field(description="Matching files delivered in the window by then.")
    tz: str = Field(description="IANA time zone of expect.by.")


class RouteFileArrived(RouteEvent):
    """A window that was reported late got its files: the route is no longer LATE for it."""

    deadline: AwareDatetime
    arrived_at: AwareDatetime = Field(description="When the last needed file was delivered.")
    late_by_minutes: int = Field(description="arrived_at - deadline, whole minutes (>= 0).")
    path: str = Field(description="The file whose delivery completed the window.")


class ScheduleTickLate(RouteEvent):
    """A schedule route's scan ran later than its slot (a late or missed tick): the missed
    scan ran once now (catch-up), however many slots were missed."""

    scheduled_for: AwareDatetime = Field(description="The latest slot that was due (UTC).")
    ran_at: AwareDatetime
    late_by_seconds: float
    missed_slots: int = Field(description="Slots due since the last scan (capped at 1000).")


# Ledger events of a route's files (issue 5). Stream: one per (route, path), id = uuid5 of
# route_id and path (``services.routes.domain.file_stream_id``); correlation_id = route_id.
# They record decisions (first sight, a skip and its reason, a dispatch, the delivery outcome),
# not every observation of a listing.


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


JobIds = Annotated[list[str], BeforeValidator(_as_list)]


class FileDiscovered(RouteEvent):
    path: str = Field(description="Relative to the source endpoint's base_path / prefix.")
    size: int
    modified_at: AwareDatetime | None = None
    file_version: str = Field(description="size:mtime (pull) or ETag / version id (push).")
    first_seen_at: AwareDatetime


class FileSkipped(RouteEvent):
    path: str
    reason: str = Field(
        description="duplicate | unstable | too_small | too_large | pattern | not_done | "
        "invalid_path | ferry_written | refused | unreadable | error"
    )
    size: int | None = None
    modified_at: AwareDatetime | None = None
    file_version: str | None = None
    detail: str | None = None


class FileDispatched(RouteEvent):
    path: str
    size: int
    modified_at: AwareDatetime | None = None
    file_version: str
    job_ids: JobIds = Field(description="One job per target, in target order.")
    target_paths: JobIds = Field(description="The rendered target paths, in target order.")


class FileDelivered(RouteEvent):
    """Every fan-out job of a dispatched file version SUCCEEDED."""

    path: str
    file_version: str
    job_ids: JobIds


class FileDeliveryFailed(RouteEvent):
    """At least one fan-out job FAILED or was CANCELLED: the source is left where it is."""

    path: str
    file_version: str
    job_ids: JobIds
    failed_job_ids: JobIds
    error_code: str
    error_message: str


class FileRetried(RouteEvent):
    """A failed delivery was retried (POST /routes/{id}/files/retry): the failed fan-out jobs
    were redriven; FileDelivered follows when every target's job SUCCEEDED."""

    path: str
    file_version: str
    failed_job_ids: JobIds = Field(description="The failed jobs that were redriven.")
    job_ids: JobIds = Field(description="The version's jobs now, in target order.")
    actor: str


class FilePostActionCompleted(RouteEvent):
    """The route's post_action ran on the source after every target succeeded."""

    path: str
    file_version: str
    action: PostAction
    moved_to: str | None = None


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def _leaves(cls: type[FerryEvent]) -> list[type[FerryEvent]]:
    out: list[type[FerryEvent]] = []
    for sub in cls.__subclasses__():
        if sub.__subclasses__():
            out.extend(_leaves(sub))
        elif not sub.__name__.endswith("Event"):
            out.append(sub)
    return out


EVENT_TYPES: dict[str, type[FerryEvent]] = {c.detail_type(): c for c in _leaves(FerryEvent)}
"""detail-type -> model, for every published event."""


def parse_detail(detail_type: str, detail: dict[str, Any]) -> FerryEvent:
    """Validate an EventBridge ``detail`` against its contract model."""
    try:
        model = EVENT_TYPES[detail_type]
    except KeyError:
        raise ValueError(f"unknown Ferry detail-type: {detail_type!r}") from None
    return model.model_validate(detail)


__all__ = [
    "EVENT_TYPES",
    "ChunkCommitted",
    "Direction",
    "EndpointCheckCompleted",
    "EndpointConfig",
    "EndpointDisabled",
    "EndpointEnabled",
    "EndpointRegistered",
    "EndpointRetired",
    "EndpointStatus",
    "EndpointType",
    "EndpointUpdated",
    "EndpointValidated",
    "EndpointValidationFailed",
    "EndpointValidationRequested",
    "FerryEvent",
    "FileDelivered",
    "FileDeliveryFailed",
    "FileDiscovered",
    "FileDispatched",
    "FilePostActionCompleted",
    "FileRetried",
    "FileSkipped",
    "Flow",
    "JobCancelRequested",
    "JobCancelled",
    "JobFailed",
    "JobQueued",
    "JobRedriven",
    "JobRequested",
    "JobRetryScheduled",
    "JobSlow",
    "JobSpec",
    "JobStarted",
    "JobStatus",
    "JobSucceeded",
    "JobVerified",
    "LeaseAcquired",
    "LeaseReleased",
    "LeaseRenewed",
    "Location",
    "PostAction",
    "PostActionCompleted",
    "RouteCreated",
    "RouteDisabled",
    "RouteEnabled",
    "RouteFileArrived",
    "RouteFileLate",
    "RouteScanFailed",
    "RouteScanRecovered",
    "RouteUpdated",
    "ScheduleTickLate",
    "TransferAttemptFailed",
    "TransferOptions",
    "TransferStarted",
    "TransferVerified",
    "VerifyMode",
    "datetime",
    "parse_detail",
]
