"""GET /stats/hourly on DynamoDB (moto server over HTTP): the projector's hourly counters, written
in one transaction with each job item (equal to a recount of the items, also with two projectors
racing on the same events), and an index query of some attributes only."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from ferry.names import ResourceNames
from services.projections import readmodels, stats
from services.projections.adapters import DynamoReadModelStore
from services.projections.application import ConcurrentUpdate, Projector
from services.projections.readmodels import ENDPOINTS, JOBS
from services.projections.samples import History
from services.projections.store import IndexQuery
from services.projections.tables import JOBS_CUSTOMER_CREATED_INDEX, create_read_model_tables
from tests.support.moto_server import unique_name


@pytest.fixture
def client(aws_env: dict[str, str]) -> Any:
    return boto3.client("dynamodb")


@pytest.fixture
def store(client: Any) -> DynamoReadModelStore:
    names = ResourceNames(prefix=unique_name("stats"))
    create_read_model_tables(client, names)
    return DynamoReadModelStore(client, names)


def put(store: DynamoReadModelStore, n: int, customer: str, at: datetime, status: str) -> None:
    store.put(
        JOBS,
        {
            "job_id": f"00000000-0000-4000-8000-{n:012d}",
            "customer_id": customer,
            "customer_status": readmodels.customer_status(customer, status),
            "created_at": readmodels.timestamp(at),
            "status": status,
            "bytes_committed": 1000 + n,
            "options": {"verify": "digest"},
            "version": 1,
        },
        None,
    )


def recount(
    store: DynamoReadModelStore, customer: str, now: datetime, hours: int = 24
) -> tuple[int, int, int]:
    """(jobs, failed, bytes) of the customer's job items created in the last ``hours``."""
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    mine = [
        i
        for i in store.scan(JOBS)
        if i.get("customer_id") == customer
        and i.get("status")
        and datetime.fromisoformat(i["created_at"]) >= first
    ]
    failed = sum(1 for i in mine if i["status"] == "FAILED")
    return len(mine), failed, sum(stats.bytes_moved(i) for i in mine)


def history(now: datetime) -> History:
    h = History(start=now - timedelta(hours=30), step=timedelta(minutes=2))
    src, dst = h.endpoint("acme", endpoint_type="s3"), h.endpoint("acme")
    for n in range(24):
        h.job("acme", src, dst, outcome=("succeeded", "failed", "queued")[n % 3], size=n * 999 + 1)
    other = h.endpoint("globex")
    h.job("globex", other, other)
    return h


def test_the_projector_keeps_the_hourly_counters_in_its_writes(
    store: DynamoReadModelStore,
) -> None:
    now = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
    h = history(now)
    projector = Projector(store, None)
    for event in h.events:
        projector.handle(event)
    result = stats.hourly_stats(store, "acme", hours=24, now=now)
    assert (result.total_jobs, result.failed_jobs, result.bytes_moved) == recount(
        store, "acme", now
    )
    assert 0 < result.total_jobs < 24  # some of the jobs are older than the window
    rows = store.stats_rows("acme", "2026-11-21T00", "2026-11-23T23")
    assert rows and {r["customer_id"] for r in rows} == {"acme"}
    globex = stats.hourly_stats(store, "globex", hours=48, now=now)
    assert (globex.total_jobs, globex.failed_jobs, globex.bytes_moved) == (1, 0, 3 * 1024 * 1024)


def test_two_racing_projectors_count_every_change_once(
    store: DynamoReadModelStore, client: Any
) -> None:
    """Two consumers apply the same events at once (an SQS redelivery while the first is still
    running): each conditional write either wins with its counters or loses without them."""
    now = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
    h = history(now)
    errors: list[BaseException] = []
    outcomes: Counter[str] = Counter()
    gate = threading.Barrier(2)

    def consume() -> None:
        racer = LosingCounted(client, None, **store_tables(store))
        projector = Projector(racer, None)
        gate.wait()
        try:
            for event in h.events:
                outcomes[projector.handle(event)] += 1
        except BaseException as error:  # reported below
            errors.append(error)
        outcomes["lost"] += racer.lost

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    result = stats.hourly_stats(store, "acme", hours=48, now=now)
    assert (result.total_jobs, result.failed_jobs, result.bytes_moved) == recount(
        store, "acme", now, 48
    )
    assert result.total_jobs == 24
    print(f"race: {dict(outcomes)}")
    assert outcomes["duplicate"] > 0  # the two did interleave (each found the other's writes)


class LosingCounted(DynamoReadModelStore):
    lost = 0

    def put(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().put(*args, **kwargs)
        except ConcurrentUpdate:
            self.lost += 1
            raise


def store_tables(store: DynamoReadModelStore) -> dict[str, str]:
    return {
        "endpoints_table": store.tables[ENDPOINTS],
        "jobs_table": store.tables[JOBS],
        "job_stats_table": store.stats_table,
    }


def test_an_index_query_can_ask_for_some_attributes(store: DynamoReadModelStore) -> None:
    put(store, 1, "acme", datetime.now(UTC), "SUCCEEDED")
    query = IndexQuery(
        kind=JOBS,
        index=JOBS_CUSTOMER_CREATED_INDEX,
        partition_attribute="customer_id",
        partition_value="acme",
        limit=10,
        attributes=("status",),
    )
    [item] = store.query(query).items
    assert set(item) == {"job_id", "customer_id", "created_at", "status"}
