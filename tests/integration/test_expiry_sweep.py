"""The expired-item sweep (events/expiry.py) against moto server: the idempotency table (keys and
the slow watch) and the publication claims, which have no TTL under MRSC. Written by the real
stores (DynamoIdempotencyStore, DynamoSlowWatch, Publications) with clocks in the past; a key
claimed again while a sweep runs is never deleted (a real race of threads)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from events import expiry
from events.publications import Publications, claim_key, create_publications_table
from ferry import names as n
from services.jobs.adapters import DynamoIdempotencyStore, DynamoSlowWatch, create_idempotency_table
from services.jobs.ports import IdempotencyRecord
from tests.support.moto_server import unique_name

DAY = 86400.0


def record(job: str) -> IdempotencyRecord:
    return IdempotencyRecord(job_id=job, request_hash="h", spec={"job": job})


def keys(ddb: Any, table: str, attr: str) -> set[str]:
    found: set[str] = set()
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        found |= {i[attr]["S"] for i in page["Items"]}
        if not page.get("LastEvaluatedKey"):
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture
def ddb(aws_env: dict[str, str]) -> Any:
    return boto3.client("dynamodb")


@pytest.fixture
def idempotency(ddb: Any) -> str:
    table = unique_name("sweep-idem")
    create_idempotency_table(ddb, table)
    return table


def store(table: str, at: float) -> DynamoIdempotencyStore:
    return DynamoIdempotencyStore(table, clock=lambda: at)


def test_expired_idempotency_keys_and_slow_minutes_go_live_ones_and_the_cursor_stay(
    ddb: Any, idempotency: str
) -> None:
    now = time.time()
    old, fresh = store(idempotency, now - 2 * DAY), store(idempotency, now)
    for i in range(5):
        old.claim(f"old-{i}", record(f"job-old-{i}"), ttl_seconds=DAY)  # expired a day ago
        fresh.claim(f"new-{i}", record(f"job-new-{i}"), ttl_seconds=DAY)
    # within the grace: expired 10 s ago, kept this time
    store(idempotency, now - DAY - 10).claim("edge", record("job-edge"), ttl_seconds=DAY)
    watch = DynamoSlowWatch(idempotency, ddb)
    watch.watch("job-late", datetime.now(UTC) - timedelta(days=20))  # expired 6 days ago
    watch.watch("job-due", datetime.now(UTC) + timedelta(minutes=5))
    watch.checked_until(123)  # the cursor: no expiry attribute

    result = expiry.sweep(ddb, expiry.idempotency_target(idempotency), now=now)

    assert (result.expired, result.deleted, result.kept, result.errors) == (6, 6, 0, [])
    assert result.complete and result.scanned == 14
    left = keys(ddb, idempotency, "id")
    assert {k for k in left if not k.startswith("slow-watch#")} == {
        *(f"new-{i}" for i in range(5)),
        "edge",
    }
    assert DynamoSlowWatch.CURSOR in left
    assert len([k for k in left if k.startswith("slow-watch#")]) == 2  # the due minute, cursor
    # a live key still answers with its job; a swept key is claimed afresh
    assert fresh.claim("new-0", record("other"), ttl_seconds=DAY) == (record("job-new-0"), False)
    assert fresh.claim("old-0", record("again"), ttl_seconds=DAY) == (record("again"), True)


def test_expired_publication_claims_go_unless_they_name_a_missed_bus(ddb: Any) -> None:
    table = unique_name("sweep-pub")
    create_publications_table(ddb, table)
    now = time.time()
    old = Publications(ddb, table, "us-east-1", clock=lambda: now - 4 * DAY)
    fresh = Publications(ddb, table, "us-east-1", clock=lambda: now)
    published = old.claim_all([claim_key("job-a", v) for v in range(1, 5)])
    old.mark_published(published[:2])
    old.mark_published(published[2:3], missed_buses=["arn:aws:events:us-east-2:1:event-bus/x"])
    fresh.claim_all([claim_key("job-b", v) for v in range(1, 4)])

    result = expiry.sweep(ddb, expiry.publications_target(table), now=now)

    assert (result.expired, result.deleted, result.kept) == (3, 3, 0)
    assert keys(ddb, table, "pk") == {
        claim_key("job-a", 3),
        *(claim_key("job-b", v) for v in (1, 2, 3)),
    }
    # a swept key can be claimed again (streams keep records 24 h: it never is, in practice)
    assert fresh.claim(claim_key("job-a", 1)).verdict == "won"


class ClaimAfterScan:
    """The real client, except that after each Scan page ``claim`` runs (before the sweep's
    deletes): a key renewed between the scan and the delete."""

    def __init__(self, client: Any, claim: Any) -> None:
        self._client, self._claim = client, claim

    def scan(self, **kwargs: Any) -> Any:
        page = self._client.scan(**kwargs)
        self._claim()
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_key_claimed_again_between_the_scan_and_the_delete_is_kept(
    ddb: Any, idempotency: str
) -> None:
    now = time.time()
    store(idempotency, now - 2 * DAY).claim("k", record("job-1"), ttl_seconds=DAY)
    live = DynamoIdempotencyStore(idempotency)

    def reclaim() -> None:
        assert live.claim("k", record("job-2"), ttl_seconds=DAY) == (record("job-2"), True)

    result = expiry.sweep(ClaimAfterScan(ddb, reclaim), expiry.idempotency_target(idempotency))

    assert (result.expired, result.deleted, result.kept) == (1, 0, 1)
    assert live.claim("k", record("job-3"), ttl_seconds=DAY) == (record("job-2"), False)


def test_two_sweepers_racing_claimers_delete_every_expired_key_and_no_renewed_one(
    ddb: Any, idempotency: str
) -> None:
    now = time.time()
    old = store(idempotency, now - 2 * DAY)
    for i in range(120):
        old.claim(f"k{i}", record(f"old-{i}"), ttl_seconds=DAY)
    live = DynamoIdempotencyStore(idempotency)
    renewed = [f"k{i}" for i in range(0, 120, 2)]
    start = threading.Barrier(3)
    results: list[expiry.SweepResult] = []

    def sweeper() -> None:
        start.wait()
        results.append(
            expiry.sweep(ddb, expiry.idempotency_target(idempotency), page_size=10, threads=4)
        )

    def claimer() -> None:
        start.wait()
        for key in renewed:
            live.claim(key, record(f"new-{key}"), ttl_seconds=DAY)

    threads = [threading.Thread(target=f) for f in (sweeper, sweeper, claimer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert keys(ddb, idempotency, "id") == set(renewed)  # every renewed key, nothing else
    for key in renewed:  # and each still answers with its new job
        assert live.claim(key, record("x"), ttl_seconds=DAY)[0] == record(f"new-{key}")
    assert sum(r.deleted for r in results) + sum(r.kept for r in results) >= 60
    assert all(not r.errors for r in results)


def test_a_sweep_stopped_at_its_deadline_says_so_and_the_next_run_finishes(
    ddb: Any, idempotency: str
) -> None:
    now = time.time()
    old = store(idempotency, now - 2 * DAY)
    for i in range(30):
        old.claim(f"k{i}", record(f"old-{i}"), ttl_seconds=DAY)
    ticks = iter(range(1000))
    target = expiry.idempotency_target(idempotency)

    first = expiry.sweep(
        ddb, target, now=now, page_size=10, deadline=1, clock=lambda: float(next(ticks))
    )
    assert not first.complete and 0 < first.deleted < 30
    second = expiry.sweep(ddb, target, now=now, page_size=10)
    assert second.complete and first.deleted + second.deleted == 30
    assert keys(ddb, idempotency, "id") == set()


def test_the_lambda_sweeps_the_tables_its_environment_names(
    ddb: Any, idempotency: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    publications = unique_name("sweep-pub")
    create_publications_table(ddb, publications)
    now = time.time()
    store(idempotency, now - 2 * DAY).claim("gone", record("j"), ttl_seconds=DAY)
    Publications(ddb, publications, "us-east-1", clock=lambda: now - 4 * DAY).claim("p#1")
    monkeypatch.setenv(n.ENV_IDEMPOTENCY_TABLE, idempotency)
    monkeypatch.setenv(n.ENV_PUBLICATIONS_TABLE, publications)

    summary = expiry.handler({}, SimpleNamespace(get_remaining_time_in_millis=lambda: 60_000))

    assert summary == {
        idempotency: {"deleted": 1, "kept": 0, "complete": True},
        publications: {"deleted": 1, "kept": 0, "complete": True},
    }
    assert keys(ddb, idempotency, "id") == keys(ddb, publications, "pk") == set()


def test_the_local_stand_in_refuses_to_run_without_a_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(n.ENV_IDEMPOTENCY_TABLE, raising=False)
    monkeypatch.delenv(n.ENV_PUBLICATIONS_TABLE, raising=False)
    with pytest.raises(SystemExit) as exit_:
        expiry.main(["--once"])
    assert exit_.value.code == 2
    assert n.ENV_IDEMPOTENCY_TABLE in capsys.readouterr().err
