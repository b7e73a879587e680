"""The per-customer bytes-per-day limit (issue 15, fair sharing; ferry/daily_bytes.py): the pure
decision and its UTC day, the settings, the projector's ``bytes_delivered`` counter (charged to
the hour a job was delivered, not requested), and POST /transfers through the real resolver on
in-memory adapters (today's bytes read from the projector's own counters rows)."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from events.contract import Direction, EndpointStatus, EndpointType, FerryEvent
from ferry import cli
from ferry.api import issue_key
from ferry.apigw import rest_event
from ferry.daily_bytes import (
    DELIVERED_COUNTER,
    daily_bytes_refusal,
    day_of,
    day_row_range,
    limit_of,
    seconds_until_next_utc_day,
)
from services.jobs.application import TransferRequest
from services.jobs.bootstrap import bootstrap
from services.jobs.handlers import build_resolver
from services.jobs.ports import EndpointInfo
from services.jobs.settings import JobsSettings
from services.projections.application import Projector
from services.projections.readmodels import JOBS
from services.projections.samples import History
from services.projections.stats import SHARDS, hour_of, row_key
from tests.support.fakes.jobs import InMemoryEndpointDirectory, InMemoryIdempotencyStore
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.fakes.projections import InMemoryReadModelStore
from tests.unit.test_job_stats import live

NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- the decision


def test_under_the_limit_goes_ahead_at_or_over_it_is_refused_until_midnight() -> None:
    assert daily_bytes_refusal(999, 1000, NOON) is None
    at = daily_bytes_refusal(1000, 1000, NOON)
    assert at is not None and (at.delivered, at.limit, at.retry_after) == (1000, 1000, 43200)
    over = daily_bytes_refusal(5000, 1000, NOON)
    assert over is not None and over.retry_after == 43200
    assert "daily_bytes_limit 1000" in over.message and "00:00 UTC" in over.message
    assert "retry after 43200 s" in over.message


def test_no_limit_or_a_failed_count_goes_ahead() -> None:
    assert daily_bytes_refusal(10**15, None, NOON) is None  # unlimited
    assert daily_bytes_refusal(None, 1, NOON) is None  # the count failed: fail open


def test_retry_after_is_the_whole_seconds_to_the_next_utc_midnight() -> None:
    just_before = datetime(2026, 12, 3, 23, 59, 59, 500_000, tzinfo=UTC)
    assert seconds_until_next_utc_day(just_before) == 1  # rounded up, never 0
    assert seconds_until_next_utc_day(datetime(2026, 12, 3, tzinfo=UTC)) == 86400
    assert seconds_until_next_utc_day(datetime(2026, 12, 3, 0, 0, 1, tzinfo=UTC)) == 86399
    # year end, and a leap day
    assert seconds_until_next_utc_day(datetime(2026, 12, 31, 23, 0, tzinfo=UTC)) == 3600
    assert seconds_until_next_utc_day(datetime(2028, 2, 28, 23, 30, tzinfo=UTC)) == 1800
    # another zone's clock is the same instant: the UTC day decides (01:00+02:00 = 23:00 UTC)
    cest = datetime(2026, 12, 4, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert seconds_until_next_utc_day(cest) == 3600 and day_of(cest) == "2026-12-03"
    with pytest.raises(ValueError):
        seconds_until_next_utc_day(datetime(2026, 12, 3, 12, 0))  # naive: no UTC day


def test_at_midnight_the_new_day_counts_from_zero() -> None:
    """The same customer, refused at 23:59:59 with yesterday's bytes, reads the new day's rows
    (none yet) a second later: the day range moves with the clock."""
    before = datetime(2026, 12, 3, 23, 59, 59, tzinfo=UTC)
    after = before + timedelta(seconds=1)
    assert day_row_range(before)[1] < day_row_range(after)[0]
    refused = daily_bytes_refusal(2000, 1000, before)
    assert refused is not None and refused.retry_after == 1


def test_the_day_range_holds_every_shard_of_every_hour_of_that_day_only() -> None:
    low, high = day_row_range(NOON)
    today = [row_key(f"2026-12-03T{h:02d}", s) for h in range(24) for s in range(SHARDS)]
    assert all(low <= key <= high for key in today)
    others = [row_key("2026-12-02T23", SHARDS - 1), row_key("2026-12-04T00", 0)]
    assert not any(low <= key <= high for key in others)


def test_a_customers_override_replaces_the_default_and_null_means_unlimited() -> None:
    overrides = {"big": 10**12, "free": None}
    assert limit_of("big", 1000, overrides) == 10**12
    assert limit_of("free", 1000, overrides) is None
    assert limit_of("other", 1000, overrides) == 1000
    assert limit_of("other", None, overrides) is None  # the default: unlimited
    assert limit_of("big", None, overrides) == 10**12  # a limit for one customer only


# --------------------------------------------------------------------------- settings


def test_settings_read_the_limit_and_overrides_and_default_to_unlimited() -> None:
    assert JobsSettings().jobs_daily_bytes_limit is None
    settings = JobsSettings(
        jobs_daily_bytes_limit="1000000",
        jobs_daily_bytes_limit_overrides='{"cust-a": 5000, "cust-b": null}',
    )
    assert settings.jobs_daily_bytes_limit == 1_000_000
    assert settings.jobs_daily_bytes_limit_overrides == {"cust-a": 5000, "cust-b": None}
    assert JobsSettings(jobs_daily_bytes_limit="").jobs_daily_bytes_limit is None


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("jobs_daily_bytes_limit", "0", "greater than or equal to 1"),
        ("jobs_daily_bytes_limit", "-5", "greater than or equal to 1"),
        ("jobs_daily_bytes_limit", "10GB", "valid integer"),
        ("jobs_daily_bytes_limit", "1.5", "valid integer"),
        ("jobs_daily_bytes_limit", str(2**61), "less than or equal to"),
        ("jobs_daily_bytes_limit_overrides", "{not json", "not a JSON object"),
        ("jobs_daily_bytes_limit_overrides", "[1, 2]", "not a JSON object"),
        ("jobs_daily_bytes_limit_overrides", '{"a": 0}', "greater than or equal to 1"),
        ("jobs_daily_bytes_limit_overrides", '{"a": 5e12}', "valid integer"),
        ("jobs_daily_bytes_limit_overrides", '{"a": "5000"}', "valid integer"),
        ("jobs_daily_bytes_limit_overrides", '{"a": true}', "valid integer"),
    ],
)
def test_a_bad_setting_fails_start_up_naming_it(field: str, value: str, says: str) -> None:
    with pytest.raises(ValidationError) as raised:
        JobsSettings(**{field: value})
    assert field in str(raised.value) and says in str(raised.value)


# --------------------------------------------------------------------------- the counter


def delivered_by_day(store: InMemoryReadModelStore, customer: str) -> dict[str, int]:
    days: dict[str, int] = {}
    for (owner, sort_key), row in store.stats.items():
        if owner == customer and row.get(DELIVERED_COUNTER):
            day = sort_key[:10]
            days[day] = days.get(day, 0) + int(row[DELIVERED_COUNTER])
    return days


def recount_by_day(store: InMemoryReadModelStore, customer: str) -> dict[str, int]:
    """What the counter must say: the size of every SUCCEEDED job by the UTC day it finished."""
    days: dict[str, int] = {}
    for item in store.scan(JOBS):
        if item.get("customer_id") == customer and item.get("status") == "SUCCEEDED":
            day = datetime.fromisoformat(item["finished_at"]).astimezone(UTC).strftime("%Y-%m-%d")
            days[day] = days.get(day, 0) + int(item["size"])
    return {d: n for d, n in days.items() if n}


def across_midnight() -> tuple[History, list[str]]:
    """acme's jobs from 22:00 to past midnight (every outcome, 20 events a job, a minute
    apart: most jobs are requested on one day and delivered on the next), one of globex."""
    h = History(start=datetime(2026, 12, 2, 22, 0, tzinfo=UTC), step=timedelta(minutes=1))
    src, dst = h.endpoint("acme", endpoint_type="s3"), h.endpoint("acme")
    outcomes = ["succeeded", "failed", "succeeded", "cancelled", "queued"]
    jobs = [
        h.job("acme", src, dst, outcome=outcomes[n % 5], size=(n + 1) * 1000, chunk_size=1000)
        for n in range(10)
    ]
    other = h.endpoint("globex")
    jobs.append(h.job("globex", other, other, size=777, chunk_size=1000))
    return h, jobs


def test_delivered_bytes_count_on_the_day_the_job_finished_not_the_day_it_was_requested() -> None:
    h, jobs = across_midnight()
    store = live(h.events)
    expected = recount_by_day(store, "acme")
    assert delivered_by_day(store, "acme") == expected
    assert set(expected) == {"2026-12-02", "2026-12-03"}  # the history spans the midnight
    items = {i["job_id"]: i for i in store.scan(JOBS)}
    crossing = [
        j
        for j in jobs
        if items[j].get("status") == "SUCCEEDED"
        and items[j]["created_at"][:10] != items[j]["finished_at"][:10]
    ]
    assert crossing, "some job is requested before midnight and delivered after"
    for job in crossing:  # its bytes are the new day's, its creation counters the old day's
        finished = hour_of(datetime.fromisoformat(items[job]["finished_at"]))
        assert finished.startswith("2026-12-03")
    assert delivered_by_day(store, "globex") == {"2026-12-03": 777}
    # failed, cancelled and queued jobs deliver nothing
    assert sum(expected.values()) == sum(
        int(i["size"]) for i in items.values() if i["customer_id"] == "acme" and i.get("size")
    )


def test_the_counter_is_the_same_for_any_order_of_the_two_streams() -> None:
    h, _ = across_midnight()
    expected = delivered_by_day(live(h.events), "acme")
    rng = random.Random(15)
    streams: dict[str, list[FerryEvent]] = {}
    for event in h.events:
        streams.setdefault(event.stream_id, []).append(event)
    shuffled: list[FerryEvent] = []
    while streams:
        stream = rng.choice(sorted(streams))
        shuffled.append(streams[stream].pop(0))
        if not streams[stream]:
            del streams[stream]
    assert delivered_by_day(live(shuffled), "acme") == expected
    rebuilt = InMemoryReadModelStore()  # the rebuild's order: stream by stream
    projector = Projector(rebuilt, None)
    for stream_events in _by_stream(h.events).values():
        projector.apply_stream(stream_events)
    assert delivered_by_day(rebuilt, "acme") == expected


def _by_stream(events: list[FerryEvent]) -> dict[str, list[FerryEvent]]:
    streams: dict[str, list[FerryEvent]] = {}
    for event in events:
        streams.setdefault(event.stream_id, []).append(event)
    return streams


# --------------------------------------------------------------------------- POST /transfers


class StoreDeliveredBytes:
    """The DeliveredBytes port over the in-memory read-model store's counters rows: the same
    day range and counter DynamoDailyBytes reads on DynamoDB."""

    def __init__(self, store: InMemoryReadModelStore) -> None:
        self.store = store
        self.fail = False
        self.asked: list[tuple[str, date]] = []

    def delivered_today(self, customer_id: str, now: datetime) -> int | None:
        self.asked.append((customer_id, now.date()))
        if self.fail:
            raise ConnectionError("the table is unreachable")
        low, high = day_row_range(now)
        return sum(
            int(row.get(DELIVERED_COUNTER) or 0)
            for (owner, key), row in self.store.stats.items()
            if owner == customer_id and low <= key <= high
        )


class World:
    def __init__(self, settings: JobsSettings, now: datetime) -> None:
        self.now = now
        history, _ = across_midnight()  # acme: 3 jobs delivered on 2026-12-03
        self.store = live(history.events)
        self.delivered = StoreDeliveredBytes(self.store)
        keys = InMemoryKeyStore()
        self.keys = {c: issue_key(keys, c)[0] for c in ("acme", "globex")}
        self.endpoints = {
            c: [
                EndpointInfo(
                    endpoint_id=str(uuid4()),
                    customer_id=c,
                    type=EndpointType.S3,
                    direction=Direction.BOTH,
                    status=EndpointStatus.ACTIVE,
                )
                for _ in range(2)
            ]
            for c in ("acme", "globex")
        }
        self.service = bootstrap(
            settings=settings,
            endpoints=InMemoryEndpointDirectory([e for es in self.endpoints.values() for e in es]),
            idempotency=InMemoryIdempotencyStore(),
            keys=keys,
            sources=None,
            daily_bytes=self.delivered,
            clock=lambda: self.now,
        )
        self.resolver = build_resolver(self.service)

    def body(self, customer: str, name: str) -> dict[str, Any]:
        src, dst = self.endpoints[customer]
        return {
            "source": {"endpoint_id": src.endpoint_id, "path": f"in/{name}"},
            "target": {"endpoint_id": dst.endpoint_id, "path": f"out/{name}"},
        }

    def submit(self, customer: str, name: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        event = rest_event(
            "POST",
            "/transfers",
            body=json.dumps(self.body(customer, name)),
            headers={"x-api-key": self.keys[customer]},
        )
        response = self.resolver.resolve(event, None)
        headers = {k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
        return (
            response["statusCode"],
            json.loads(response["body"]),
            {**headers, **(response.get("headers") or {})},
        )


def jobs_created(world: World) -> int:
    """JobRequested events in the jobs application's in-memory event store."""
    recorded = world.service.app.recorder._stored_events  # type: ignore[attr-defined]
    return sum(1 for e in recorded if e.topic.endswith("JobRequested"))


def acme_today(world: World) -> int:
    return world.delivered.delivered_today("acme", world.now) or 0


def test_over_its_daily_bytes_a_customer_gets_429_until_midnight_and_others_are_not_affected() -> (
    None
):
    now = datetime(2026, 12, 3, 18, 30, 15, tzinfo=UTC)
    probe = World(JobsSettings(), now)
    delivered = acme_today(probe)
    assert delivered > 0
    world = World(JobsSettings(jobs_daily_bytes_limit=delivered), now)
    status, answer, headers = world.submit("acme", "f1")
    assert status == 429
    assert headers["Retry-After"] == str(5 * 3600 + 29 * 60 + 45)  # to 00:00 UTC
    assert answer["error"]["code"] == "daily_bytes_limit_reached"
    assert f"daily_bytes_limit {delivered}" in answer["error"]["message"]
    assert jobs_created(world) == 0  # nothing was queued
    # globex (777 bytes today) has the same default limit and is under it
    assert world.submit("globex", "f1")[0] == 202
    assert jobs_created(world) == 1
    # one byte more of budget and acme is accepted
    roomier = World(JobsSettings(jobs_daily_bytes_limit=delivered + 1), now)
    assert roomier.submit("acme", "f1")[0] == 202


def test_the_override_decides_for_its_customer() -> None:
    now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    world = World(
        JobsSettings(
            jobs_daily_bytes_limit=1,  # everyone with a delivered byte is over...
            jobs_daily_bytes_limit_overrides='{"acme": null}',  # ...but acme is unlimited
        ),
        now,
    )
    assert world.submit("acme", "f1")[0] == 202
    assert world.submit("globex", "f1")[0] == 429
    assert ("acme", now.date()) not in world.delivered.asked  # unlimited: not even counted


def test_the_next_day_the_budget_is_back() -> None:
    now = datetime(2026, 12, 3, 23, 59, 59, 400_000, tzinfo=UTC)
    world = World(JobsSettings(jobs_daily_bytes_limit=1), now)
    status, _, headers = world.submit("acme", "f1")
    assert status == 429 and headers["Retry-After"] == "1"
    world.now = datetime(2026, 12, 4, 0, 0, 0, tzinfo=UTC)
    assert world.submit("acme", "f1")[0] == 202  # the same request, the new day


def test_a_failed_count_allows_the_job_and_routes_are_never_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World(JobsSettings(jobs_daily_bytes_limit=1), datetime(2026, 12, 3, 9, tzinfo=UTC))
    assert world.submit("acme", "f1")[0] == 429
    # a route's file becomes a job even over the limit (the executor holds it to the next day)
    request = TransferRequest.model_validate({**world.body("acme", "routed"), "dedupe": False})
    made = world.service.app.submit("acme", "route", request, route_id=str(uuid4()))
    assert made.created
    world.delivered.fail = True
    with caplog.at_level("WARNING"):
        status, answer, _ = world.submit("acme", "f1")
    assert status == 202, answer  # fail open, never a 5xx
    assert "not counted" in caplog.text


# --------------------------------------------------------------------------- the CLI


def test_the_cli_prints_the_refusal_and_exits_non_zero(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ferry transfer`` over HTTP (127.0.0.1) to the real resolver, the customer over its
    daily bytes: one clean error line naming the limit and the code, exit 1, no traceback."""
    world = World(JobsSettings(jobs_daily_bytes_limit=1), datetime(2026, 12, 3, 21, tzinfo=UTC))

    class Api(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            event = rest_event(
                "POST", self.path, body=body, headers={"x-api-key": self.headers["x-api-key"]}
            )
            response = world.resolver.resolve(event, None)
            self.send_response(response["statusCode"])
            headers = {k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
            for name, value in {**headers, **(response.get("headers") or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response["body"].encode())

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("FERRY_API_URL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("FERRY_API_KEY", world.keys["acme"])
        src, dst = world.endpoints["acme"]
        argv = ["transfer", "--from", f"{src.endpoint_id}:in/x", "--to", f"{dst.endpoint_id}:o/x"]
        assert cli.main(argv) == 1
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert "daily bytes limit reached" in err and "daily_bytes_limit 1" in err
    assert "429 daily_bytes_limit_reached" in err and "retry after 10800 s" in err
    assert "Traceback" not in err


def test_the_openapi_schema_declares_the_429_with_both_codes_and_retry_after() -> None:
    world = World(JobsSettings(jobs_daily_bytes_limit=1), NOON)
    schema = json.loads(world.resolver.get_openapi_json_schema())
    refused = schema["paths"]["/transfers"]["post"]["responses"]["429"]
    assert "daily_bytes_limit_reached" in refused["description"]
    assert "queued_limit_reached" in refused["description"]
    assert refused["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert refused["content"]["application/json"]["schema"]["$ref"].endswith("ErrorEnvelope")
