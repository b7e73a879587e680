"""The jobs application: submit / cancel / redrive (API) and the process manager's commands.

The request model, the path rule and the dedupe / idempotency keys live in
``services.jobs.requests`` (re-exported here). What remains is one concern, the command side of
one aggregate, which is why it stays one module over 400 lines: the commands share the load /
retry-on-IntegrityError loop (``_retrying``), the endpoint checks and ``on_executor_event``.

Commands return ids and statuses. Every command that changes an existing job runs under
optimistic concurrency: the API and the process manager may append to one job at the same time,
so on the event store's IntegrityError the job is reloaded and the command retried (bounded).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeVar
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from events.aggregate import FerryApplication, transfer_stream_id
from events.contract import (
    Direction,
    EndpointStatus,
    FerryEvent,
    Flow,
    JobSpec,
    JobStatus,
    LeaseAcquired,
    LeaseReleased,
    Location,
    PostAction,
    TransferAttemptFailed,
    TransferOptions,
    TransferVerified,
)
from events.translate import detail_type_of_topic, stream_events
from ferry.daily_bytes import DeliveredBytes, daily_bytes_refusal, limit_of
from ferry.errors import Conflict, Invalid, NotFound, TooManyRequests
from services.jobs.domain import (
    Job,
    JobAlreadyFinal,
    JobNotRedrivable,
    backoff_seconds,
    cancellable_at_once,
)
from services.jobs.ports import (
    EndpointDirectory,
    EndpointInfo,
    IdempotencyRecord,
    IdempotencyStore,
    QueuedJobs,
    SourceIdentity,
)
from services.jobs.requests import (
    IDEMPOTENCY_HEADER,
    TransferRequest,
    dedupe_key,
    idempotency_scope,
    request_hash,
    valid_idempotency_key,
)
from services.jobs.requests import MAX_PATH_LENGTH as MAX_PATH_LENGTH  # re-exported
from services.jobs.requests import OptionsRequest as OptionsRequest  # re-exported
from services.jobs.requests import SourceRequest as SourceRequest  # re-exported
from services.jobs.requests import TargetRequest as TargetRequest  # re-exported
from services.jobs.requests import check_path as check_path  # re-exported

T = TypeVar("T")
log = logging.getLogger(__name__)

_RECENT_TRANSFER_EVENTS = 20
_LEG_EVENTS = frozenset({"TransferStarted", "ChunkCommitted", "TransferVerified"})

# ---------------------------------------------------------------------------------------------
# Errors: ferry.errors kinds (ferry.api.HTTP_STATUS maps them to HTTP, once)
# ---------------------------------------------------------------------------------------------


class JobsError(Invalid):
    """Base of the jobs service's errors (422 unless a subclass is another kind)."""

    code = "invalid_request"


class InvalidRequest(JobsError):
    code = "invalid_request"


class EndpointNotFound(NotFound, JobsError):
    code = "endpoint_not_found"


class EndpointUnavailable(Conflict, JobsError):
    code = "endpoint_unavailable"


class JobNotFound(NotFound, JobsError):
    code = "job_not_found"


class JobConflict(Conflict, JobsError):
    code = "job_conflict"


class IdempotencyKeyReused(Conflict, JobsError):
    code = "idempotency_key_reused"


class QueuedLimitReached(TooManyRequests, JobsError):
    """The customer has its queued-jobs limit of jobs waiting to run: 429 with Retry-After."""

    code = "queued_limit_reached"


class DailyBytesLimitReached(TooManyRequests, JobsError):
    """The customer's jobs delivered its daily bytes today (UTC): 429, Retry-After until the
    next 00:00 UTC."""

    code = "daily_bytes_limit_reached"


class ExecutorEventRejected(Conflict, JobsError):
    """An executor event that does not match its job (wrong customer): never applied."""

    code = "executor_event_rejected"


class Submitted(NamedTuple):
    job_id: str
    status: JobStatus
    created: bool
    #: what decided whether this request repeats an earlier one: ``idempotency_key``,
    #: ``content`` (request + the source's identity), ``request`` (the identity could not be
    #: looked up: the request alone) or ``off`` (``dedupe: false``)
    dedupe: str = "request"

    @property
    def deduplicated(self) -> bool:
        """True when an existing job was returned instead of a new one."""
        return not self.created


class Cancelled(NamedTuple):
    job_id: str
    status: JobStatus
    cancel_requested: bool = True


class Redriven(NamedTuple):
    job_id: str
    redrive_of: str
    status: JobStatus = JobStatus.QUEUED


@dataclass(frozen=True)
class JobsPolicy:
    dedupe_window_seconds: float = 600.0
    idempotency_key_ttl_seconds: float = 24 * 3600.0
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 300.0
    max_save_attempts: int = 10
    #: jobs of a customer waiting to run (RECEIVED/QUEUED) beyond which POST /transfers is a
    #: 429; per-customer exceptions; the Retry-After it answers
    queued_limit: int = 1000
    queued_limit_overrides: Mapping[str, int] = field(default_factory=dict)
    queued_retry_after_seconds: int = 30
    #: bytes a customer's jobs may deliver per UTC day (None: unlimited); per-customer
    #: exceptions (None there: unlimited for that customer)
    daily_bytes_limit: int | None = None
    daily_bytes_limit_overrides: Mapping[str, int | None] = field(default_factory=dict)

    def queued_limit_of(self, customer_id: str) -> int:
        return self.queued_limit_overrides.get(customer_id, self.queued_limit)

    def daily_bytes_limit_of(self, customer_id: str) -> int | None:
        return limit_of(customer_id, self.daily_bytes_limit, self.daily_bytes_limit_overrides)


_REDRIVE_NAMESPACE = UUID("0b9d5f3e-8a41-5c2e-9d7a-3f1e6c2b4a90")


def redrive_job_id(original_job_id: str) -> UUID:
    """The id of ``original_job_id``'s redrive job: derived, so a retry, a racing redrive and
    the heal after a crash all name the same job. A job is redriven at most once
    (``Job.mark_redriven``), so the original's id is enough; its version is not used: an
    event appended to the original between a crash and the heal would change it and make
    a second job."""
    return uuid5(_REDRIVE_NAMESPACE, f"{original_job_id}:redrive")


# ---------------------------------------------------------------------------------------------
# The application
# ---------------------------------------------------------------------------------------------


class JobsApplication(FerryApplication):
    def __init__(
        self,
        *,
        endpoints: EndpointDirectory,
        idempotency: IdempotencyStore,
        policy: JobsPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        rand: Callable[[], float] = random.random,
        env: dict[str, str] | None = None,
        sources: SourceIdentity | None = None,
        queued: QueuedJobs | None = None,
        daily_bytes: DeliveredBytes | None = None,
    ) -> None:
        super().__init__(env=env)
        self.endpoints = endpoints
        self.idempotency = idempotency
        self.sources = sources
        self.queued = queued  # None: no queued-jobs limit
        self.daily_bytes = daily_bytes  # None: no bytes-per-day limit
        self.policy = policy or JobsPolicy()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.rand = rand

    # -- queries -----------------------------------------------------------------------------

    def get_job(self, customer_id: str, job_id: str) -> Job:
        job = self._load(job_id)
        if job.customer_id != customer_id:
            raise JobNotFound(f"no job {job_id}", field="job_id")
        return job

    # -- API commands ------------------------------------------------------------------------

    def submit(
        self,
        customer_id: str,
        actor: str,
        request: TransferRequest,
        idempotency_key: str | None = None,
        route_id: str | None = None,
    ) -> Submitted:
        """Create (or find, for a repeated request) a queued job (``route_id``: the route that
        dispatched it, if any)."""
        self._check_request(request)
        # Existence, ownership and direction only: whether an endpoint is usable *now* matters
        # only when a job is created, not when an earlier request is replayed.
        source, target = self._usable_endpoints(
            customer_id, request.source.endpoint_id, request.target.endpoint_id, status=False
        )
        spec = JobSpec(
            flow=Flow.of(source.type, target.type),
            source=Location(endpoint_id=source.endpoint_id, path=request.source.path),
            target=Location(endpoint_id=target.endpoint_id, path=request.target.path),
            options=TransferOptions(**request.options.model_dump()),
        ).model_dump(mode="json")
        body_hash = request_hash(request)
        basis = "idempotency_key"
        if idempotency_key is not None:
            if not valid_idempotency_key(idempotency_key):
                raise InvalidRequest(
                    "Idempotency-Key must be 1-255 printable ASCII characters without spaces",
                    field=IDEMPOTENCY_HEADER,
                )
            scope = idempotency_scope(customer_id, idempotency_key)
            ttl = self.policy.idempotency_key_ttl_seconds
            label = idempotency_key
        elif not request.dedupe:
            self._endpoint(customer_id, source.endpoint_id, "source.endpoint_id")
            self._endpoint(customer_id, target.endpoint_id, "target.endpoint_id")
            job_id = str(uuid4())
            fresh = IdempotencyRecord(job_id=job_id, request_hash=body_hash, spec=spec)
            made = self._ensure_job(
                customer_id, actor, fresh, f"none:{job_id}", fresh=True, route_id=route_id
            )
            return made._replace(dedupe="off")
        else:
            identity = request.source.version
            if identity is None and self.sources is not None:
                identity = self.sources.identify(source, request.source.path)
            basis = "request" if identity is None else "content"
            dedupe = dedupe_key(request, identity, body_hash)
            scope = f"{customer_id}#auto#{dedupe}"
            ttl = self.policy.dedupe_window_seconds
            label = f"auto:{dedupe}"
        mine = IdempotencyRecord(job_id=str(uuid4()), request_hash=body_hash, spec=spec)
        held, claimed = self.idempotency.claim(scope, mine, ttl)
        if not claimed and idempotency_key is not None and held.request_hash != body_hash:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request body",
                field=IDEMPOTENCY_HEADER,
            )
        if not claimed:
            try:
                existing = self._load(held.job_id)
                return Submitted(existing.job_id, existing.status, False, basis)
            except JobNotFound:
                pass  # claimed earlier but never created: create it now (checks below)
        self._endpoint(customer_id, source.endpoint_id, "source.endpoint_id")
        self._endpoint(customer_id, target.endpoint_id, "target.endpoint_id")
        made = self._ensure_job(customer_id, actor, held, label, fresh=claimed, route_id=route_id)
        return made._replace(dedupe=basis)

    def cancel(
        self, customer_id: str, actor: str, job_id: str, reason: str | None = None
    ) -> Cancelled:
        """Record a cancel request; cancel at once when no executor holds the job and none
        ever started writing it (queued, or in a retry backoff before any leg started).

        The order matters: the request is stored first, then the job's Transfer stream is read
        (strongly consistent). An executor that takes the lease after that read sees the
        request at its first commit point, so JobCancelled here can never be followed by a
        delivery. Otherwise the executor's outcome decides: CANCELLED once it stopped before
        publishing and cleaned up, or SUCCEEDED too_late. Cancelling twice records nothing
        new; a final job is a conflict.
        """

        def request() -> Job:
            job = self.get_job(customer_id, job_id)
            try:
                if job.request_cancel(actor, reason):
                    self.save(job)
            except JobAlreadyFinal as error:
                raise JobConflict(str(error), field="job_id") from None
            return job

        job = self._retrying(request)
        if not job.is_final and self._cancellable_at_once(job_id):

            def finish() -> Job:
                current = self.get_job(customer_id, job_id)
                if current.cancel_now():
                    self.save(current)
                return current

            job = self._retrying(finish)
        return Cancelled(job.job_id, job.status, job.cancel_requested)

    def redrive(self, customer_id: str, actor: str, job_id: str) -> Redriven:
        """A FAILED or CANCELLED job → a new queued job referencing it (idempotent: a job that
        was already redriven answers with the job it was redriven to).

        Two streams change (the new job's JobRequested + JobQueued, the original's
        JobRedriven) and the event store appends one stream per call (DynamoDB MRSC global
        tables have no TransactWriteItems), so they are two ordered saves:

        1. the new job, under an id derived from the original's (:func:`redrive_job_id`):
           whoever saves it first creates it, a retry or a racing redrive finds it (its
           version-1 append fails) and checks that it is this original's redrive;
        2. the original's JobRedriven, under optimistic concurrency: a racing redrive that
           marked it first makes this save fail, and ``_retrying`` answers ``redriven_to``.

        A crash between the two leaves the new job queued and the original not yet marked;
        the next redrive of the original finds the same id, marks the original and answers
        that job (never a second one), and so does the process manager when the new job
        starts (:meth:`job_started`). Until then readers see a FAILED/CANCELLED job without
        ``redriven_to`` (what the routes scanner and ``retry`` already treat as "not redriven
        yet": their own redrive converges on the same job).
        """

        def attempt() -> Redriven:
            original = self.get_job(customer_id, job_id)
            if original.redriven_to is not None:
                again = self._load(original.redriven_to)
                return Redriven(again.job_id, original.job_id, again.status)
            new_id = redrive_job_id(original.job_id)
            try:  # refuse a job that is not FAILED/CANCELLED before anything is written
                original.mark_redriven(str(new_id), actor)
            except JobNotRedrivable as error:
                raise JobConflict(str(error), field="job_id") from None
            new = self._redrive_job(original, new_id, actor)
            self.save(original)  # IntegrityError: marked meanwhile → _retrying reloads
            return Redriven(new.job_id, original.job_id, new.status)

        return self._retrying(attempt)

    # -- process manager commands -----------------------------------------------------------

    def job_started(self, customer_id: str, job_id: str, attempt: int, executor_id: str) -> bool:
        """JobStarted; a redriven job that starts also finishes its redrive when a crash
        left the original unmarked (see :meth:`redrive`)."""
        loaded: list[Job] = []

        def start(job: Job) -> bool:
            loaded.append(job)
            return job.start(attempt, executor_id)

        changed = self._update(customer_id, job_id, start)
        if loaded and loaded[-1].redrive_of is not None:
            self._finish_redrive(loaded[-1])
        return changed

    def job_verified(
        self,
        customer_id: str,
        job_id: str,
        size: int,
        sha256: str,
        duration_seconds: float,
        throughput_bytes_per_second: float,
    ) -> bool:
        return self._update(
            customer_id,
            job_id,
            lambda job: job.verify(size, sha256, duration_seconds, throughput_bytes_per_second),
        )

    def job_released(self, customer_id: str, job_id: str, outcome: str) -> bool:
        """A successful release finishes the job (SUCCEEDED; too_late if a cancel was
        requested), a cancelled one cancels it (the executor stopped before publishing); a
        failed/retry release is driven by its TransferAttemptFailed, an abandoned one needs
        nothing from the job."""
        if outcome == "succeeded":
            return self._update(customer_id, job_id, lambda job: job.succeed())
        if outcome == "cancelled":
            return self._update(customer_id, job_id, lambda job: job.executor_cancelled())
        return False

    def job_attempt_failed(
        self,
        customer_id: str,
        job_id: str,
        attempt: int,
        error_code: str,
        error_message: str,
        transient: bool,
    ) -> bool:
        def command(job: Job) -> bool:
            delay = backoff_seconds(
                max(attempt, 1),
                self.policy.retry_base_seconds,
                self.policy.retry_cap_seconds,
                self.rand(),
            )
            next_at = self.clock() + timedelta(seconds=delay)
            return job.attempt_failed(attempt, error_code, error_message, transient, next_at)

        return self._update(customer_id, job_id, command)

    def on_executor_event(self, event: FerryEvent) -> bool:
        """Apply one executor event to its job. True when the job recorded something."""
        if isinstance(event, LeaseAcquired):
            return self.job_started(event.customer_id, event.job_id, event.attempt, event.owner_id)
        if isinstance(event, TransferVerified):
            return self.job_verified(
                event.customer_id,
                event.job_id,
                event.size,
                event.sha256,
                event.duration_seconds,
                event.throughput_bytes_per_second,
            )
        if isinstance(event, LeaseReleased):
            return self.job_released(event.customer_id, event.job_id, event.outcome)
        if isinstance(event, TransferAttemptFailed):
            return self.job_attempt_failed(
                event.customer_id,
                event.job_id,
                event.attempt,
                event.error_code,
                event.error_message,
                event.transient,
            )
        return False  # progress events (TransferStarted, ChunkCommitted, ...) change no job state

    # -- internals ---------------------------------------------------------------------------

    def _cancellable_at_once(self, job_id: str) -> bool:
        """:func:`cancellable_at_once` over the job's Transfer stream (same event store,
        strongly consistent). A long stream is not read whole: a leg event among its newest
        events already decides (not at once)."""
        stream = transfer_stream_id(job_id)
        recent = self.recorder.select_events(stream, desc=True, limit=_RECENT_TRANSFER_EVENTS)
        if any(detail_type_of_topic(e.topic) in _LEG_EVENTS for e in recent):
            return False
        return cancellable_at_once(stream_events(self.recorder, stream))

    def _redrive_job(self, original: Job, new_id: UUID, actor: str) -> Job:
        """The original's redrive job (step 1 of :meth:`redrive`): found when it exists (a
        retry, a racing redrive, or a crash before the original was marked), else created
        after the endpoint checks. Never a job that is not this original's redrive."""
        try:
            new = self._load(str(new_id))
        except JobNotFound:
            spec = original.spec
            self._usable_endpoints(
                original.customer_id, spec["source"]["endpoint_id"], spec["target"]["endpoint_id"]
            )
            new = Job.request(
                job_id=new_id,
                customer_id=original.customer_id,
                spec=spec,
                idempotency_key=f"redrive:{original.job_id}",
                request_hash=original.request_hash,
                actor=actor,
                redrive_of=original.job_id,
                route_id=original.route_id,
            )
            try:
                self.save(new)
                return new
            except IntegrityError:  # a racing redrive created it first
                new = self._load(str(new_id))
        if new.redrive_of != original.job_id or new.customer_id != original.customer_id:
            raise JobConflict(  # pragma: no cover - a uuid5 collision
                f"job {new_id} exists and is not a redrive of {original.job_id}", field="job_id"
            )
        return new

    def _finish_redrive(self, job: Job) -> None:
        """Mark the original of redrive job ``job`` when it is not marked yet (a crash
        between :meth:`redrive`'s two saves); one read when it is."""
        original_id = job.redrive_of
        if original_id is None or job.id != redrive_job_id(original_id):
            return  # not a redrive, or one from before derived ids (saved with its mark)

        def mark() -> None:
            original = self._load(original_id)
            if original.redriven_to is None and original.customer_id == job.customer_id:
                original.mark_redriven(job.job_id, job.actor)
                self.save(original)

        try:
            self._retrying(mark)
        except (JobNotFound, JobNotRedrivable):
            log.warning("redrive %s of %s: the original cannot be marked", job.id, original_id)

    def _load(self, job_id: str) -> Job:
        try:
            uuid = UUID(job_id)
        except (ValueError, TypeError, AttributeError):
            raise JobNotFound(f"no job {job_id}", field="job_id") from None
        if str(uuid) != job_id:  # canonical ids only (never a non-canonical store lookup)
            raise JobNotFound(f"no job {job_id}", field="job_id")
        try:
            job: Any = self.repository.get(uuid)
        except AggregateNotFoundError:
            raise JobNotFound(f"no job {job_id}", field="job_id") from None
        if not isinstance(job, Job):
            raise JobNotFound(f"no job {job_id}", field="job_id")
        return job

    def _update(self, customer_id: str, job_id: str, command: Callable[[Job], bool]) -> bool:
        def attempt() -> bool:
            job = self._load(job_id)
            if job.customer_id != customer_id:
                raise ExecutorEventRejected(
                    f"event for job {job_id} names another customer", field="customer_id"
                )
            changed = command(job)
            if changed:
                self.save(job)
            return changed

        return self._retrying(attempt)

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Run a load-decide-save step again when another writer appended first."""
        for tries in range(1, self.policy.max_save_attempts + 1):
            try:
                return attempt()
            except IntegrityError:
                if tries == self.policy.max_save_attempts:
                    raise
                time.sleep(random.uniform(0, 0.005 * tries))
        raise AssertionError("unreachable")  # pragma: no cover

    def _ensure_job(
        self,
        customer_id: str,
        actor: str,
        held: IdempotencyRecord,
        label: str,
        *,
        fresh: bool,
        route_id: str | None = None,
    ) -> Submitted:
        """The job an idempotency record stands for: created here when it does not exist yet
        (the claimant may have died after claiming). Version-1 appends are conditional, so
        whoever creates it, there is exactly one job."""
        job_id = UUID(held.job_id)
        if not fresh:
            try:
                existing = self._load(held.job_id)
                return Submitted(existing.job_id, existing.status, False)
            except JobNotFound:
                pass
        if route_id is None:  # a route's file is never refused: it waits its turn to run
            self._check_queued(customer_id)
            self._check_daily_bytes(customer_id)
        job = Job.request(
            job_id=job_id,
            customer_id=customer_id,
            spec=held.spec,
            idempotency_key=label,
            request_hash=held.request_hash,
            actor=actor,
            route_id=route_id,
        )
        try:
            self.save(job)
        except IntegrityError:
            existing = self._load(held.job_id)
            return Submitted(existing.job_id, existing.status, False)
        return Submitted(job.job_id, job.status, True)  # this call created it

    def _check_queued(self, customer_id: str) -> None:
        """The queued-jobs limit (fair sharing): a new job is refused while the customer has
        its limit of jobs waiting to run. A refused request that claimed a dedupe or
        Idempotency-Key creates its job when repeated under the limit."""
        if self.queued is None:
            return
        limit = self.policy.queued_limit_of(customer_id)
        if self.queued.count(customer_id, limit) >= limit:
            retry = self.policy.queued_retry_after_seconds
            raise QueuedLimitReached(
                f"queued-jobs limit reached: {limit} jobs of this customer are waiting to run "
                f"(queued_limit {limit}); retry after {retry} s",
                retry_after=retry,
            )

    def _check_daily_bytes(self, customer_id: str) -> None:
        """The bytes-per-day limit (ferry/daily_bytes.py): a new job is refused while the
        customer's jobs have delivered its limit today (UTC), until 00:00 UTC. An admission
        check only: jobs admitted earlier still run (the executor holds them for the next day
        once the customer is over), a running job is never cut. A failed count allows."""
        limit = self.policy.daily_bytes_limit_of(customer_id)
        if self.daily_bytes is None or limit is None:
            return
        now = self.clock()
        try:
            delivered = self.daily_bytes.delivered_today(customer_id, now)
        except Exception as exc:  # fail open: never a 5xx, never a refusal for a failed read
            log.warning("bytes delivered today by %s not counted: %r", customer_id, exc)
            delivered = None
        refusal = daily_bytes_refusal(delivered, limit, now)
        if refusal is not None:
            raise DailyBytesLimitReached(refusal.message, retry_after=refusal.retry_after)

    def _check_request(self, request: TransferRequest) -> None:
        if (request.source.endpoint_id, request.source.path) == (
            request.target.endpoint_id,
            request.target.path,
        ):
            raise InvalidRequest(
                "source and target are the same file", field="target.path", code="same_location"
            )
        options = request.options
        if options.post_action == PostAction.MOVE and not options.move_to:
            raise InvalidRequest(
                "post_action=move needs move_to", field="options.move_to", code="move_to_required"
            )
        if options.post_action != PostAction.MOVE and options.move_to is not None:
            raise InvalidRequest(
                "move_to is only allowed with post_action=move", field="options.move_to"
            )

    def _usable_endpoints(
        self, customer_id: str, source_id: str, target_id: str, *, status: bool = True
    ) -> tuple[EndpointInfo, EndpointInfo]:
        source = self._endpoint(customer_id, source_id, "source.endpoint_id", status=status)
        target = self._endpoint(customer_id, target_id, "target.endpoint_id", status=status)
        if source.direction not in (Direction.INBOUND, Direction.BOTH):
            raise InvalidRequest(
                f"endpoint {source_id} is {source.direction.value}: it cannot be a source",
                field="source.endpoint_id",
                code="direction_mismatch",
            )
        if target.direction not in (Direction.OUTBOUND, Direction.BOTH):
            raise InvalidRequest(
                f"endpoint {target_id} is {target.direction.value}: it cannot be a target",
                field="target.endpoint_id",
                code="direction_mismatch",
            )
        return source, target

    def _endpoint(
        self, customer_id: str, endpoint_id: str, field: str, *, status: bool = True
    ) -> EndpointInfo:
        found = self.endpoints.get(endpoint_id)
        if found is None or found.customer_id != customer_id:
            raise EndpointNotFound(f"no endpoint {endpoint_id}", field=field)
        if not status:
            return found
        if found.status == EndpointStatus.DISABLED:
            raise EndpointUnavailable(
                f"endpoint {endpoint_id} is disabled", field=field, code="endpoint_disabled"
            )
        if found.status == EndpointStatus.RETIRED:
            raise EndpointUnavailable(
                f"endpoint {endpoint_id} is retired", field=field, code="endpoint_retired"
            )
        if found.status != EndpointStatus.ACTIVE:
            raise EndpointUnavailable(
                f"endpoint {endpoint_id} is {found.status.value}: it is not validated yet",
                field=field,
                code="endpoint_not_validated",
            )
        return found
