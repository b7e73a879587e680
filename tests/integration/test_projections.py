"""Projections against moto server over HTTP: tables + GSIs, the SQS consumer, rebuild."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime
from typing import Any

import boto3
import pytest

from events.contract import FerryEvent, JobStatus, RouteCreated
from events.dynamodb import DynamoDBAggregateRecorder, create_events_table
from events.dynamodb_values import deserialize
from ferry.names import ResourceNames
from services.projections import consumer
from services.projections.adapters import DynamoReadModelStore
from services.projections.application import Projector, Queries
from services.projections.bootstrap import ProjectionsContext
from services.projections.readmodels import ENDPOINTS, JOBS, KEY_ATTRIBUTE
from services.projections.rebuild import main as rebuild_main
from services.projections.rebuild import rebuild, stream_ids
from services.projections.samples import History, to_stored
from services.projections.tables import create_read_model_tables, delete_read_model_tables
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.moto_server import unique_name
from tests.support.sqs import sqs_batch


@pytest.fixture
def names(aws_env: dict[str, str]) -> ResourceNames:
    return ResourceNames(prefix=unique_name("proj"))


@pytest.fixture
def client(aws_env: dict[str, str]) -> Any:
    return boto3.client("dynamodb")


def write_history(client: Any, names: ResourceNames, history: History) -> DynamoDBAggregateRecorder:
    create_events_table(client, names.events_table)
    recorder = DynamoDBAggregateRecorder(client, names.events_table)
    by_stream: dict[str, list[FerryEvent]] = defaultdict(list)
    for event in history.events:
        by_stream[event.stream_id].append(event)
    for events in by_stream.values():
        recorder.insert_events([to_stored(e) for e in events])
    return recorder


def sample_history() -> History:
    h = History()
    src = h.endpoint("acme", endpoint_type="s3")
    dst = h.endpoint_lifecycle("acme")
    h.job("acme", src, dst)
    h.job("acme", src, dst, outcome="failed")
    h.job("acme", src, dst, outcome="cancelled")
    h.job("acme", src, dst, outcome="queued")
    other = h.endpoint("globex")
    h.job("globex", other, other, outcome="failed")
    route = "5d3c2b1a-0000-4000-8000-000000000001"  # routes have their own read model
    h.add(RouteCreated, route, "acme", route, route_id=route, definition={}, actor="key-1")
    return h


def snapshot(store: DynamoReadModelStore) -> dict[str, dict[str, Any]]:
    """Every read-model item, and the hourly counters (those not at 0: a live projection keeps
    a counter a job has left, at 0; a rebuild never wrote it)."""
    items = {
        kind: {item[KEY_ATTRIBUTE[kind]]: item for item in store.scan(kind)}
        for kind in (ENDPOINTS, JOBS)
    }
    rows = store.client.scan(TableName=store.stats_table, ConsistentRead=True)["Items"]
    counters = {}
    for row in map(deserialize, rows):
        key = (row.pop("customer_id"), row.pop("hour_shard"))
        counters[key] = {c: v for c, v in row.items() if v}
    assert counters, "no hourly counters were written"
    return {**items, "stats": counters}


def test_tables_and_gsis_are_created_and_deleted(client: Any, names: ResourceNames) -> None:
    assert sorted(create_read_model_tables(client, names)) == sorted(
        [names.endpoints_table, names.jobs_table, names.job_stats_table]
    )
    assert create_read_model_tables(client, names) == []  # idempotent
    jobs = client.describe_table(TableName=names.jobs_table)["Table"]
    indexes = {
        i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]]
        for i in jobs["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        "customer-created-index": ["customer_id", "created_at"],
        "customer-status-index": ["customer_status", "created_at"],
        "customer-route-index": ["customer_route", "created_at"],
        "customer-route-status-index": ["customer_route_status", "created_at"],
        "customer-source-index": ["customer_source", "created_at"],
        "customer-source-status-index": ["customer_source_status", "created_at"],
        "customer-target-index": ["customer_target", "created_at"],
        "customer-target-status-index": ["customer_target_status", "created_at"],
    }
    endpoints = client.describe_table(TableName=names.endpoints_table)["Table"]
    assert [k["AttributeName"] for k in endpoints["GlobalSecondaryIndexes"][0]["KeySchema"]] == [
        "customer_id",
        "created_at",
    ]
    assert sorted(delete_read_model_tables(client, names)) == sorted(
        [names.endpoints_table, names.jobs_table, names.job_stats_table]
    )
    assert delete_read_model_tables(client, names) == []


def test_consumer_then_rebuild_gives_identical_read_models(
    client: Any, names: ResourceNames, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    history = sample_history()
    recorder = write_history(client, names, history)
    create_read_model_tables(client, names)

    # Deliveries as SQS would make them: out of order, with duplicates, in batches of 10,
    # plus a poison message. The first batch goes through the production entry point
    # (bootstrap from the environment, PERSISTENCE_MODULE=events.dynamodb).
    rng = random.Random(7)
    deliveries: list[FerryEvent | str] = [
        *history.events,
        *rng.sample(history.events, 25),
    ]
    rng.shuffle(deliveries)
    deliveries.insert(4, "{not json")
    for key, value in {
        "PERSISTENCE_MODULE": "events.dynamodb",
        "FERRY_EVENTS_TABLE": names.events_table,
        "FERRY_ENDPOINTS_TABLE": names.endpoints_table,
        "FERRY_JOBS_TABLE": names.jobs_table,
        "FERRY_API_KEYS_TABLE": names.api_keys_table,
    }.items():
        monkeypatch.setenv(key, value)
    consumer.handler.built.reset()  # a cold start with this environment
    result = consumer.handler(sqs_batch(deliveries[:10]), None)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m4"}]}

    store = DynamoReadModelStore(client, names)
    handle = consumer.make_handler(
        ProjectionsContext(Projector(store, recorder), Queries(store, recorder), InMemoryKeyStore())
    )
    for start in range(10, len(deliveries), 10):
        assert handle(sqs_batch(deliveries[start : start + 10]), None) == {"batchItemFailures": []}

    live = snapshot(store)
    assert len(live[ENDPOINTS]) == 3 and len(live[JOBS]) == 5
    statuses = sorted(j["status"] for j in live[JOBS].values())
    assert statuses == ["CANCELLED", "FAILED", "FAILED", "QUEUED", "SUCCEEDED"]

    # The same items as a clean in-order projection (no catch-up needed there).
    assert len(list(stream_ids(client, names.events_table))) == len(
        {e.stream_id for e in history.events if not isinstance(e, RouteCreated)}
    )

    report = rebuild(names, client, recorder)
    assert report.events == len(history.events) - 1  # all but the route's
    assert snapshot(store) == live

    # The command line (`python -m services.projections.rebuild`, `ferry projections rebuild`).
    assert rebuild_main([]) == 0
    assert snapshot(store) == live

    # The GSIs answer the queries after the rebuild.
    queries = Queries(store, recorder)
    every = queries.list_jobs("acme", limit=100)
    assert len(every.jobs) == 4
    created = [j.created_at or "" for j in every.jobs]
    assert created == sorted(created, reverse=True)
    first = queries.list_jobs("acme", limit=2)
    rest = queries.list_jobs("acme", limit=2, next_token=first.next_token)
    assert [j.job_id for j in first.jobs + rest.jobs] == [j.job_id for j in every.jobs]
    failed = queries.list_jobs("acme", status=JobStatus.FAILED)
    assert [j.status for j in failed.jobs] == ["FAILED"]
    window = queries.list_jobs(
        "acme", since=datetime.fromisoformat(every.jobs[2].created_at or ""), limit=100
    )
    assert [j.job_id for j in window.jobs] == [j.job_id for j in every.jobs[:3]]
    # The endpoint indexes too: rebuild refolds every job, so older jobs get their keys.
    for side in ("source", "target"):
        [endpoint_id] = {loc.endpoint_id for j in every.jobs if (loc := getattr(j, side))}
        by_endpoint = queries.list_jobs("acme", endpoint_id=endpoint_id, limit=100)
        assert [j.job_id for j in by_endpoint.jobs] == [j.job_id for j in every.jobs]
        failed_there = queries.list_jobs("acme", endpoint_id=endpoint_id, status=JobStatus.FAILED)
        assert [j.job_id for j in failed_there.jobs] == [j.job_id for j in failed.jobs]
        assert queries.list_jobs("globex", endpoint_id=endpoint_id).jobs == []
    assert [e.status for e in queries.list_endpoints("acme", 10, None).endpoints] == [
        "ACTIVE",
        "ACTIVE",
    ]
