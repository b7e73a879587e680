"""Schedule math (services/routes/schedule.py): cron in an IANA time zone across DST changes,
intervals, catch-up after a late tick, and the trigger / expect validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from services.routes.definition import InvalidDefinition, parse_definition
from services.routes.schedule import Cron, due

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold).astimezone(UTC)  # type: ignore[misc]


def day_slots(expr: str, tz: str, year: int, month: int, day: int) -> list[datetime]:
    zone = ZoneInfo(tz)
    start = datetime(year, month, day, tzinfo=zone).astimezone(UTC)
    end = datetime(year, month, day, 23, 59, 59, tzinfo=zone).astimezone(UTC)
    return Cron(expr, tz).slots(start - timedelta(microseconds=1), end)


# -- Europe/Berlin: spring forward 2026-03-29 02:00 CET → 03:00 CEST; fall back 2026-10-25 ---


def test_berlin_daily_in_the_spring_gap_runs_shifted_past_the_gap_never_skipped() -> None:
    slots = day_slots("30 2 * * *", "Europe/Berlin", 2026, 3, 29)
    assert slots == [datetime(2026, 3, 29, 1, 30, tzinfo=UTC)]  # 03:30 CEST
    assert slots[0].astimezone(BERLIN).hour == 3


def test_berlin_hourly_on_spring_forward_day_runs_23_times_once_each() -> None:
    slots = day_slots("0 * * * *", "Europe/Berlin", 2026, 3, 29)
    assert len(slots) == 23
    assert len(set(slots)) == 23
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(slots))


def test_berlin_daily_in_the_repeated_hour_runs_once_at_the_first_occurrence() -> None:
    slots = day_slots("30 2 * * *", "Europe/Berlin", 2026, 10, 25)
    assert slots == [local(BERLIN, 2026, 10, 25, 2, 30, fold=0)]
    assert slots[0] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST (+02:00)


def test_berlin_hourly_on_fall_back_day_runs_25_times() -> None:
    slots = day_slots("0 * * * *", "Europe/Berlin", 2026, 10, 25)
    assert len(slots) == 25
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(slots))


def test_berlin_0600_is_0500_utc_in_winter_and_0400_utc_in_summer() -> None:
    assert day_slots("0 6 * * *", "Europe/Berlin", 2026, 1, 15) == [
        datetime(2026, 1, 15, 5, 0, tzinfo=UTC)
    ]
    assert day_slots("0 6 * * *", "Europe/Berlin", 2026, 7, 15) == [
        datetime(2026, 7, 15, 4, 0, tzinfo=UTC)
    ]


# -- America/New_York: spring forward 2026-03-08 02:00 EST → 03:00 EDT; fall back 2026-11-01 --


def test_new_york_spring_gap_and_fall_back_repeat() -> None:
    assert day_slots("15 2 * * *", "America/New_York", 2026, 3, 8) == [
        datetime(2026, 3, 8, 7, 15, tzinfo=UTC)  # 03:15 EDT
    ]
    assert day_slots("30 1 * * *", "America/New_York", 2026, 11, 1) == [
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, the first of the two
    ]
    every_half_hour = day_slots("*/30 * * * *", "America/New_York", 2026, 11, 1)
    assert len(every_half_hour) == 50  # 25 hours


def test_new_york_weekday_schedule_keeps_local_time_across_the_change() -> None:
    week = Cron("0 9 * * 1-5", "America/New_York").slots(
        datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 12, tzinfo=UTC)
    )
    assert [s.astimezone(NEW_YORK).strftime("%a %H:%M") for s in week] == [
        "Thu 09:00", "Fri 09:00", "Mon 09:00", "Tue 09:00", "Wed 09:00",
    ]  # fmt: skip
    assert week[1].hour == 14 and week[2].hour == 13  # EST then EDT in UTC


def test_without_tz_cron_is_utc_as_before() -> None:
    assert Cron("0 6 * * *").slots(
        datetime(2026, 7, 15, tzinfo=UTC), datetime(2026, 7, 16, tzinfo=UTC)
    ) == [datetime(2026, 7, 15, 6, 0, tzinfo=UTC)]


# -- due / late / catch-up --------------------------------------------------------------------


def test_a_late_tick_is_due_once_for_all_the_missed_slots() -> None:
    last = datetime(2026, 5, 4, 6, 0, 10, tzinfo=UTC)
    now = datetime(2026, 5, 4, 6, 7, 30, tzinfo=UTC)
    decision = due(cron="*/2 * * * *", every_seconds=None, tz=None, last=last, now=now)
    assert decision.due and decision.missed == 3  # 06:02, 06:04, 06:06
    assert decision.slot == datetime(2026, 5, 4, 6, 6, tzinfo=UTC)
    assert decision.late_by == 90.0
    # the catch-up scan ran at `now`: the next tick in the same slot is not due again
    again = due(
        cron="*/2 * * * *", every_seconds=None, tz=None, last=now, now=now + timedelta(seconds=20)
    )
    assert not again.due


def test_a_tick_that_missed_a_daily_slot_catches_it_up() -> None:
    last = datetime(2026, 5, 4, 5, 0, tzinfo=UTC)
    now = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)  # the ticker was down 06:00-09:00
    decision = due(cron="0 8 * * *", every_seconds=None, tz="Europe/Berlin", last=last, now=now)
    assert decision.due and decision.missed == 1
    assert decision.slot == datetime(2026, 5, 4, 6, 0, tzinfo=UTC)  # 08:00 CEST
    assert decision.late_by == 3 * 3600


def test_interval_schedules_count_missed_runs() -> None:
    last = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)
    assert not due(
        cron=None, every_seconds=300, tz=None, last=last, now=last + timedelta(seconds=200)
    ).due
    on_time = due(
        cron=None, every_seconds=300, tz=None, last=last, now=last + timedelta(seconds=303)
    )
    assert on_time.due and on_time.missed == 1 and on_time.late_by == 3
    late = due(cron=None, every_seconds=300, tz=None, last=last, now=last + timedelta(seconds=1000))
    assert late.due and late.missed == 3 and late.late_by == 100


# -- validation --------------------------------------------------------------------------------


def _route(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": "r",
        "source": {"endpoint_id": "ep-src"},
        "targets": [{"endpoint_id": "ep-dst"}],
        "trigger": {"type": "schedule", "cron": "0 6 * * *"},
    }
    body.update(over)
    return body


@pytest.mark.parametrize(
    ("over", "field"),
    [
        (
            {"trigger": {"type": "schedule", "cron": "0 6 * * *", "tz": "Mars/Olympus"}},
            "trigger.tz",
        ),
        ({"trigger": {"type": "event", "tz": "Europe/Berlin"}}, "trigger.tz"),
        ({"expect": {"every": "daily"}}, "expect.by"),
        ({"expect": {"every": "daily", "by": "25:00"}}, "expect.by"),
        ({"expect": {"every": "weekdays", "by": "06:00", "tz": "Nowhere/City"}}, "expect.tz"),
        ({"expect": {"every": "0 6 * *"}}, "expect.every"),
        ({"expect": {"every": "0 6 * * *", "by": "06:00"}}, "expect.by"),
        ({"expect": {"every": "daily", "by": "06:00", "min_files": 0}}, "expect.min_files"),
        ({"expect": {"every": "daily", "by": "06:00", "pattern": "[x"}}, "expect.pattern"),
    ],
)
def test_bad_schedule_or_expect_names_the_field(over: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidDefinition) as caught:
        parse_definition(_route(**over))
    assert caught.value.field == field, str(caught.value)


def test_stored_definitions_without_tz_or_expect_dump_as_before() -> None:
    plain = parse_definition(_route()).as_json()
    assert "expect" not in plain and "tz" not in plain["trigger"]
    zoned = parse_definition(
        _route(
            trigger={"type": "schedule", "cron": "0 6 * * *", "tz": "Europe/Berlin"},
            expect={"every": "weekdays", "by": "06:00", "tz": "Europe/Berlin"},
        )
    )
    assert zoned.trigger.tz == "Europe/Berlin"
    assert zoned.expect is not None and zoned.expect.cron == "0 6 * * 1-5"
    assert zoned.as_json()["expect"]["min_files"] == 1


def test_cli_routes_add_takes_tz_and_expect_flags() -> None:
    from tests.unit.test_routes_cli import _run

    client = _run(
        ["routes", "add", "--name", "bank", "--from", "sftp1:out", "--to", "s3a:in/",
         "--cron", "0 6 * * 1-5", "--tz", "Europe/Berlin",
         "--expect-every", "weekdays", "--expect-by", "06:30", "--expect-min-files", "2",
         "--json"]
    )  # fmt: skip
    [(_, _, body, _)] = client.calls
    assert body["trigger"] == {"type": "schedule", "cron": "0 6 * * 1-5", "tz": "Europe/Berlin"}
    assert body["expect"] == {
        "every": "weekdays", "by": "06:30", "tz": "Europe/Berlin", "min_files": 2,
    }  # fmt: skip
    parse_definition(body)  # what the CLI sends is a valid definition
