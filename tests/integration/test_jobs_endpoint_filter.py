"""GET /jobs?endpoint_id= on DynamoDB (moto server over HTTP): the sparse source and target
indexes (customer#endpoint, customer#endpoint#status) merged newest first, one composite
next_token across pages, each job once, never another customer's jobs."""

from __future__ import annotations

import random
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

EP_A = "00000000-0000-4000-8000-0000000000aa"
EP_B = "00000000-0000-4000-8000-0000000000bb"
EP_C = "00000000-0000-4000-8000-0000000000cc"
ROUTE = "00000000-0000-4000-8000-0000000000dd"
T0 = datetime(2026, 5, 6, 10, 0, tzinfo=UTC)


@pytest.fixture
def queries(aws_env: dict[str, str]) -> Queries:
    client: Any = boto3.client("dynamodb")
    names = ResourceNames(prefix=unique_name("endpointfilter"))
    create_read_model_tables(client, names)
    return Queries(DynamoReadModelStore(client, names), POPOAggregateRecorder())


def put(
    queries: Queries, n: int, customer: str, source: str, target: str, status: JobStatus
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "job_id": f"00000000-0000-4000-8000-{n:012d}",
        "customer_id": customer,
        "created_at": readmodels.timestamp(T0 + timedelta(minutes=n)),
        "source": {"endpoint_id": source, "path": f"in/{n}"},
        "target": {"endpoint_id": target, "path": f"out/{n}"},
        "version": 1,
    }
    readmodels._advance(item, JobStatus.RECEIVED)  # the projector's own key upkeep
    readmodels._advance(item, status)
    queries.store.put(JOBS, item, None)
    return item


def all_pages(queries: Queries, customer: str, limit: int, **kw: Any) -> list[str]:
    out: list[str] = []
    token = None
    while True:
        page = queries.list_jobs(customer, limit=limit, next_token=token, **kw)
        assert len(page.jobs) <= limit
        out += [j.job_id for j in page.jobs]
        token = page.next_token
        if not token:
            return out


def test_endpoint_filter_merges_both_sides_newest_first_across_pages(queries: Queries) -> None:
    rng = random.Random(14)
    jobs = []
    for n in range(30):  # A as source, as target, as both; B and C elsewhere
        source, target = rng.choice([EP_A, EP_B, EP_C]), rng.choice([EP_A, EP_B, EP_C])
        status = rng.choice([JobStatus.FAILED, JobStatus.SUCCEEDED, JobStatus.RUNNING])
        jobs.append(put(queries, n, "acme", source, target, status))
    put(queries, 60, "globex", EP_A, EP_A, JobStatus.FAILED)  # same endpoint id, another customer
    newest = jobs[::-1]
    for endpoint in (EP_A, EP_B, EP_C):
        touching = [
            j["job_id"]
            for j in newest
            if endpoint in (j["source"]["endpoint_id"], j["target"]["endpoint_id"])
        ]
        assert any(
            j["source"]["endpoint_id"] == j["target"]["endpoint_id"] == endpoint for j in newest
        )
        for limit in (1, 2, 3, 7, 100):
            assert all_pages(queries, "acme", limit, endpoint_id=endpoint) == touching, limit
        failed = [
            j["job_id"]
            for j in newest
            if j["job_id"] in touching and j["status"] == JobStatus.FAILED.value
        ]
        assert all_pages(queries, "acme", 3, endpoint_id=endpoint, status=JobStatus.FAILED) == (
            failed
        )
        since, until = T0 + timedelta(minutes=8), T0 + timedelta(minutes=21)
        assert all_pages(queries, "acme", 2, endpoint_id=endpoint, since=since, until=until) == [
            j for j in touching if 8 <= int(j[-12:]) <= 21
        ]
    assert all_pages(queries, "other", 5, endpoint_id=EP_A) == []
    assert all_pages(queries, "globex", 5, endpoint_id=EP_B) == []
    assert all_pages(queries, "globex", 5, endpoint_id=EP_A) == [
        "00000000-0000-4000-8000-000000000060"
    ]


def test_a_status_change_moves_both_endpoint_status_keys() -> None:
    item: dict[str, Any] = {
        "customer_id": "acme",
        "created_at": "x",
        "source": {"endpoint_id": EP_A, "path": "a"},
        "target": {"endpoint_id": EP_B, "path": "b"},
    }
    readmodels._advance(item, JobStatus.RECEIVED)
    readmodels._advance(item, JobStatus.FAILED)
    readmodels._advance(item, JobStatus.RUNNING)  # late: a final status is never left
    assert item["customer_source"] == f"acme#{EP_A}"
    assert item["customer_target"] == f"acme#{EP_B}"
    assert item["customer_source_status"] == f"acme#{EP_A}#FAILED"
    assert item["customer_target_status"] == f"acme#{EP_B}#FAILED"
    loop: dict[str, Any] = {**item, "target": {"endpoint_id": EP_A, "path": "b"}}
    for key in ("status", "customer_target", "customer_target_status"):
        del loop[key]
    readmodels._advance(loop, JobStatus.QUEUED)
    assert loop["customer_source_status"] == f"acme#{EP_A}#QUEUED"
    assert "customer_target" not in loop  # from an endpoint to itself: the source side only


def test_bad_endpoint_id_route_and_foreign_tokens(queries: Queries) -> None:
    with pytest.raises(Invalid) as bad:
        queries.list_jobs("acme", endpoint_id="not-a-uuid")
    assert bad.value.field == "endpoint_id"
    with pytest.raises(BadRequest) as both:
        queries.list_jobs("acme", endpoint_id=EP_A, route_id=ROUTE)
    assert both.value.field == "endpoint_id"
    for n in range(6):
        put(
            queries,
            n,
            "acme",
            EP_A if n % 2 else EP_B,
            EP_A if n % 2 == 0 else EP_C,
            JobStatus.FAILED,
        )
    token = queries.list_jobs("acme", endpoint_id=EP_A, limit=2).next_token
    plain = queries.list_jobs("acme", limit=2).next_token
    assert token and plain
    for customer, kw in [
        ("globex", {"endpoint_id": EP_A}),  # another customer's partition
        ("acme", {"endpoint_id": EP_B}),  # another endpoint's
        ("acme", {"endpoint_id": EP_A, "status": JobStatus.FAILED}),  # the status indexes'
        ("acme", {}),  # an endpoint token on the plain list
        ("acme", {"route_id": ROUTE}),
    ]:
        with pytest.raises(BadRequest) as foreign:
            queries.list_jobs(customer, limit=2, next_token=token, **kw)
        assert foreign.value.field == "next_token"
    with pytest.raises(BadRequest):
        queries.list_jobs("acme", endpoint_id=EP_A, limit=2, next_token=plain)
