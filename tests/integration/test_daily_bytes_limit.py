"""The bytes-per-day limit of POST /transfers on moto server (DynamoDB over HTTP), production
wiring: the projector writes the job-stats table's ``bytes_delivered`` counters from the events
of jobs delivered today, and the jobs HTTP handler (``bootstrap()`` from the environment:
FERRY_JOBS_DAILY_BYTES_LIMIT, its overrides, FERRY_JOB_STATS_TABLE) reads them with
``DynamoDailyBytes`` at admission."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from events.dynamodb import create_events_table
from ferry.api import DynamoKeyStore, issue_key, json_handler
from ferry.apigw import rest_event
from ferry.daily_bytes import DynamoDailyBytes
from ferry.names import ResourceNames
from services.jobs.adapters import create_idempotency_table
from services.jobs.bootstrap import bootstrap
from services.jobs.handlers import build_resolver
from services.projections.adapters import DynamoReadModelStore
from services.projections.application import Projector
from services.projections.samples import History
from services.projections.tables import create_read_model_tables
from tests.support.moto_server import unique_name

#: the clock of the jobs service: today is 2026-12-03 (UTC), 6 h 15 min 20 s before midnight
NOW = datetime(2026, 12, 3, 17, 44, 40, tzinfo=UTC)
SIZE = 4000


class World:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.client = boto3.client("dynamodb")
        self.names = names = ResourceNames(unique_name("daily"))
        create_read_model_tables(self.client, names)
        create_idempotency_table(self.client, names.idempotency_table)
        DynamoKeyStore.create_table(self.client, names.api_keys_table)
        # acme: 3 files of 4000 bytes delivered this morning, 1 yesterday evening; globex: 1
        h = History(start=datetime(2026, 12, 2, 20, 0, tzinfo=UTC), step=timedelta(seconds=5))
        self.endpoints = {c: (h.endpoint(c, endpoint_type="s3"), h.endpoint(c)) for c in CUSTOMERS}
        h.job("acme", *self.endpoints["acme"], size=SIZE, chunk_size=SIZE)
        h.clock = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
        for _ in range(3):
            h.job("acme", *self.endpoints["acme"], size=SIZE, chunk_size=SIZE)
        h.job("acme", *self.endpoints["acme"], outcome="failed", size=SIZE, chunk_size=SIZE)
        h.job("globex", *self.endpoints["globex"], size=SIZE, chunk_size=SIZE)
        projector = Projector(DynamoReadModelStore(self.client, names), None)
        for event in h.events:
            projector.handle(event)
        keys = DynamoKeyStore(names.api_keys_table)
        self.keys = {c: issue_key(keys, c)[0] for c in CUSTOMERS}
        for variable, value in {
            "FERRY_ENDPOINTS_TABLE": names.endpoints_table,
            "FERRY_IDEMPOTENCY_TABLE": names.idempotency_table,
            "FERRY_API_KEYS_TABLE": names.api_keys_table,
            "FERRY_JOBS_TABLE": names.jobs_table,
            "FERRY_JOB_STATS_TABLE": names.job_stats_table,
            "PERSISTENCE_MODULE": "events.dynamodb",
            "FERRY_EVENTS_TABLE": names.events_table,
        }.items():
            monkeypatch.setenv(variable, value)
        create_events_table(self.client, names.events_table)

    def handler(self) -> Any:
        return json_handler(lambda: build_resolver(bootstrap(clock=lambda: NOW)))

    def submit(self, handler: Any, customer: str, name: str) -> tuple[int, Any, dict[str, str]]:
        source, target = self.endpoints[customer]
        body = {
            "source": {"endpoint_id": source, "path": f"in/{name}"},
            "target": {"endpoint_id": target, "path": f"out/{name}"},
            "dedupe": False,
        }
        event = rest_event(
            "POST", "/transfers", body=json.dumps(body), headers={"x-api-key": self.keys[customer]}
        )
        response = handler(event, None)
        headers = {k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
        headers.update(response.get("headers") or {})
        return response["statusCode"], json.loads(response["body"]), headers


CUSTOMERS = ("acme", "globex")


@pytest.fixture
def world(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> World:
    return World(monkeypatch)


def test_the_count_is_the_bytes_delivered_today_of_that_customer_only(world: World) -> None:
    reader = DynamoDailyBytes(world.names.job_stats_table)
    assert reader.delivered_today("acme", NOW) == 3 * SIZE  # not yesterday's, not the failed
    assert reader.delivered_today("acme", NOW - timedelta(days=1)) == SIZE
    assert reader.delivered_today("globex", NOW) == SIZE
    assert reader.delivered_today("initech", NOW) == 0


def test_over_its_daily_bytes_a_customer_gets_429_with_retry_after_and_another_is_unaffected(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERRY_JOBS_DAILY_BYTES_LIMIT", str(2 * SIZE))  # globex: 1 file, under
    monkeypatch.setenv("FERRY_JOBS_DAILY_BYTES_LIMIT_OVERRIDES", json.dumps({"acme": 3 * SIZE}))
    handler = world.handler()
    status, answer, headers = world.submit(handler, "acme", "a1")
    assert status == 429, answer
    assert headers["Retry-After"] == str(6 * 3600 + 15 * 60 + 20)  # to 00:00 UTC
    assert answer["error"]["code"] == "daily_bytes_limit_reached"
    assert f"daily_bytes_limit {3 * SIZE}" in answer["error"]["message"]
    status, answer, _ = world.submit(handler, "globex", "g1")
    assert (status, answer["status"]) == (202, "QUEUED")


def test_under_its_limit_the_customer_is_accepted(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERRY_JOBS_DAILY_BYTES_LIMIT_OVERRIDES", json.dumps({"acme": 3 * SIZE + 1}))
    status, answer, _ = world.submit(world.handler(), "acme", "a1")
    assert (status, answer["status"]) == (202, "QUEUED")


def test_an_unreadable_stats_table_allows_the_job_and_logs_it(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FERRY_JOBS_DAILY_BYTES_LIMIT", "1")
    monkeypatch.setenv("FERRY_JOB_STATS_TABLE", unique_name("no-such-table"))
    with caplog.at_level(logging.WARNING, logger="ferry.daily_bytes"):
        status, answer, _ = world.submit(world.handler(), "acme", "a1")
    assert status == 202, answer  # fail open: never a refusal or a 5xx for a failed count
    assert "bytes delivered today by acme not counted" in caplog.text
