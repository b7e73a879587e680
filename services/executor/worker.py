"""The executor worker: SQS messages (JobQueued, JobRetryScheduled) → leased, heartbeated,
chunked transfer attempts.

Per message: skip what is not due yet (visibility → remaining delay); take the customer's slot
(fairness.py: at its limit → the message goes back to the end of the queue, behind the other
customers'); skip what is already finished (delete); take the endpoints' semaphore slots (none
free → visibility a few seconds, no attempt consumed); append LeaseAcquired at the expected
version of the Transfer stream (a conflict means another executor won); run the attempt with
a heartbeat thread (LeaseRenewed, SQS visibility, customer and endpoint slot renewal); record
the outcome (LeaseReleased) and delete the message.

Cancellation: the engine asks at every commit point (before each chunk commit and before the
publishing write) whether the job's stream holds JobCancelRequested / JobCancelled — one
strongly consistent read of the job stream's newest events (:class:`CancelWatch`), never the
read model or the heartbeat. Once the publishing write has started, a cancel is too late: the
attempt finishes and the job becomes SUCCEEDED with cancel_outcome=too_late.

Why one module over 400 lines: it is one class, the executor's message loop; skip / lease /
slots / heartbeat / outcome share the state of one attempt.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from eventsourcing.persistence import IntegrityError

from events.contract import JobQueued, JobRetryScheduled, JobSpec
from events.translate import from_eventbridge
from ferry import names
from services.executor import errors
from services.executor.adapters import DynamoSemaphore, Message, SqsQueue
from services.executor.application import TransferApplication
from services.executor.daily_budget import DailyBudget
from services.executor.domain import LeaseHeld, Transfer, TransferFinished, utcnow
from services.executor.fairness import Admission
from services.executor.settings import ExecutorSettings
from services.executor.transfer import (
    Abandoned,
    Cancelled,
    EndpointPort,
    EngineSettings,
    Fault,
    LeaseLost,
    RunContext,
    Stats,
    TransferRun,
)
from services.executor.transfer.throttle import Throttle, endpoint_shares

log = logging.getLogger(__name__)

FINAL_JOB_STATUSES = ("SUCCEEDED", "FAILED")
# EMF on stdout (the awslogs driver ships it to CloudWatch); flushed once per job attempt.
metrics = EphemeralMetrics(
    namespace=names.METRICS_NAMESPACE,
    service=names.APP_METRICS[names.METRIC_BYTES_TRANSFERRED],
)
_metrics_lock = threading.Lock()  # attempts run in a thread pool: add + flush together


def emit_attempt_metrics(transfer: Transfer, outcome: str | None, stats: Stats) -> None:
    """BytesTransferred (source bytes this attempt moved) and, for a verified transfer,
    JobDurationSeconds (start → verified, as TransferVerified records it); one EMF line."""
    try:
        with _metrics_lock:
            _emit(transfer, outcome, stats)
    except Exception as exc:  # metrics never fail a job
        log.warning("job %s: emitting metrics failed: %r", transfer.job_id, exc)


def _emit(transfer: Transfer, outcome: str | None, stats: Stats) -> None:
    metrics.add_metric(
        name=names.METRIC_BYTES_TRANSFERRED, unit=MetricUnit.Bytes, value=stats.source_bytes
    )
    verified = transfer.verified
    if outcome == "succeeded" and verified is not None:
        metrics.add_metric(
            name=names.METRIC_JOB_DURATION_SECONDS,
            unit=MetricUnit.Seconds,
            value=float(verified["duration_seconds"]),
        )
    metrics.flush_metrics()


@dataclass(frozen=True)
class JobMessage:
    job_id: str
    customer_id: str
    spec: JobSpec
    attempt: int
    next_attempt_at: datetime | None


def parse_job_message(body: str) -> JobMessage:
    event = from_eventbridge(body)
    if isinstance(event, JobRetryScheduled):
        return JobMessage(
            event.job_id, event.customer_id, event.spec, event.attempt, event.next_attempt_at
        )
    if isinstance(event, JobQueued):
        return JobMessage(event.job_id, event.customer_id, event.spec, event.attempt, None)
    raise ValueError(f"not an executor message: {event.detail_type()}")


class _Flags:
    def __init__(self) -> None:
        self.cancelled = False
        self.lost = False


class Executor:
    """Handles executor-queue messages; ``run`` is the long-polling loop."""

    def __init__(
        self,
        *,
        settings: ExecutorSettings,
        app: TransferApplication,
        endpoints: EndpointPort,
        semaphore: DynamoSemaphore,
        job_status: Any,
        queue: SqsQueue,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        self.endpoints = endpoints
        self.semaphore = semaphore
        self.job_status = job_status
        self.queue = queue
        self.stop_event = stop_event or threading.Event()
        self.owner_id = settings.executor_id
        self.lease_for = timedelta(seconds=settings.lease_seconds)
        self.fault = Fault(settings.fault)
        self._running: set[str] = set()
        self._running_lock = threading.Lock()
        self.admission = Admission(
            semaphore,
            settings.customer_limit,
            lease_seconds=settings.lease_seconds,
            recheck_seconds=settings.customer_recheck_seconds,
        )
        self._scanning = False  # the last batch put back a customer at its limit
        self.daily_budget = DailyBudget.of(settings)  # bytes per day: hold until 00:00 UTC
        self.engine_settings = EngineSettings(
            chunk_size=settings.chunk_size,
            single_put_threshold=settings.single_put_threshold,
            copy_part_threshold=settings.copy_part_threshold,
            copy_part_size=settings.copy_part_size,
            staging_bucket=settings.staging(),
            chunks_in_flight=settings.chunks_in_flight,
        )

    # --- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        free = threading.Semaphore(self.settings.concurrency)
        inflight = [0]
        lock = threading.Lock()

        def done(_: Any) -> None:
            with lock:
                inflight[0] -= 1
            free.release()

        def start(message: Message, job: JobMessage, customer: tuple[str, int]) -> None:
            with lock:
                inflight[0] += 1
            pool.submit(self._run_safely, message, job, customer).add_done_callback(done)

        with ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="job") as pool:
            while not self.stop_event.is_set():
                if not free.acquire(timeout=0.5):
                    continue
                workers = 1  # every free worker: one receive can fill them all
                while workers < self.settings.concurrency and free.acquire(blocking=False):
                    workers += 1
                try:
                    # while a customer at its limit heads the queue: 10 a poll, to step past it
                    messages = self.queue.receive(
                        10 if self._scanning else workers, self.settings.poll_wait_seconds
                    )
                except Exception as exc:
                    log.warning("receive failed: %r", exc)
                    for _ in range(workers):
                        free.release()
                    self.stop_event.wait(1.0)
                    continue
                if not messages:
                    for _ in range(workers):
                        free.release()
                    with lock:
                        idle = inflight[0] == 0
                    if self.settings.exit_when_idle and idle:
                        break
                    continue
                started = self._dispatch(messages, workers, start)
                for _ in range(workers - started):
                    free.release()

    def _dispatch(
        self,
        messages: list[Message],
        workers: int,
        start: Callable[[Message, JobMessage, tuple[str, int]], None],
    ) -> int:
        """Admit the batch's messages in order while workers are free; put the rest back at
        the end of the queue (a waiting customer's after a delay). Returns the jobs started."""
        started = 0
        waiting = False
        back: list[Message] = []
        delays: list[int] = []
        for message in messages:
            if started >= workers:
                back.append(message)
                delays.append(0)
                continue
            admitted = self._admit(message)
            if isinstance(admitted, str):
                if admitted == "customer-wait":
                    waiting = True
                    back.append(message)
                    delays.append(self.admission.put_back(*self._customer_and_job(message)))
                continue
            start(message, *admitted)
            started += 1
        self._scanning = waiting
        self._put_back(back, delays)
        log.debug("batch of %d: %d started, %d put back", len(messages), started, len(back))
        return started

    @staticmethod
    def _customer_and_job(message: Message) -> tuple[str, str]:
        job = parse_job_message(message.body)
        return job.customer_id, job.job_id

    def _put_back(self, messages: list[Message], delays: list[int] | None = None) -> None:
        if not messages:
            return
        try:
            unsent = self.queue.requeue(messages, delays)
        except Exception as exc:
            log.warning("requeue failed: %r", exc)
            unsent = messages
        for message in unsent:  # the original comes back after a short wait instead
            try:
                self.queue.extend(message, self.settings.slot_wait_visibility_seconds)
            except Exception as exc:
                log.warning("message %s: visibility not changed: %r", message.message_id, exc)

    def handle_safely(self, message: Message) -> str:
        try:
            return self.handle(message)
        except Exception:
            log.exception(
                "message %s: unexpected error; it will be redelivered", message.message_id
            )
            return "error"

    def _run_safely(self, message: Message, job: JobMessage, customer: tuple[str, int]) -> str:
        try:
            return self._run_admitted(message, job, customer)
        except Exception:
            log.exception(
                "message %s: unexpected error; it will be redelivered", message.message_id
            )
            return "error"

    # --- one message -------------------------------------------------------------------------
    def handle(self, message: Message) -> str:
        """One message, start to end, on the caller's thread (the loop splits it: ``_admit``
        on its own thread, ``_run_admitted`` on a worker)."""
        admitted = self._admit(message)
        if isinstance(admitted, str):
            if admitted == "customer-wait":
                delay = self.admission.put_back(*self._customer_and_job(message))
                self._put_back([message], [delay])
            return admitted
        return self._run_admitted(message, *admitted)

    def _admit(self, message: Message) -> tuple[JobMessage, tuple[str, int]] | str:
        """Parse, skip what is not due or already running here, take the customer's slot
        (fairness.py). Returns the job and its customer slot, or what was done instead
        (``customer-wait``: at its limit, for the caller to put back)."""
        try:
            job = parse_job_message(message.body)
        except Exception as exc:
            log.error("message %s is not a job message (%r): dropped", message.message_id, exc)
            self.queue.delete(message)
            return "invalid"
        now = utcnow()
        if job.next_attempt_at is not None and job.next_attempt_at > now:
            delay = math.ceil((job.next_attempt_at - now).total_seconds())
            self.queue.extend(message, min(delay, 43200))
            return "not-due"
        if self.daily_budget.hold(self.queue, message, job.customer_id):
            return "over-budget"  # the customer's daily bytes are spent: back after 00:00 UTC
        with self._running_lock:
            if job.job_id in self._running:  # a duplicate delivery while this process runs it
                self.queue.extend(message, math.ceil(self.settings.lease_seconds) + 1)
                return "running-here"
            self._running.add(job.job_id)
        try:
            customer = self.admission.admit(job.customer_id, self._holder(job), job.job_id)
        except BaseException:
            self._not_running(job)
            raise
        if customer is None:
            self._not_running(job)
            return "customer-wait"
        return job, customer

    def _holder(self, job: JobMessage) -> str:
        return f"{self.owner_id}/{job.job_id}"

    def _not_running(self, job: JobMessage) -> None:
        with self._running_lock:
            self._running.discard(job.job_id)

    def _run_admitted(self, message: Message, job: JobMessage, customer: tuple[str, int]) -> str:
        began = time.monotonic()
        outcome = "error"
        try:
            # hold the message for the whole lease from the start (the heartbeat extends it)
            self.queue.extend(message, math.ceil(self.settings.lease_seconds) + 1)
            outcome = self._handle(message, job, customer)
            return outcome
        finally:
            self._release_slots([customer], self._holder(job))
            ran = outcome in ("succeeded", "failed", "retry", "cancelled", "abandoned")
            self.admission.ended(job.customer_id, time.monotonic() - began if ran else None)
            self._not_running(job)

    def _handle(self, message: Message, job: JobMessage, customer: tuple[str, int]) -> str:
        transfer = self.app.transfer(job.job_id)
        if transfer is not None and transfer.finished:
            self.queue.delete(message)
            return "finished"
        status = self.job_status.status(job.job_id)
        if status in FINAL_JOB_STATUSES:
            self.queue.delete(message)
            return "finished"
        cancelled = status == "CANCELLED"
        if cancelled and transfer is None:
            self.queue.delete(message)
            return "cancelled"

        slots: list[tuple[str, int]] = []
        holder = self._holder(job)
        if not cancelled:
            try:
                endpoints = {
                    e.endpoint_id: e
                    for e in (
                        self.endpoints.get(job.spec.source.endpoint_id),
                        self.endpoints.get(job.spec.target.endpoint_id),
                    )
                }
            except errors.TransferError:
                endpoints = {}  # the attempt records the failure
            for ep in endpoints.values():
                slot = self.semaphore.try_acquire(
                    ep.endpoint_id, ep.max_concurrency, holder, self.settings.lease_seconds
                )
                if slot is None:
                    self._release_slots(slots, holder)
                    self.queue.extend(message, self.settings.slot_wait_visibility_seconds)
                    return "no-slot"
                slots.append((ep.endpoint_id, slot))
                if ep.type == "sftp":  # more connections for a target, only from free slots
                    for _ in range(self.settings.sftp_connections - 1):
                        held = {s for e, s in slots if e == ep.endpoint_id}
                        more = self.semaphore.try_acquire(
                            ep.endpoint_id, ep.max_concurrency, holder,
                            self.settings.lease_seconds, skip=held,
                        )  # fmt: skip
                        if more is None:
                            break
                        slots.append((ep.endpoint_id, more))
        try:
            return self._attempt(message, job, transfer, cancelled, slots, holder, customer)
        finally:
            self._release_slots(slots, holder)

    def _release_slots(self, slots: list[tuple[str, int]], holder: str) -> None:
        for endpoint_id, slot in slots:
            try:
                self.semaphore.release(endpoint_id, slot, holder)
            except Exception as exc:  # it expires anyway
                log.warning("releasing slot %s/%s failed: %r", endpoint_id, slot, exc)

    def _acquire_lease(self, job: JobMessage, transfer: Transfer | None) -> Transfer:
        if transfer is None:
            transfer = Transfer.open(
                job_id=job.job_id,
                customer_id=job.customer_id,
                owner_id=self.owner_id,
                region=self.settings.region,
                attempt=job.attempt,
                lease_for=self.lease_for,
            )
        else:
            transfer.acquire(
                owner_id=self.owner_id,
                region=self.settings.region,
                attempt=job.attempt,
                lease_for=self.lease_for,
            )
        self.app.save(transfer)
        return transfer

    def _attempt(
        self,
        message: Message,
        job: JobMessage,
        transfer: Transfer | None,
        cancelled: bool,
        slots: list[tuple[str, int]],
        holder: str,
        customer: tuple[str, int] | None = None,
    ) -> str:
        try:
            t = self._acquire_lease(job, transfer)
        except LeaseHeld as held:
            wait = max(1, math.ceil((held.expires_at - utcnow()).total_seconds()) + 1)
            self.queue.extend(message, wait)
            return "leased-elsewhere"
        except TransferFinished:
            self.queue.delete(message)
            return "finished"
        except IntegrityError:
            self.queue.extend(message, 2)
            return "lost-race"

        flags = _Flags()
        flags.cancelled = cancelled
        lock = threading.Lock()

        def record(fn: Callable[[Transfer], Any]) -> Any:
            with lock:
                if flags.lost:
                    raise LeaseLost()
                result = fn(t)
                try:
                    self.app.save(t)
                except IntegrityError:
                    flags.lost = True
                    raise LeaseLost() from None
                return result

        def check() -> None:
            if flags.lost:
                raise LeaseLost()
            if self.stop_event.is_set():
                raise Abandoned()

        watch = self.app.cancel_watch(job.job_id)

        def cancel_requested() -> bool:
            if not flags.cancelled and watch():
                flags.cancelled = True
            return flags.cancelled

        stats = Stats()
        throttle = Throttle(job.spec.options.bandwidth_limit)
        self._share_bandwidth(throttle, slots)
        ctx = RunContext(
            record=record,
            check=check,
            cancelled=cancel_requested,
            fault=self.fault,
            stats=stats,
            throttle=throttle,
        )
        done = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat,
            args=(done, message, job, record, flags, slots, holder, throttle, customer),
            name=f"heartbeat-{job.job_id[:8]}",
            daemon=True,
        )
        beat.start()
        outcome: str | None
        run: TransferRun | None = None
        try:
            run = TransferRun(
                transfer=t,
                spec=job.spec,
                endpoints=self.endpoints,
                settings=self.engine_settings,
                ctx=ctx,
                connections=dict(Counter(e for e, _ in slots)),
            )
            check()
            if not t.legs and t.verified is None and cancel_requested():
                raise Cancelled()  # nothing was ever started, so nothing can be published
            run.execute()
            outcome = "succeeded"
        except Cancelled:
            if run is not None:
                run.cleanup()
            outcome = "cancelled"
        except Abandoned:
            outcome = "abandoned"
        except LeaseLost:
            outcome = None
        except errors.TransferError as exc:
            outcome = self._failed(t, run, record, exc, cancel_requested)
        except Exception as exc:
            log.exception("job %s: unexpected error", job.job_id)
            internal = errors.TransferError(
                f"internal error: {type(exc).__name__}", code="INTERNAL_ERROR", transient=True
            )
            outcome = self._failed(t, run, record, internal, cancel_requested)
        finally:
            done.set()
            beat.join()
            if run is not None:
                run.close()
        if outcome is not None:
            released: str = outcome
            try:
                record(lambda tr: tr.release(owner_id=self.owner_id, outcome=released))
            except LeaseLost:
                outcome = None
        self._write_stats(job, outcome, stats)
        emit_attempt_metrics(t, outcome, stats)
        if outcome in (None, "abandoned"):
            self.queue.extend(message, 0)  # another executor takes it over
        else:
            self.queue.delete(message)
        return outcome or "lease-lost"

    def _failed(
        self,
        t: Transfer,
        run: TransferRun | None,
        record: Callable[[Callable[[Transfer], Any]], Any],
        exc: errors.TransferError,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> str | None:
        max_attempts = 5
        if run is not None:
            max_attempts = run.spec.options.max_attempts
        final = not exc.transient or t.attempt >= max_attempts
        log.warning("job %s attempt %s failed: %s %s", t.job_id, t.attempt, exc.code, exc.message)
        if not final and run is not None and not run.may_have_delivered:
            try:
                if cancelled():  # no retry for a job whose cancel was requested
                    run.cleanup()
                    return "cancelled"
            except Exception as error:
                log.warning("job %s: cancel check failed: %r", t.job_id, error)
        if final and run is not None:
            run.cleanup()
        try:
            record(
                lambda tr: tr.fail_attempt(
                    code=exc.code, message=exc.message, transient=exc.transient
                )
            )
        except LeaseLost:
            return None
        return "failed" if final else "retry"

    def _heartbeat(
        self,
        done: threading.Event,
        message: Message,
        job: JobMessage,
        record: Callable[[Callable[[Transfer], Any]], Any],
        flags: _Flags,
        slots: list[tuple[str, int]],
        holder: str,
        throttle: Throttle | None = None,
        customer: tuple[str, int] | None = None,
    ) -> None:
        visibility = math.ceil(self.settings.lease_seconds) + 1
        while not done.wait(self.settings.heartbeat_seconds):
            try:
                record(lambda t: t.renew(owner_id=self.owner_id, lease_for=self.lease_for))
            except LeaseLost:
                return
            except Exception as exc:
                log.warning("job %s: lease renewal failed: %r", job.job_id, exc)
            try:
                self.queue.extend(message, visibility)
                for key, slot in [*slots, *([customer] if customer else [])]:
                    self.semaphore.renew(key, slot, holder, self.settings.lease_seconds)
                # a hint only (the read model lags): the commit points read the job stream
                if self.job_status.status(job.job_id) == "CANCELLED":
                    flags.cancelled = True
            except Exception as exc:
                log.warning("job %s: heartbeat side task failed: %r", job.job_id, exc)
            if throttle is not None:
                self._share_bandwidth(throttle, slots)

    def _share_bandwidth(self, throttle: Throttle, slots: list[tuple[str, int]]) -> None:
        """This attempt's share of each endpoint's bandwidth cap, from the endpoint's current
        limit and the transfers holding its slots (transfer/throttle.py); at the attempt's
        start and every heartbeat. On a failed read the last shares stay."""
        try:
            throttle.set_shares(
                endpoint_shares(
                    (endpoint_id for endpoint_id, _ in slots),
                    limit_of=lambda endpoint_id: self.endpoints.get(endpoint_id).bandwidth_limit,
                    holders=self.semaphore.holders,
                )
            )
        except Exception as exc:
            log.warning("bandwidth shares not updated: %r", exc)

    def _write_stats(self, job: JobMessage, outcome: str | None, stats: Stats) -> None:
        if not self.settings.stats_file:  # TEST ONLY counters
            return
        with open(self.settings.stats_file, "a") as f:
            f.write(
                json.dumps(
                    {
                        "job_id": job.job_id,
                        "outcome": outcome,
                        "source_bytes": stats.source_bytes,
                        "chunks_committed": stats.chunks_committed,
                        "target_reread_bytes": stats.target_reread_bytes,
                    }
                )
                + "\n"
            )
