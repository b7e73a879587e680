"""Fair sharing between customers (issue 15) on moto server: customer A queues a backlog of
small S3→S3 jobs with a running-jobs limit of 2, then customer B queues one. The real executor
loop (``Executor.run``, 4 workers) runs them; the figures come from the Transfer streams'
LeaseAcquired / LeaseReleased timestamps.

B queues its job once the executor has made its first pass over A's backlog (each of A's jobs
put back in A's line once; a job of B queued during that pass waits for it: the figure is
printed). Then: B's job starts within the duration of one of A's jobs after B queued it; A never has
more than 2 jobs running at once; every job succeeded exactly once and delivered its bytes;
nothing is left in the queue.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from events.contract import Flow, JobQueued, JobSpec, Location, TransferOptions
from tests.integration.executor_harness import Stack
from tests.support.moto_server import unique_name

pytestmark = pytest.mark.usefixtures("aws_env")

A_LIMIT = 2
WORKERS = 4


@pytest.fixture
def stack(aws_env: dict[str, str]) -> Stack:
    return Stack(aws_env, None, None)


class Customer:
    """A customer's own buckets (tagged for it) and S3 endpoints in the stack's read model."""

    def __init__(self, stack: Stack, customer_id: str) -> None:
        self.stack = stack
        self.customer_id = customer_id
        if customer_id == stack.customer_id:
            self.src_bucket, self.dst_bucket = stack.src_bucket, stack.dst_bucket
            self.src, self.dst = stack.s3_src, stack.s3_dst
            return
        self.src_bucket, self.dst_bucket = unique_name("src"), unique_name("dst")
        for bucket in (self.src_bucket, self.dst_bucket):
            stack.s3.create_bucket(Bucket=bucket)
            stack.s3.put_bucket_tagging(
                Bucket=bucket,
                Tagging={"TagSet": [{"Key": "ferry:customer", "Value": customer_id}]},
            )
        default, stack.customer_id = stack.customer_id, customer_id  # type: ignore[misc]
        try:
            self.src = stack.endpoint_s3(self.src_bucket)
            self.dst = stack.endpoint_s3(self.dst_bucket)
        finally:
            stack.customer_id = default  # type: ignore[misc]

    def job_message(self, name: str) -> tuple[str, str]:
        """A source object ``in/<name>`` and the JobQueued message for it (job id, body)."""
        self.stack.s3.put_object(Bucket=self.src_bucket, Key=f"in/{name}", Body=name.encode())
        job_id = str(uuid.uuid4())
        event = JobQueued(
            event_id=str(uuid.uuid4()),
            stream_id=job_id,
            version=2,
            occurred_at=datetime.now(UTC),
            customer_id=self.customer_id,
            correlation_id=job_id,
            job_id=job_id,
            spec=JobSpec(
                flow=Flow.S3_TO_S3,
                source=Location(endpoint_id=self.src, path=f"in/{name}"),
                target=Location(endpoint_id=self.dst, path=f"out/{name}"),
                options=TransferOptions(),
            ),
            attempt=1,
        )
        body = {
            "source": event.SOURCE,
            "detail-type": event.detail_type(),
            "detail": event.model_dump(mode="json"),
        }
        return job_id, json.dumps(body)

    def queue(self, names: list[str]) -> dict[str, str]:
        """Queue a job per name (SendMessageBatch, in order); returns job id → name."""
        jobs = dict(self.job_message(name) for name in names)
        bodies = list(jobs.items())
        for start in range(0, len(bodies), 10):
            self.stack.sqs.send_message_batch(
                QueueUrl=self.stack.queue_url,
                Entries=[
                    {"Id": str(i), "MessageBody": body}
                    for i, (_, body) in enumerate(bodies[start : start + 10])
                ],
            )
        return {job_id: name for job_id, name in zip(jobs, names, strict=True)}


def attempts(stack: Stack, job_id: str) -> list[tuple[float, float, str]]:
    """(leased at, released at, outcome) of each attempt of the job, as POSIX seconds."""
    out: list[tuple[float, float, str]] = []
    start: float | None = None
    for event in stack.events(job_id):
        kind = event.detail_type()
        if kind == "LeaseAcquired":
            start = event.occurred_at.timestamp()
        elif kind == "LeaseReleased" and start is not None:
            out.append((start, event.occurred_at.timestamp(), event.outcome))
            start = None
    return out


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def queue_empty(stack: Stack) -> bool:
    """No message visible, in flight or delayed (put back for later)."""
    attrs = stack.sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])
    counts = [f"ApproximateNumberOfMessages{kind}" for kind in ("", "NotVisible", "Delayed")]
    return all(attrs["Attributes"][count] == "0" for count in counts)


def visible(stack: Stack) -> int:
    attrs = stack.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def run_until(stack: Stack, executor: Any, done: Any, timeout: float) -> None:
    stop = threading.Event()
    executor.stop_event = stop
    thread = threading.Thread(target=executor.run, name="executor-loop")
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "jobs not finished in time"
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(30)


@pytest.mark.parametrize(
    "a_jobs", [40, pytest.param(200, marks=pytest.mark.slow)], ids=["40+1", "200+1"]
)
def test_one_job_of_b_starts_within_one_of_a_jobs_while_a_keeps_its_limit(
    stack: Stack, a_jobs: int
) -> None:
    a = Customer(stack, stack.customer_id)
    b = Customer(stack, "cust-b")
    executor = stack.executor(
        concurrency=WORKERS,
        customer_concurrency_overrides=json.dumps({a.customer_id: A_LIMIT}),
    )
    a_job_ids = a.queue([f"a-{i:03d}" for i in range(a_jobs)])
    b_job: dict[str, str] = {}
    b_queued_at = [0.0]
    b_lock = threading.Lock()

    began = time.time()
    first_pass = [0.0]

    def all_done() -> bool:
        # B queues its job once A's backlog is running: the executor has put each of A's
        # jobs back in A's line once (before, B's message is behind A's untouched ones: the
        # executor steps past 10 a poll, and that first pass is printed)
        with b_lock:
            if not b_job and visible(stack) < 10:
                first_pass[0] = time.time() - began
                b_job.update(b.queue(["b-000"]))
                b_queued_at[0] = time.time()
        return bool(b_job) and queue_empty(stack)

    run_until(stack, executor, all_done, timeout=60 + 2 * a_jobs)

    a_attempts = {j: attempts(stack, j) for j in a_job_ids}
    (b_job_id,) = b_job
    b_attempts = attempts(stack, b_job_id)
    a_durations = [end - start for runs in a_attempts.values() for start, end, _ in runs]
    a_peak = max_overlap([(s, e) for runs in a_attempts.values() for s, e, _ in runs])
    b_wait = b_attempts[0][0] - b_queued_at[0]
    mean_a = sum(a_durations) / len(a_durations)
    a_span = max(e for r in a_attempts.values() for _, e, _ in r) - min(
        s for r in a_attempts.values() for s, _, _ in r
    )
    print(
        f"\nfair sharing, {a_jobs} jobs of A (limit {A_LIMIT}) + 1 of B, {WORKERS} workers: "
        f"B waited {b_wait:.3f} s; A jobs took mean {mean_a:.3f} s, max {max(a_durations):.3f}"
        f" s; A's peak running {a_peak}; A's backlog took {a_span:.1f} s (at its limit with"
        f" no wait between jobs: {a_jobs * mean_a / A_LIMIT:.1f} s); the first pass over A's"
        f" backlog took {first_pass[0]:.1f} s"
    )

    # every job ran exactly once, and succeeded
    assert all(len(runs) == 1 and runs[0][2] == "succeeded" for runs in a_attempts.values())
    assert len(b_attempts) == 1 and b_attempts[0][2] == "succeeded"
    for job_id, name in {**a_job_ids, **b_job}.items():
        bucket = b.dst_bucket if job_id in b_job else a.dst_bucket
        assert stack.get_s3(bucket, f"out/{name}") == name.encode()
    # A never ran more than its limit at once (it did use it)
    assert a_peak == A_LIMIT
    # B did not wait for A's backlog: it started within one of A's jobs
    assert b_wait <= max(a_durations)
