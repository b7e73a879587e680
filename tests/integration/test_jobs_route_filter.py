"""GET /jobs?route_id= on DynamoDB (moto server over HTTP): the sparse customer#route and
customer#route#status indexes, newest first across pages, never another customer's jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from eventsourcing.popo import POPOAggregateRecorder

from events.contract import JobStatus
from ferry.errors import BadRequest, Invalid
from ferry.names import ResourceNames
from services.projections import readmodels
from services.projections.adapters import DynamoReadModelStore
from services.projections.queries import Queries
from services.projections.readmodels import JOBS
from services.projections.tables import create_read_model_tables
from tests.support.moto_server import unique_name

ROUTE_A = "00000000-0000-4000-8000-0000000000aa"
ROUTE_B = "00000000-0000-4000-8000-0000000000bb"
T0 = datetime(2026, 5, 6, 10, 0, tzinfo=UTC)


@pytest.fixture
def queries(aws_env: dict[str, str]) -> Queries:
    client: Any = boto3.client("dynamodb")
    names = ResourceNames(prefix=unique_name("routefilter"))
    create_read_model_tables(client, names)
    return Queries(DynamoReadModelStore(client, names), POPOAggregateRecorder())


def put(queries: Queries, n: int, customer: str, route: str | None, status: JobStatus) -> str:
    job_id = f"00000000-0000-4000-8000-{n:012d}"
    item: dict[str, Any] = {
        "job_id": job_id,
        "customer_id": customer,
        "created_at": readmodels.timestamp(T0 + timedelta(minutes=n)),
        "route_id": route,
        "version": 1,
    }
    readmodels._advance(item, JobStatus.RECEIVED)  # the projector's own key upkeep
    readmodels._advance(item, status)
    queries.store.put(JOBS, {k: v for k, v in item.items() if v is not None}, None)
    return job_id


def all_pages(queries: Queries, customer: str, **kw: Any) -> list[str]:
    out: list[str] = []
    token = None
    while True:
        page = queries.list_jobs(customer, limit=3, next_token=token, **kw)
        out += [j.job_id for j in page.jobs]
        token = page.next_token
        if not token:
            return out


def test_route_filter_pages_newest_first_and_combines_with_status(queries: Queries) -> None:
    route_a, failed_a = [], []
    for n in range(20):
        route = ROUTE_A if n % 2 == 0 else (ROUTE_B if n % 3 == 0 else None)
        status = JobStatus.FAILED if n % 4 == 0 else JobStatus.SUCCEEDED
        job_id = put(queries, n, "acme", route, status)
        if route == ROUTE_A:
            route_a.append(job_id)
            if status is JobStatus.FAILED:
                failed_a.append(job_id)
    put(queries, 50, "globex", ROUTE_A, JobStatus.FAILED)  # same route id, another customer
    assert all_pages(queries, "acme", route_id=ROUTE_A) == route_a[::-1]
    assert all_pages(queries, "acme", route_id=ROUTE_A, status=JobStatus.FAILED) == failed_a[::-1]
    assert all_pages(queries, "globex", route_id=ROUTE_B) == []
    assert all_pages(queries, "other", route_id=ROUTE_A) == []
    since = T0 + timedelta(minutes=10)
    assert all_pages(queries, "acme", route_id=ROUTE_A, since=since) == [
        j for j in route_a[::-1] if int(j[-12:]) >= 10
    ]


def test_a_status_change_moves_the_route_status_key(queries: Queries) -> None:
    item: dict[str, Any] = {"customer_id": "acme", "created_at": "x", "route_id": ROUTE_A}
    readmodels._advance(item, JobStatus.RECEIVED)
    readmodels._advance(item, JobStatus.FAILED)
    readmodels._advance(item, JobStatus.RUNNING)  # late: a final status is never left
    assert item["customer_route_status"] == f"acme#{ROUTE_A}#FAILED"
    assert item["customer_route"] == f"acme#{ROUTE_A}"


def test_bad_route_id_and_foreign_tokens(queries: Queries) -> None:
    with pytest.raises(Invalid) as bad:
        queries.list_jobs("acme", route_id="not-a-uuid")
    assert bad.value.field == "route_id"
    for n in range(5):
        put(queries, n, "acme", ROUTE_A, JobStatus.SUCCEEDED)
    token = queries.list_jobs("acme", route_id=ROUTE_A, limit=2).next_token
    assert token
    with pytest.raises(BadRequest):
        queries.list_jobs("globex", route_id=ROUTE_A, limit=2, next_token=token)
    with pytest.raises(BadRequest):
        queries.list_jobs("acme", limit=2, next_token=token)  # a route token on the plain list
