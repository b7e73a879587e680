"""GET /stats/hourly's query on DynamoDB (moto server over HTTP): the customer + created_at index,
the window only, four attributes only, the newest MAX_JOBS at most."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from ferry.names import ResourceNames
from services.projections import readmodels, stats
from services.projections.adapters import DynamoReadModelStore
from services.projections.readmodels import JOBS
from services.projections.store import IndexQuery
from services.projections.tables import JOBS_CUSTOMER_CREATED_INDEX, create_read_model_tables
from tests.support.moto_server import unique_name


@pytest.fixture
def store(aws_env: dict[str, str]) -> DynamoReadModelStore:
    client: Any = boto3.client("dynamodb")
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


def test_hourly_stats_on_dynamodb(store: DynamoReadModelStore, monkeypatch: Any) -> None:
    now = datetime(2026, 5, 6, 10, 30, tzinfo=UTC)
    for n in range(12):
        put(
            store,
            n,
            "acme",
            now - timedelta(minutes=10 * n),
            "FAILED" if n % 4 == 0 else "SUCCEEDED",
        )
    put(store, 99, "acme", now - timedelta(hours=30), "SUCCEEDED")  # outside the window
    put(store, 98, "globex", now - timedelta(minutes=1), "SUCCEEDED")  # another customer
    result = stats.hourly_stats(store, "acme", hours=24, now=now)
    assert result.total_jobs == 12 and result.failed_jobs == 3 and not result.truncated
    assert result.bytes_moved == sum(1000 + n for n in range(12))
    monkeypatch.setattr(stats, "MAX_JOBS", 5)
    monkeypatch.setattr(stats, "PAGE", 5)
    capped = stats.hourly_stats(store, "acme", hours=24, now=now)
    assert capped.truncated and capped.total_jobs == 5


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
