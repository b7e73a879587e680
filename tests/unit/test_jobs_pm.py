"""The jobs process manager: executor events → job state, retries, idempotency (in-memory).

Executor events are built as the executor publishes them (contract models), wrapped in the
EventBridge envelope and an SQS record, and fed to the real batch handler.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError

from events.aggregate import transfer_stream_id
from events.contract import (
    ChunkCommitted,
    Direction,
    EndpointStatus,
    EndpointType,
    FerryEvent,
    Flow,
    JobStatus,
    LeaseAcquired,
    LeaseReleased,
    LeaseRenewed,
    PostAction,
    PostActionCompleted,
    TransferAttemptFailed,
    TransferStarted,
    TransferVerified,
    VerifyMode,
)
from events.translate import event_id_for, stream_events, to_integration
from services.jobs.application import (
    JobsApplication,
    TransferRequest,
)
from services.jobs.bootstrap import bootstrap
from services.jobs.domain import Job, backoff_seconds
from services.jobs.ports import EndpointInfo
from services.jobs.process_manager import make_handler
from services.jobs.settings import JobsSettings
from tests.support.fakes.jobs import (
    InMemoryEndpointDirectory,
    InMemoryIdempotencyStore,
    InMemorySourceIdentity,
)
from tests.support.fakes.keys import InMemoryKeyStore

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BASE, CAP = 2.0, 30.0


class Executor:
    """Publishes a job's Transfer-stream events the way the executor does."""

    def __init__(self, job_id: str, customer_id: str = "cust-a", owner: str = "exec-1") -> None:
        self.job_id = job_id
        self.customer_id = customer_id
        self.owner = owner
        self.stream = transfer_stream_id(job_id)
        self._versions = count(1)

    def event(self, cls: type[FerryEvent], **fields: Any) -> FerryEvent:
        version = next(self._versions)
        return cls.model_validate(
            {
                "event_id": event_id_for(self.stream, version),
                "stream_id": str(self.stream),
                "version": version,
                "occurred_at": NOW.isoformat(),
                "customer_id": self.customer_id,
                "correlation_id": self.job_id,
                "job_id": self.job_id,
                **fields,
            }
        )

    def lease(self, attempt: int = 1, owner: str | None = None) -> FerryEvent:
        return self.event(
            LeaseAcquired,
            owner_id=owner or self.owner,
            region="us-east-1",
            expires_at=(NOW + timedelta(minutes=1)).isoformat(),
            attempt=attempt,
        )

    def progress(self, chunks: int = 3) -> list[FerryEvent]:
        out = [
            self.event(
                TransferStarted, flow=Flow.S3_TO_SFTP, size=300, chunk_size=100, chunk_count=3
            ),
            self.event(
                LeaseRenewed,
                owner_id=self.owner,
                expires_at=(NOW + timedelta(minutes=2)).isoformat(),
            ),
        ]
        for i in range(chunks):
            out.append(
                self.event(
                    ChunkCommitted,
                    index=i,
                    offset=i * 100,
                    length=100,
                    sha256="0" * 64,
                    bytes_committed=(i + 1) * 100,
                    bytes_total=300,
                )
            )
        return out

    def verified(self) -> FerryEvent:
        return self.event(
            TransferVerified,
            size=300,
            sha256="a" * 64,
            verify=VerifyMode.DIGEST,
            duration_seconds=1.5,
            throughput_bytes_per_second=200.0,
        )

    def post_action(self) -> FerryEvent:
        return self.event(PostActionCompleted, action=PostAction.NONE)

    def released(self, outcome: str = "succeeded") -> FerryEvent:
        return self.event(LeaseReleased, owner_id=self.owner, outcome=outcome)

    def failed(self, attempt: int, transient: bool, code: str = "connection_reset") -> FerryEvent:
        return self.event(
            TransferAttemptFailed,
            attempt=attempt,
            error_code=code,
            error_message=f"{code} during attempt {attempt}",
            transient=transient,
        )


def sqs_record(event: FerryEvent | str, message_id: str | None = None) -> dict[str, Any]:
    body = (
        event
        if isinstance(event, str)
        else json.dumps(
            {
                "version": "0",
                "id": str(uuid4()),
                "source": event.SOURCE,
                "detail-type": event.detail_type(),
                "account": "000000000000",
                "time": NOW.isoformat(),
                "region": "us-east-1",
                "resources": [],
                "detail": event.model_dump(mode="json"),
            }
        )
    )
    return {
        "messageId": message_id or str(uuid4()),
        "receiptHandle": "rh",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:ferry-jobs-pm",
        "awsRegion": "us-east-1",
    }


class World:
    def __init__(self, rand: float = 0.5, max_attempts: int = 3) -> None:
        self.source = EndpointInfo(
            endpoint_id="src",
            customer_id="cust-a",
            type=EndpointType.S3,
            direction=Direction.BOTH,
            status=EndpointStatus.ACTIVE,
        )
        self.target = EndpointInfo(
            endpoint_id="tgt",
            customer_id="cust-a",
            type=EndpointType.SFTP,
            direction=Direction.BOTH,
            status=EndpointStatus.ACTIVE,
        )
        self.app = bootstrap(
            settings=JobsSettings(jobs_retry_base_seconds=BASE, jobs_retry_cap_seconds=CAP),
            endpoints=InMemoryEndpointDirectory([self.source, self.target]),
            idempotency=InMemoryIdempotencyStore(),
            keys=InMemoryKeyStore(),
            sources=InMemorySourceIdentity(),
            clock=lambda: NOW,
            rand=lambda: rand,
        ).app
        self.handler = make_handler(lambda: self.app)
        self.max_attempts = max_attempts

    def submit(self) -> str:
        request = TransferRequest.model_validate(
            {
                "source": {"endpoint_id": "src", "path": f"in/{uuid4().hex}.bin"},
                "target": {"endpoint_id": "tgt", "path": "out/file.bin"},
                "options": {"max_attempts": self.max_attempts},
            }
        )
        return self.app.submit("cust-a", "key-test", request).job_id

    def feed(self, *events: FerryEvent | str) -> dict[str, Any]:
        return self.handler({"Records": [sqs_record(e) for e in events]}, None)

    def job(self, job_id: str) -> Job:
        return self.app.get_job("cust-a", job_id)

    def trail(self, job_id: str) -> list[str]:
        return [e.detail_type() for e in stream_events(self.app.recorder, job_id)]


@pytest.fixture
def world() -> World:
    return World()


# --------------------------------------------------------------------------------------------
# Stories
# --------------------------------------------------------------------------------------------


def test_a_job_runs_to_success(world: World) -> None:
    job_id = world.submit()
    ex = Executor(job_id)
    assert world.feed(ex.lease()) == {"batchItemFailures": []}
    assert world.job(job_id).status == JobStatus.RUNNING
    world.feed(*ex.progress())
    assert world.trail(job_id) == ["JobRequested", "JobQueued", "JobStarted"]
    world.feed(ex.verified())
    assert world.job(job_id).status == JobStatus.VERIFYING
    world.feed(ex.post_action(), ex.released())
    job = world.job(job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert world.trail(job_id) == [
        "JobRequested",
        "JobQueued",
        "JobStarted",
        "JobVerified",
        "JobSucceeded",
    ]
    events = stream_events(world.app.recorder, job_id)
    started, succeeded = events[2], events[4]
    assert started.model_dump(include={"attempt", "executor_id"}) == {
        "attempt": 1,
        "executor_id": "exec-1",
    }
    assert succeeded.model_dump(
        include={"size", "sha256", "duration_seconds", "throughput_bytes_per_second", "attempts"}
    ) == {
        "size": 300,
        "sha256": "a" * 64,
        "duration_seconds": 1.5,
        "throughput_bytes_per_second": 200.0,
        "attempts": 1,
    }


def test_a_transient_failure_schedules_a_retry_with_backoff_then_succeeds(world: World) -> None:
    job_id = world.submit()
    ex = Executor(job_id)
    world.feed(ex.lease(), *ex.progress(1), ex.failed(1, transient=True), ex.released("retry"))
    job = world.job(job_id)
    assert job.status == JobStatus.RUNNING
    assert job.attempt == 2
    retry = stream_events(world.app.recorder, job_id)[-1]
    assert retry.detail_type() == "JobRetryScheduled"
    detail = retry.model_dump(mode="json")
    assert detail["attempt"] == 2
    assert detail["error_code"] == "connection_reset"
    assert detail["spec"]["flow"] == "S3_TO_SFTP"
    delay = (retry.next_attempt_at - NOW).total_seconds()  # type: ignore[attr-defined]
    assert delay == pytest.approx(0.5 * BASE)  # rand 0.5 x min(cap, base * 2**0)

    world.feed(ex.lease(attempt=2, owner="exec-2"), *ex.progress(), ex.verified(), ex.released())
    job = world.job(job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert stream_events(world.app.recorder, job_id)[-1].attempts == 2  # type: ignore[attr-defined]


def test_attempts_exhausted_fails_the_job() -> None:
    world = World(max_attempts=3)
    job_id = world.submit()
    ex = Executor(job_id)
    for attempt in (1, 2, 3):
        world.feed(ex.lease(attempt=attempt), ex.failed(attempt, transient=True))
    job = world.job(job_id)
    assert job.status == JobStatus.FAILED
    assert world.trail(job_id).count("JobRetryScheduled") == 2
    failed = stream_events(world.app.recorder, job_id)[-1]
    assert failed.model_dump(include={"error_code", "attempts"}) == {
        "error_code": "connection_reset",
        "attempts": 3,
    }


def test_a_permanent_failure_fails_at_once(world: World) -> None:
    job_id = world.submit()
    ex = Executor(job_id)
    world.feed(ex.lease(), ex.failed(1, transient=False, code="auth_failed"), ex.released("failed"))
    assert world.job(job_id).status == JobStatus.FAILED
    assert world.trail(job_id)[-1] == "JobFailed"
    assert "JobRetryScheduled" not in world.trail(job_id)


def test_duplicate_deliveries_change_nothing(world: World) -> None:
    job_id = world.submit()
    ex = Executor(job_id)
    lease, fail = ex.lease(), ex.failed(1, transient=True)
    lease2 = ex.lease(attempt=2, owner="exec-2")
    verified, released = ex.verified(), ex.released()
    story = [lease, lease, fail, lease, fail, lease2, lease2, fail, verified, verified]
    story += [lease2, released, released, verified, fail, lease]
    for event in story:
        assert world.feed(event) == {"batchItemFailures": []}
    assert world.trail(job_id) == [
        "JobRequested",
        "JobQueued",
        "JobStarted",
        "JobRetryScheduled",
        "JobStarted",
        "JobVerified",
        "JobSucceeded",
    ]


def test_an_old_attempts_late_failure_is_ignored(world: World) -> None:
    job_id = world.submit()
    ex = Executor(job_id)
    world.feed(ex.lease(), ex.failed(1, transient=True), ex.lease(attempt=2, owner="exec-2"))
    late = Executor(job_id)
    late._versions = count(100)
    world.feed(late.failed(1, transient=False, code="late"), late.lease(attempt=1))
    job = world.job(job_id)
    assert job.status == JobStatus.RUNNING
    assert job.attempt == 2
    assert job.executor_id == "exec-2"


def test_a_takeover_by_another_executor_records_the_new_owner(world: World) -> None:
    job_id = world.submit()
    ex = Executor(job_id)
    world.feed(ex.lease(owner="exec-1"), ex.lease(owner="exec-9"))
    assert world.trail(job_id).count("JobStarted") == 2
    assert world.job(job_id).executor_id == "exec-9"


def test_cancel_then_late_executor_events_record_nothing(world: World) -> None:
    job_id = world.submit()
    ex = Executor(job_id)
    world.feed(ex.lease())
    world.app.cancel("cust-a", "key-test", job_id)
    before = world.trail(job_id)
    result = world.feed(
        *ex.progress(), ex.failed(1, transient=True), ex.verified(), ex.released("succeeded")
    )
    assert result == {"batchItemFailures": []}
    assert world.trail(job_id) == before
    assert world.job(job_id).status == JobStatus.CANCELLED


def test_status_never_goes_backward(world: World) -> None:
    job_id = world.submit()
    ex = Executor(job_id)
    world.feed(ex.verified())  # out of order: verified before the lease event
    assert world.job(job_id).status == JobStatus.VERIFYING
    world.feed(ex.lease())
    assert world.job(job_id).status == JobStatus.VERIFYING
    world.feed(ex.failed(1, transient=True))  # post-action failed after verification
    job = world.job(job_id)
    assert job.status == JobStatus.VERIFYING
    assert job.attempt == 2
    world.feed(ex.lease(attempt=2), ex.released())
    assert world.job(job_id).status == JobStatus.SUCCEEDED
    world.feed(ex.failed(2, transient=False), ex.lease(attempt=3))
    assert world.job(job_id).status == JobStatus.SUCCEEDED


def test_release_before_verification_is_retried_later(world: World) -> None:
    job_id = world.submit()
    ex = Executor(job_id)
    verified = ex.verified()
    record = sqs_record(ex.released(), message_id="early-release")
    result = world.handler({"Records": [record]}, None)
    assert result == {"batchItemFailures": [{"itemIdentifier": "early-release"}]}
    world.feed(verified)
    assert world.handler({"Records": [record]}, None) == {"batchItemFailures": []}
    assert world.job(job_id).status == JobStatus.SUCCEEDED


def test_bad_records_fail_alone(world: World) -> None:
    job_id = world.submit()
    ex = Executor(job_id)
    foreign = Executor(job_id, customer_id="cust-b")
    records = [
        sqs_record(ex.lease(), "good-1"),
        sqs_record("not json", "bad-json"),
        sqs_record(foreign.lease(owner="intruder"), "other-customer"),
        sqs_record(Executor(str(uuid4())).lease(), "no-such-job"),
        sqs_record(json.dumps({"detail-type": "Nonsense", "detail": {}}), "unknown-type"),
        sqs_record(ex.verified(), "good-2"),
    ]
    result = world.handler({"Records": records}, None)
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    assert failed == {"bad-json", "other-customer", "no-such-job", "unknown-type"}
    assert world.job(job_id).status == JobStatus.VERIFYING
    assert world.job(job_id).executor_id == "exec-1"


# --------------------------------------------------------------------------------------------
# Concurrency: the API and the process manager append to one job at once
# --------------------------------------------------------------------------------------------


class RacingApp(JobsApplication):
    """Before the first save after a load, another writer appends to the same job."""

    def __init__(self, race: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.race = race
        self.conflicts = 0

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        if self.race is not None:
            race, self.race = self.race, None
            race(self)
        try:
            return super().save(*objs, **kwargs)
        except IntegrityError:
            self.conflicts += 1
            raise


def _racing(race: Any) -> tuple[RacingApp, str]:
    source = EndpointInfo(
        endpoint_id="src",
        customer_id="c",
        type=EndpointType.S3,
        direction=Direction.BOTH,
        status=EndpointStatus.ACTIVE,
    )
    target = EndpointInfo(
        endpoint_id="tgt",
        customer_id="c",
        type=EndpointType.S3,
        direction=Direction.BOTH,
        status=EndpointStatus.ACTIVE,
    )
    app = RacingApp(
        None,
        endpoints=InMemoryEndpointDirectory([source, target]),
        idempotency=InMemoryIdempotencyStore(),
    )
    request = TransferRequest.model_validate(
        {
            "source": {"endpoint_id": "src", "path": "a"},
            "target": {"endpoint_id": "tgt", "path": "b"},
        }
    )
    job_id = app.submit("c", "k", request).job_id
    app.race = race
    return app, job_id


def test_cancel_retries_after_a_concurrent_process_manager_append() -> None:
    app, job_id = _racing(lambda a: None)
    app.race = lambda a: JobsApplication.save(a, _started(a, job_id))
    assert app.cancel("c", "k", job_id).status == JobStatus.CANCELLED
    assert app.conflicts == 1
    trail = [e.detail_type() for e in stream_events(app.recorder, job_id)]
    # no Transfer stream in this store: nothing can have been delivered → cancelled at once
    assert trail == [
        "JobRequested",
        "JobQueued",
        "JobStarted",
        "JobCancelRequested",
        "JobCancelled",
    ]


def test_process_manager_retries_after_a_concurrent_cancel() -> None:
    app, job_id = _racing(None)

    def cancel_first(a: JobsApplication) -> None:
        job: Job = a.repository.get(UUID(job_id))
        assert job.request_cancel("k") and job.cancel_now()
        JobsApplication.save(a, job)

    app.race = cancel_first
    assert app.job_started("c", job_id, 1, "exec-1") is False  # reloaded: cancelled, ignored
    assert app.conflicts == 1
    assert app.get_job("c", job_id).status == JobStatus.CANCELLED


def _started(app: JobsApplication, job_id: str) -> Job:
    job: Job = app.repository.get(UUID(job_id))
    assert job.start(1, "exec-1")
    return job


# --------------------------------------------------------------------------------------------
# Backoff and the contract
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(1, 25))
@pytest.mark.parametrize("rand", [0.0, 1e-9, 0.25, 0.5, 0.999999, 1.0])
def test_backoff_is_within_full_jitter_bounds(attempt: int, rand: float) -> None:
    ceiling = min(300.0, 2.0 * 2 ** (attempt - 1))
    delay = backoff_seconds(attempt, 2.0, 300.0, rand)
    assert 0.0 <= delay <= ceiling
    assert delay == pytest.approx(rand * ceiling)


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        backoff_seconds(0, 2.0, 300.0, 0.5)
    with pytest.raises(ValueError):
        backoff_seconds(1, 2.0, 300.0, 1.5)
    assert backoff_seconds(10_000, 2.0, 300.0, 1.0) == 300.0


def test_every_event_the_service_emits_translates_to_the_contract() -> None:
    """Run every path that emits events and translate each stored event (extra="forbid")."""
    world = World(max_attempts=2)
    seen: set[str] = set()
    job_ids = [world.submit() for _ in range(3)]
    a, b = Executor(job_ids[0]), Executor(job_ids[1])
    world.feed(a.lease(), a.failed(1, True), a.lease(2), a.verified(), a.released())
    world.feed(b.lease(), b.failed(1, True), b.failed(2, True))
    world.app.cancel("cust-a", "key-test", job_ids[2])
    new = world.app.redrive("cust-a", "key-test", job_ids[1]).job_id
    for job_id in [*job_ids, new]:
        stored = list(world.app.recorder.select_events(UUID(job_id)))
        for event in stored:
            model = to_integration(event)
            assert model is not None, event.topic
            assert model.SOURCE == "ferry.jobs"
            seen.add(model.detail_type())
    assert seen == {
        "JobRequested",
        "JobQueued",
        "JobStarted",
        "JobVerified",
        "JobRetryScheduled",
        "JobSucceeded",
        "JobFailed",
        "JobCancelRequested",
        "JobCancelled",
        "JobRedriven",
    }


# --------------------------------------------------------------------------------------------
# Cancel is a request honoured at commit points (issue 9)
# --------------------------------------------------------------------------------------------


def _transfer_stream(world: World, job_id: str) -> Any:
    """The executor's own Transfer aggregate on the same event store (as in production)."""
    from services.executor.domain import Transfer

    transfer = Transfer.open(
        job_id=job_id,
        customer_id="cust-a",
        owner_id="exec-1",
        region="us-east-1",
        attempt=1,
        lease_for=timedelta(minutes=1),
    )
    world.app.save(transfer)
    return transfer


def _publish(world: World, job_id: str) -> None:
    """Feed the Transfer stream's events to the process manager (as EventBridge would)."""
    world.feed(*stream_events(world.app.recorder, transfer_stream_id(job_id)))


def test_cancel_of_a_running_job_is_a_request_and_the_executor_decides(world: World) -> None:
    job_id = world.submit()
    _transfer_stream(world, job_id)  # an executor holds the lease
    _publish(world, job_id)
    assert world.job(job_id).status == JobStatus.RUNNING

    answer = world.app.cancel("cust-a", "key-test", job_id)
    again = world.app.cancel("cust-a", "key-test", job_id)

    assert (answer.status, answer.cancel_requested) == (JobStatus.RUNNING, True)
    assert again == answer
    assert world.trail(job_id)[-1] == "JobCancelRequested"
    assert world.trail(job_id).count("JobCancelRequested") == 1
    ex = Executor(job_id)
    ex._versions = count(2)  # after the stored LeaseAcquired
    world.feed(ex.released("cancelled"))
    job = world.job(job_id)
    assert job.status == JobStatus.CANCELLED and job.cancel_outcome is None
    assert world.trail(job_id)[-2:] == ["JobCancelRequested", "JobCancelled"]


def test_cancel_after_the_file_was_published_succeeds_too_late(world: World) -> None:
    job_id = world.submit()
    _transfer_stream(world, job_id)
    _publish(world, job_id)
    assert world.app.cancel("cust-a", "key-test", job_id).status == JobStatus.RUNNING
    ex = Executor(job_id)
    ex._versions = count(2)
    world.feed(ex.verified(), ex.post_action(), ex.released("succeeded"))
    job = world.job(job_id)
    assert job.status == JobStatus.SUCCEEDED and job.cancel_outcome == "too_late"
    succeeded = stream_events(world.app.recorder, job_id)[-1]
    assert succeeded.detail_type() == "JobSucceeded"
    assert succeeded.cancel_outcome == "too_late"  # type: ignore[attr-defined]


def test_a_job_without_cancel_succeeds_without_cancel_outcome(world: World) -> None:
    job_id = world.submit()
    ex = Executor(job_id)
    world.feed(ex.lease(), ex.verified(), ex.released())
    assert world.job(job_id).cancel_outcome is None


def test_cancel_during_a_retry_backoff_waits_for_the_retry_to_clean_up(world: World) -> None:
    """A leg was started (a temp file exists at the target): the job is CANCELLED only once
    an executor removed it — the retry attempt sees the request at its first commit point."""
    job_id = world.submit()
    transfer = _transfer_stream(world, job_id)
    transfer.start_leg(
        flow="S3_TO_SFTP", leg=1, legs=1, size=300, chunk_size=100, temp_path="/out/.f.ferry-part"
    )
    transfer.commit_chunk(leg=1, offset=0, length=100, sha256="0" * 64)
    transfer.fail_attempt(code="CONNECTION_FAILED", message="reset", transient=True)
    transfer.release(owner_id="exec-1", outcome="retry")
    world.app.save(transfer)
    _publish(world, job_id)
    assert world.trail(job_id)[-1] == "JobRetryScheduled"

    answer = world.app.cancel("cust-a", "key-test", job_id)

    assert (answer.status, answer.cancel_requested) == (JobStatus.RUNNING, True)
    transfer.acquire(owner_id="exec-2", region="us-east-1", attempt=2, lease_for=timedelta(1))
    transfer.release(owner_id="exec-2", outcome="cancelled")  # after its cleanup
    world.app.save(transfer)
    _publish(world, job_id)
    assert world.job(job_id).status == JobStatus.CANCELLED


def test_cancel_during_backoff_before_any_leg_started_is_at_once(world: World) -> None:
    job_id = world.submit()
    transfer = _transfer_stream(world, job_id)
    transfer.fail_attempt(code="CONNECTION_FAILED", message="no route", transient=True)
    transfer.release(owner_id="exec-1", outcome="retry")
    world.app.save(transfer)
    _publish(world, job_id)

    answer = world.app.cancel("cust-a", "key-test", job_id)

    assert answer.status == JobStatus.CANCELLED
    assert world.trail(job_id)[-2:] == ["JobCancelRequested", "JobCancelled"]


def _leg_started(ex: Executor, leg: int = 1, legs: int = 1, **fields: Any) -> FerryEvent:
    values: dict[str, Any] = {
        "flow": Flow.S3_TO_SFTP,
        "leg": leg,
        "legs": legs,
        "size": 300,
        "chunk_size": 100,
        "chunk_count": 3,
    }
    values.update(fields)
    return ex.event(TransferStarted, **values)


def _chunk(ex: Executor, index: int, leg: int = 1) -> FerryEvent:
    return ex.event(
        ChunkCommitted,
        leg=leg,
        index=index,
        offset=index * 100,
        length=100,
        sha256="0" * 64,
        bytes_committed=(index + 1) * 100,
        bytes_total=300,
    )


def test_cancellable_at_once_only_when_no_executor_holds_it_and_nothing_was_started() -> None:
    from services.jobs.domain import cancellable_at_once

    ex = Executor(str(uuid4()))
    lease = ex.lease()
    retry = ex.released("retry")
    assert cancellable_at_once([]) is True  # never leased
    assert cancellable_at_once([lease]) is False  # held (even if it expired: maybe slow)
    assert cancellable_at_once([lease, ex.failed(1, True), retry]) is True
    assert cancellable_at_once([lease, ex.released("abandoned")]) is True
    assert cancellable_at_once([lease, retry, ex.lease(2)]) is False  # taken again
    started = _leg_started(ex, temp_path="/o/.f.ferry-part")
    assert cancellable_at_once([lease, started, retry]) is False  # a temp file to clean up
    assert cancellable_at_once([lease, _leg_started(ex), _chunk(ex, 0), retry]) is False
    assert cancellable_at_once([lease, started, ex.verified(), retry]) is False
    for outcome in ("succeeded", "failed", "cancelled"):
        assert cancellable_at_once([lease, ex.released(outcome)]) is False
