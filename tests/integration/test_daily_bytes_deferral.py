"""The bytes-per-day limit in the executor (services/executor/daily_budget.py) on moto server: the
real executor (``Executor.handle`` on real SQS messages) holds a job of a customer whose jobs
delivered its daily bytes today — no lease, no attempt, the message out of sight until 00:00
UTC — while another customer's job runs; after midnight the held job runs as attempt 1. The
day is an injected clock set a few seconds before midnight (the message's real visibility is
those few seconds): nobody sleeps until midnight. Today's bytes are the projector's counters in
a real job-stats table."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from events.contract import Flow
from ferry.names import ResourceNames
from services.executor.daily_budget import FRESH_COPY_AT
from services.executor.worker import Executor
from services.projections.adapters import DynamoReadModelStore
from services.projections.application import Projector
from services.projections.samples import History
from services.projections.tables import create_read_model_tables
from tests.integration.executor_harness import Stack
from tests.integration.test_fair_sharing import Customer
from tests.support.moto_server import unique_name

pytestmark = pytest.mark.usefixtures("aws_env")

DELIVERED = 3 * 1024 * 1024  # what cust-test's jobs delivered on 2026-12-03 (one file)
LIMIT = 1024 * 1024


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def stack(aws_env: dict[str, str]) -> Stack:
    return Stack(aws_env, None, None)


def stats_table(customer: str) -> str:
    """A job-stats table written by the projector: the customer delivered DELIVERED bytes on
    2026-12-03 (UTC)."""
    ddb = boto3.client("dynamodb")
    names = ResourceNames(unique_name("dbs"))
    create_read_model_tables(ddb, names)
    h = History(start=datetime(2026, 12, 3, 8, 0, tzinfo=UTC))
    h.job(customer, h.endpoint(customer, endpoint_type="s3"), h.endpoint(customer), size=DELIVERED)
    projector = Projector(DynamoReadModelStore(ddb, names), None)
    for event in h.events:
        projector.handle(event)
    return names.job_stats_table


def executor(stack: Stack, clock: Clock, **overrides: Any) -> Executor:
    table = stats_table(stack.customer_id)
    built = stack.executor(
        daily_bytes_limit=LIMIT, job_stats_table=table, daily_bytes_recheck_seconds=1, **overrides
    )
    built.daily_budget.clock = clock
    return built


def s3_job(stack: Stack, name: str) -> str:
    stack.s3.put_object(Bucket=stack.src_bucket, Key=f"in/{name}", Body=name.encode() * 100)
    return stack.queue_job(
        Flow.S3_TO_S3, (stack.s3_src, f"in/{name}"), (stack.s3_dst, f"out/{name}")
    )


def test_a_customer_over_its_daily_bytes_waits_for_midnight_without_an_attempt(
    stack: Stack,
) -> None:
    clock = Clock(datetime(2026, 12, 3, 23, 59, 56, tzinfo=UTC))  # 4 s to midnight
    ex = executor(stack, clock)
    held = s3_job(stack, "held.txt")
    message = stack.receive()
    assert message is not None
    # When the executor gets the job of a customer over its budget
    assert ex.handle(message) == "over-budget"
    # Then no lease, no attempt, nothing written for the job; the message is out of sight
    assert stack.types(held) == []
    assert stack.receive(wait=1) is None
    # and another customer's job runs meanwhile
    other = Customer(stack, "cust-other")
    job_id, body = other.job_message("other.txt")
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)
    ran = stack.drain(ex, until=lambda: stack.released(job_id) is not None)
    assert [r for r in ran if r != "over-budget"] == ["succeeded"]  # (held again if back)
    assert stack.types(held) == []  # still held: the message is not back before midnight
    # When the day changes (the clock; the message's visibility ends at the same time)
    clock.now = datetime(2026, 12, 4, 0, 0, 1, tzinfo=UTC)
    results = stack.drain(ex, timeout=30)
    # Then the held job runs, as its first attempt, and delivers its file
    assert results == ["succeeded"]
    leases = [e for e in stack.events(held) if e.detail_type() == "LeaseAcquired"]
    assert [e.attempt for e in leases] == [1]
    assert stack.get_s3(stack.dst_bucket, "out/held.txt") == b"held.txt" * 100
    assert stack.queue_empty()


def test_under_its_daily_bytes_the_job_runs_at_once(stack: Stack) -> None:
    ex = executor(stack, Clock(datetime(2026, 12, 3, 12, 0, tzinfo=UTC)))
    ex.daily_budget.limit_of = lambda customer: DELIVERED + 1
    job_id = s3_job(stack, "runs.txt")
    assert stack.drain(ex) == ["succeeded"]
    assert stack.released(job_id) == "succeeded"


def test_a_held_message_received_often_is_replaced_by_a_fresh_copy(stack: Stack) -> None:
    """Holding by visibility adds a receive each time (the DLQ takes a message at 10): from
    FRESH_COPY_AT receives the held job's message is a fresh copy, receive count 1."""
    clock = Clock(datetime(2026, 12, 3, 23, 59, 58, tzinfo=UTC))  # copy visible in 2 s
    ex = executor(stack, clock)
    held = s3_job(stack, "often.txt")
    for _ in range(FRESH_COPY_AT - 1):  # received (and given back) before
        [first] = ex.queue.receive(1, 1)
        ex.queue.extend(first, 0)
    [message] = ex.queue.receive(1, 1)
    assert message.receive_count == FRESH_COPY_AT
    assert ex.handle(message) == "over-budget"
    deadline = time.monotonic() + 10
    copies = []
    while not copies and time.monotonic() < deadline:
        copies = ex.queue.receive(1, 1)
    [copy] = copies
    assert copy.message_id != message.message_id and copy.receive_count == 1
    assert copy.body == message.body
    assert stack.types(held) == []
    clock.now += timedelta(seconds=10)  # the new day
    ex.queue.extend(copy, 0)
    assert stack.drain(ex, timeout=30) == ["succeeded"]
    assert stack.queue_empty()  # the original was deleted: one message, one job
