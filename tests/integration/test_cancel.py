"""Cancel is a request honoured at commit points (issue 9): the jobs application, the executor
and the process manager on one event table (moto server), with a real OpenSSH sshd.

The invariant every test here asserts: a job is never CANCELLED while its target holds the
delivered file, and never SUCCEEDED without it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from events.contract import Flow, JobStatus
from tests.integration.executor_harness import MiB, Stack, sha256
from tests.integration.test_executor_flows import put_source, read_target, target_of
from tests.support.sshd import SshdServer

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def stack(aws_env: dict[str, str], sshd: SshdServer, sftp_dir: Path) -> Stack:
    return Stack(aws_env, sshd, sftp_dir)


def target_state(stack: Stack, flow: Flow, name: str = "out/result.bin") -> bytes | None:
    try:
        return read_target(stack, flow, name)
    except Exception:
        return None


def assert_truthful(stack: Stack, flow: Flow, job: Any, data: bytes) -> None:
    """The job's final state is what is at the target; nothing is left behind."""
    delivered = target_state(stack, flow)
    assert job.status.is_final, job.status
    if job.status == JobStatus.CANCELLED:
        assert delivered is None, "CANCELLED while the target holds the file"
    if job.status == JobStatus.SUCCEEDED:
        assert delivered is not None and sha256(delivered) == sha256(data)
    for bucket in (stack.dst_bucket, stack.names.staging_bucket):
        assert stack.incomplete_uploads(bucket) == []
    assert stack.s3.list_objects_v2(Bucket=stack.names.staging_bucket).get("KeyCount", 0) == 0
    if flow.value.endswith("SFTP") and stack.sftp_dir is not None:
        out = stack.sftp_dir / "out"
        found = list(out.iterdir()) if out.exists() else []
        leftovers = [p.name for p in found if p.name.endswith(".ferry-part")]
        assert leftovers == []


def run_in_thread(stack: Stack, **overrides: Any) -> tuple[threading.Thread, list[str]]:
    executor = stack.executor(**overrides)
    results: list[str] = []

    def drain() -> None:
        results.extend(stack.drain(executor, timeout=120))

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return thread, results


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_cancel_right_after_start_of_a_large_s3_to_sftp_job_is_honoured(stack: Stack) -> None:
    """As found: a large S3→SFTP job cancelled right after it started ended CANCELLED while the
    whole file was at the target (the executor looked at cancellation only at its heartbeat)."""
    flow = Flow.S3_TO_SFTP
    data = os.urandom(48 * MiB)
    job_id = stack.submit(flow, put_source(stack, flow, data), target_of(stack, flow))
    thread, results = run_in_thread(stack, heartbeat_seconds=30, lease_seconds=60)
    wait_for(lambda: "ChunkCommitted" in stack.types(job_id))
    stack.process_manager(job_id)  # LeaseAcquired → JobStarted: RUNNING

    answer = stack.jobs().cancel(stack.customer_id, "key-test", job_id)
    thread.join(120)
    job = stack.process_manager(job_id)

    assert_truthful(stack, flow, job, data)
    assert job.status == JobStatus.CANCELLED
    assert results == ["cancelled"] and stack.released(job_id) == "cancelled"
    assert answer.status == JobStatus.RUNNING and answer.cancel_requested


# --- instrumented data plane: real sessions/clients, with a hook around chosen calls ----------
class Hooked:
    """A real SFTP session / S3 client whose named calls run hooks around them (a throttle or a
    cancel injected at an exact instant); everything else passes straight through."""

    def __init__(self, inner: Any, hooks: dict[str, Any]) -> None:
        self._inner, self._hooks = inner, hooks

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        hook = self._hooks.get(name)
        if hook is None:
            return value
        return lambda *args, **kwargs: hook(value, *args, **kwargs)


def instrument(
    stack: Stack,
    executor: Any,
    *,
    chunk_delay: float = 0.0,
    on_publish: Any = None,
    before_publish: bool = False,
    fail_first_read: bool = False,
) -> None:
    """Slow every chunk write by ``chunk_delay``; call ``on_publish()`` right after (or, with
    ``before_publish``, right before) the write that publishes the file at the target;
    ``fail_first_read``: the first source GET fails with a connection error (transient)."""
    endpoints = executor.endpoints
    real_sftp, real_s3 = endpoints.sftp, endpoints.s3
    failed: list[bool] = []

    def slow(call: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(chunk_delay)
        return call(*args, **kwargs)

    def publish(call: Any, *args: Any, **kwargs: Any) -> Any:
        target = kwargs.get("Bucket", stack.dst_bucket) == stack.dst_bucket
        if target and before_publish and on_publish:
            on_publish()
        result = call(*args, **kwargs)
        if target and not before_publish and on_publish:
            on_publish()
        return result

    def first_read(call: Any, *args: Any, **kwargs: Any) -> Any:
        if fail_first_read and kwargs.get("Bucket") == stack.src_bucket and not failed:
            failed.append(True)
            raise ConnectionError("injected: connection reset")
        return call(*args, **kwargs)

    def open_chunks(call: Any, *args: Any, **kwargs: Any) -> Any:
        return Hooked(call(*args, **kwargs), {"write_at": slow})

    def sftp(ep: Any) -> Any:
        return Hooked(real_sftp(ep), {"open_chunks": open_chunks, "rename": publish})

    def s3(ep: Any) -> Any:
        hooks = {
            "upload_part": slow,
            "upload_part_copy": slow,
            "complete_multipart_upload": publish,
            "copy_object": publish,
            "put_object": publish,
            "get_object": first_read,
        }
        return Hooked(real_s3(ep), hooks)

    endpoints.sftp, endpoints.s3 = sftp, s3


def start(stack: Stack, executor: Any) -> tuple[threading.Thread, list[str]]:
    results: list[str] = []
    thread = threading.Thread(
        target=lambda: results.extend(stack.drain(executor, timeout=120)), daemon=True
    )
    thread.start()
    return thread, results


FLOWS = list(Flow)
IDS = [f.value for f in FLOWS]
SIZE = 12 * MiB + 7  # several chunks in every flow (S3 parts / copy parts of 5 MiB)


@pytest.mark.parametrize("flow", FLOWS, ids=IDS)
def test_cancel_while_running_stops_before_publishing_and_cleans_up(
    stack: Stack, flow: Flow
) -> None:
    data = os.urandom(SIZE)
    job_id = stack.submit(flow, put_source(stack, flow, data), target_of(stack, flow))
    # one chunk in flight: the 3 chunks take 3 x 0.3 s, so the cancel sent after the first
    # commit lands while chunks are still moving (with K in flight they would all be done by
    # then); a cancel with K chunks in flight: tests/unit/test_transfer_engine.py
    executor = stack.executor(heartbeat_seconds=30, lease_seconds=60, chunks_in_flight=1)
    instrument(stack, executor, chunk_delay=0.3)
    thread, results = start(stack, executor)
    wait_for(lambda: "ChunkCommitted" in stack.types(job_id))
    assert stack.process_manager(job_id).status == JobStatus.RUNNING

    answer = stack.jobs().cancel(stack.customer_id, "key-test", job_id)
    again = stack.jobs().cancel(stack.customer_id, "key-test", job_id)  # twice: one request
    assert (answer.status, answer.cancel_requested) == (JobStatus.RUNNING, True)
    assert (again.status, again.cancel_requested) == (JobStatus.RUNNING, True)
    thread.join(120)
    job = stack.process_manager(job_id)

    assert_truthful(stack, flow, job, data)
    assert job.status == JobStatus.CANCELLED
    assert results == ["cancelled"]
    types = stack.types(job_id)
    assert types[-1] == "LeaseReleased" and "TransferVerified" not in types
    job_types = [e.detail_type() for e in stack.job_events(job_id)]
    assert job_types[-2:] == ["JobCancelRequested", "JobCancelled"]


@pytest.mark.parametrize("before", [True, False], ids=["before-publish", "after-publish"])
@pytest.mark.parametrize("flow", FLOWS, ids=IDS)
def test_cancel_at_the_final_commit_point_the_publish_decides(
    stack: Stack, flow: Flow, before: bool
) -> None:
    """The request arrives between the last check and the rename / completion / copy (or just
    after it): the file is delivered, so the job is SUCCEEDED with cancel_outcome too_late."""
    data = os.urandom(SIZE)
    job_id = stack.submit(flow, put_source(stack, flow, data), target_of(stack, flow))
    executor = stack.executor(heartbeat_seconds=30, lease_seconds=60)
    answers: list[Any] = []

    def cancel() -> None:
        answers.append(stack.jobs().cancel(stack.customer_id, "key-test", job_id))

    instrument(stack, executor, on_publish=cancel, before_publish=before)
    thread, results = start(stack, executor)
    thread.join(120)
    job = stack.process_manager(job_id)

    assert_truthful(stack, flow, job, data)
    assert results == ["succeeded"]
    assert job.status == JobStatus.SUCCEEDED and job.cancel_outcome == "too_late"
    assert len(answers) == 1 and answers[0].cancel_requested
    assert not answers[0].status.is_final  # the request did not pretend to cancel
    succeeded = stack.job_events(job_id)[-1]
    assert succeeded.detail_type() == "JobSucceeded" and succeeded.cancel_outcome == "too_late"


def test_cancel_of_a_queued_job_is_at_once_and_no_executor_moves_a_byte(stack: Stack) -> None:
    flow = Flow.S3_TO_SFTP
    data = os.urandom(1000)
    job_id = stack.submit(flow, put_source(stack, flow, data), target_of(stack, flow))

    answer = stack.jobs().cancel(stack.customer_id, "key-test", job_id)

    assert answer.status == JobStatus.CANCELLED
    results = stack.drain(stack.executor())
    assert results == ["cancelled"]  # the read model says nothing here: the stream does
    assert stack.types(job_id) == [] or stack.released(job_id) == "cancelled"
    assert_truthful(stack, flow, stack.process_manager(job_id), data)


def test_cancel_of_a_final_job_is_a_conflict(stack: Stack) -> None:
    from services.jobs.application import JobConflict

    flow = Flow.S3_TO_S3
    data = os.urandom(1000)
    job_id = stack.submit(flow, put_source(stack, flow, data), target_of(stack, flow))
    assert stack.jobs().cancel(stack.customer_id, "key-test", job_id).status.is_final
    with pytest.raises(JobConflict):
        stack.jobs().cancel(stack.customer_id, "key-test", job_id)
    cancels = [e.detail_type() for e in stack.job_events(job_id)]
    assert cancels.count("JobCancelRequested") == 1 and cancels.count("JobCancelled") == 1

    done = stack.submit(
        flow, put_source(stack, flow, data, "in/other.bin"), target_of(stack, flow, "out/o.bin")
    )
    assert sorted(stack.drain(stack.executor(), jobs=2)) == ["cancelled", "succeeded"]
    assert stack.process_manager(done).status == JobStatus.SUCCEEDED
    with pytest.raises(JobConflict):
        stack.jobs().cancel(stack.customer_id, "key-test", done)


def test_cancel_during_a_retry_backoff_is_honoured_by_the_retry_which_cleans_up(
    stack: Stack,
) -> None:
    """The first attempt started writing the temp file, then failed (transient): the cancel in
    the backoff is a request; the retry attempt sees it before moving a byte, removes the temp
    file and releases cancelled — only then is the job CANCELLED."""
    flow = Flow.S3_TO_SFTP
    data = os.urandom(SIZE)
    job_id = stack.submit(flow, put_source(stack, flow, data), target_of(stack, flow))
    stack.jobs().policy = type(stack.jobs().policy)(retry_base_seconds=3.0, retry_cap_seconds=3.0)
    stack.jobs().rand = lambda: 1.0  # the retry is due in 3 s
    executor = stack.executor()
    instrument(stack, executor, fail_first_read=True)
    assert stack.drain(executor) == ["retry"]
    job = stack.process_manager(job_id)  # JobRetryScheduled → the executor queue (delayed)
    assert job.status == JobStatus.RUNNING and job.next_attempt_at is not None
    assert stack.sftp_dir is not None
    assert (stack.sftp_dir / "out" / ".result.bin.ferry-part").exists()  # partial state

    answer = stack.jobs().cancel(stack.customer_id, "key-test", job_id)

    assert (answer.status, answer.cancel_requested) == (JobStatus.RUNNING, True)
    results = stack.drain(executor, timeout=30)
    assert results[-1] == "cancelled"  # the retry attempt only cleaned up
    job = stack.process_manager(job_id)
    assert job.status == JobStatus.CANCELLED
    assert_truthful(stack, flow, job, data)
    assert "ChunkCommitted" not in stack.types(job_id)


def test_cancel_during_a_backoff_before_anything_started_is_at_once(stack: Stack) -> None:
    flow = Flow.S3_TO_SFTP
    data = os.urandom(1000)
    job_id = stack.submit(flow, put_source(stack, flow, data), target_of(stack, flow))
    stack.jobs().policy = type(stack.jobs().policy)(retry_base_seconds=3.0, retry_cap_seconds=3.0)
    stack.jobs().rand = lambda: 1.0
    executor = stack.executor()
    real_sftp = executor.endpoints.sftp
    refused: list[bool] = []

    def unreachable(ep: Any) -> Any:  # the target refuses the first connection
        if not refused:
            refused.append(True)
            from services.executor import errors

            raise errors.ConnectionFailed("injected: connection refused")
        return real_sftp(ep)

    executor.endpoints.sftp = unreachable
    assert stack.drain(executor) == ["retry"]
    assert "TransferStarted" not in stack.types(job_id)
    stack.process_manager(job_id)

    answer = stack.jobs().cancel(stack.customer_id, "key-test", job_id)

    assert answer.status == JobStatus.CANCELLED
    assert stack.drain(executor, timeout=30)[-1] in ("cancelled", "finished")
    assert_truthful(stack, flow, stack.process_manager(job_id), data)


def test_random_cancel_instants_never_lie(stack: Stack) -> None:
    """A real race: cancels at random instants against running jobs of every flow."""
    import random

    rng = random.Random(9)
    outcomes: list[str] = []
    for trial in range(8):
        flow = FLOWS[trial % 4]
        data = os.urandom(rng.choice([0, 1000, 3 * MiB, 6 * MiB + 1]))
        name = f"out/r{trial}.bin"
        job_id = stack.submit(
            flow, put_source(stack, flow, data, f"in/r{trial}.bin"), target_of(stack, flow, name)
        )
        thread, _ = start(stack, stack.executor())
        time.sleep(rng.uniform(0.0, 0.6))
        stack.jobs().cancel(stack.customer_id, "key-test", job_id)
        thread.join(120)
        job = stack.process_manager(job_id)
        delivered = None
        try:
            delivered = read_target(stack, flow, name)
        except Exception:
            pass
        assert job.status in (JobStatus.CANCELLED, JobStatus.SUCCEEDED)
        if job.status == JobStatus.CANCELLED:
            assert delivered is None, f"trial {trial} {flow}: CANCELLED but delivered"
        else:
            assert delivered is not None and sha256(delivered) == sha256(data)
            assert job.cancel_outcome == "too_late"
        outcomes.append(job.status.value)
    assert stack.incomplete_uploads(stack.dst_bucket) == []
