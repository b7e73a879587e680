"""The executor's bytes-per-day hold (services/executor/daily_budget.py): when it reads, what it
remembers, how a held message is put away (visibility to midnight, a fresh copy once received
often), fail open; and the executor's settings of the limit (the jobs service's variables)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.executor.daily_budget import FRESH_COPY_AT, SQS_LONGEST_VISIBILITY, DailyBudget
from services.executor.settings import ExecutorSettings


class Reader:
    def __init__(self, delivered: dict[str, int]) -> None:
        self.delivered = delivered
        self.reads: list[tuple[str, str]] = []
        self.fail = False

    def delivered_today(self, customer_id: str, now: datetime) -> int | None:
        self.reads.append((customer_id, now.date().isoformat()))
        if self.fail:
            raise TimeoutError("read timed out")
        return self.delivered.get(customer_id, 0)


class Times:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.mono = 1000.0


@dataclass
class Msg:
    message_id: str
    receive_count: int = 1


class Queue:
    def __init__(self, unsent: bool = False, broken: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.unsent = unsent
        self.broken = broken

    def extend(self, message: Msg, seconds: int) -> None:
        self.calls.append(("extend", message.message_id, seconds))

    def requeue(self, messages: list[Msg], delays: list[int]) -> list[Msg]:
        self.calls.append(("requeue", [m.message_id for m in messages], delays))
        if self.broken:
            raise ConnectionError("send failed")
        return messages if self.unsent else []


LIMITS = {"acme": 1000, "globex": 1000}


def budget(reader: Reader, times: Times) -> DailyBudget:
    return DailyBudget(
        reader,
        LIMITS.get,
        recheck_seconds=10,
        clock=lambda: times.now,
        monotonic=lambda: times.mono,
    )


def test_over_its_budget_a_customer_waits_until_midnight_and_is_not_read_again_that_day() -> None:
    times = Times(datetime(2026, 12, 3, 22, 0, tzinfo=UTC))
    reader = Reader({"acme": 1500, "globex": 10})
    b = budget(reader, times)
    assert b.wait_seconds("acme") == 7200
    times.now += timedelta(minutes=30)
    times.mono += 1800
    assert b.wait_seconds("acme") == 5400  # remembered: no read
    assert reader.reads == [("acme", "2026-12-03")]
    assert b.wait_seconds("globex") is None  # another customer is not affected
    times.now = datetime(2026, 12, 4, 0, 0, 5, tzinfo=UTC)  # the new day: read again
    reader.delivered["acme"] = 0
    assert b.wait_seconds("acme") is None
    assert reader.reads[-1] == ("acme", "2026-12-04")


def test_under_its_budget_a_customer_is_read_again_after_recheck_seconds() -> None:
    times = Times(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    reader = Reader({"acme": 999})
    b = budget(reader, times)
    assert b.wait_seconds("acme") is None
    times.mono += 9
    assert b.wait_seconds("acme") is None and len(reader.reads) == 1
    reader.delivered["acme"] = 1000  # its running jobs delivered more
    times.mono += 2
    assert b.wait_seconds("acme") == 15 * 3600
    assert len(reader.reads) == 2


def test_no_limit_or_no_reader_never_holds_and_reads_nothing() -> None:
    times = Times(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    reader = Reader({"initech": 10**12})
    assert budget(reader, times).wait_seconds("initech") is None  # no limit of its own
    assert reader.reads == []
    unread = DailyBudget(None, lambda c: 1, recheck_seconds=10)
    assert unread.wait_seconds("acme") is None


def test_a_failed_count_allows_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    reader = Reader({"acme": 10**9})
    reader.fail = True
    with caplog.at_level("WARNING"):
        assert (
            budget(reader, Times(datetime(2026, 12, 3, 9, tzinfo=UTC))).wait_seconds("acme") is None
        )
    assert "bytes delivered today by acme not counted" in caplog.text


def test_a_held_message_is_put_out_of_sight_until_midnight_at_most_sqs_longest() -> None:
    reader = Reader({"acme": 5000})
    queue = Queue()
    late = budget(reader, Times(datetime(2026, 12, 3, 23, 0, tzinfo=UTC)))
    assert late.hold(queue, Msg("m1"), "acme") is True
    assert queue.calls == [("extend", "m1", 3600)]
    early = budget(reader, Times(datetime(2026, 12, 3, 1, 0, tzinfo=UTC)))  # 23 h to midnight
    assert early.hold(queue, Msg("m2"), "acme") is True
    assert queue.calls[-1] == ("extend", "m2", SQS_LONGEST_VISIBILITY)  # back at noon, held again
    assert early.hold(queue, Msg("m3"), "globex") is False  # under: goes ahead, nothing done
    assert len(queue.calls) == 2


def test_a_message_received_often_is_held_as_a_fresh_copy() -> None:
    reader = Reader({"acme": 5000})
    b = budget(reader, Times(datetime(2026, 12, 3, 20, 0, tzinfo=UTC)))
    queue = Queue()
    assert b.hold(queue, Msg("m1", receive_count=FRESH_COPY_AT - 1), "acme")
    assert queue.calls == [("extend", "m1", 4 * 3600)]
    assert b.hold(queue, Msg("m2", receive_count=FRESH_COPY_AT), "acme")
    assert queue.calls[-1] == ("requeue", ["m2"], [900])  # SQS's longest delay
    # a copy that could not be sent: the original is put away instead (it is still held)
    for broken in (Queue(unsent=True), Queue(broken=True)):
        assert b.hold(broken, Msg("m3", receive_count=9), "acme")
        assert broken.calls[-1] == ("extend", "m3", 4 * 3600)


def test_the_executor_reads_the_jobs_services_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_JOBS_DAILY_BYTES_LIMIT", "5000")
    monkeypatch.setenv("FERRY_JOBS_DAILY_BYTES_LIMIT_OVERRIDES", '{"big": 9000, "free": null}')
    monkeypatch.setenv("FERRY_JOB_STATS_TABLE", "t-job-stats")
    settings = ExecutorSettings()
    assert settings.daily_bytes_limited
    assert settings.daily_bytes_limit_of("acme") == 5000
    assert settings.daily_bytes_limit_of("big") == 9000
    assert settings.daily_bytes_limit_of("free") is None
    assert settings.table("job_stats") == "t-job-stats"
    budget_of = DailyBudget.of(settings)
    assert budget_of.delivered is not None  # reads the job-stats table
    monkeypatch.delenv("FERRY_JOBS_DAILY_BYTES_LIMIT")
    monkeypatch.delenv("FERRY_JOBS_DAILY_BYTES_LIMIT_OVERRIDES")
    unlimited = ExecutorSettings()
    assert not unlimited.daily_bytes_limited
    assert DailyBudget.of(unlimited).delivered is None  # nothing to read, no client


@pytest.mark.parametrize(
    "variable, value",
    [
        ("FERRY_JOBS_DAILY_BYTES_LIMIT", "0"),
        ("FERRY_JOBS_DAILY_BYTES_LIMIT", "lots"),
        ("FERRY_JOBS_DAILY_BYTES_LIMIT_OVERRIDES", '{"a": -1}'),
        ("FERRY_JOBS_DAILY_BYTES_LIMIT_OVERRIDES", '{"a": 1.5}'),
    ],
)
def test_a_bad_value_stops_the_executor_at_start_up(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as raised:
        ExecutorSettings()
    assert variable in str(raised.value)
