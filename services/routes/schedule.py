"""Schedule math: which slots of a cron expression (in an IANA time zone) or an interval fall
in a span of time, DST-correct; and whether a route's scan is due, late, and how many slots it
missed.

Pure: no clock, no I/O; every time is passed in (aware datetimes; results are UTC).

Cron in a time zone (``zoneinfo``), the rules across DST changes:

- a local time that does not exist (spring forward: 02:30 on the last Sunday of March in
  Europe/Berlin) runs at the instant the same wall time maps to with the pre-change offset,
  i.e. shifted forward by the gap (02:30 → 03:30 CEST): a daily job is never skipped; slots that
  land on the same instant run once;
- a local time that occurs twice (fall back: 02:30 on the last Sunday of October) runs once, at
  its first occurrence — unless the hour field is ``*`` (every hour), when both occurrences are
  real hours and both run (an hourly job runs 25 times that day, 23 in spring).

Catch-up: a scan that runs after its slot runs the missed scan once, however many slots were
missed (counted over at most :data:`CATCH_UP_DAYS`, capped at :data:`MAX_MISSED`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.routes.definition import parse_cron, zone

CATCH_UP_DAYS = 31
MAX_MISSED = 1000


def _instants(naive: datetime, tz: ZoneInfo, both_folds: bool) -> list[datetime]:
    """The UTC instants a local wall time stands for (see the module's DST rules)."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return [first]  # an ordinary time
    if first.astimezone(tz).replace(tzinfo=None) != naive:
        return [first]  # in a gap: the pre-change offset shifts it past the gap
    return [first, second] if both_folds else [first]  # repeated: first (or both, hourly)


@dataclass(frozen=True)
class Cron:
    expression: str
    tz: str | None = None

    def slots(self, after: datetime, until: datetime, limit: int = MAX_MISSED) -> list[datetime]:
        """Slots in (after, until], oldest first, at most the ``limit`` newest ones."""
        minutes, hours, days, months, weekdays = parse_cron(self.expression)
        tz = zone(self.tz)
        both_folds = len(hours) == 24
        first_day = after.astimezone(tz).date() - timedelta(days=1)
        day = until.astimezone(tz).date() + timedelta(days=1)
        found: list[datetime] = []
        while day >= first_day and len(found) < limit:
            if day.day in days and day.month in months and (day.weekday() + 1) % 7 in weekdays:
                for_day: set[datetime] = set()
                for hour in hours:
                    for minute in minutes:
                        naive = datetime(day.year, day.month, day.day, hour, minute)
                        for instant in _instants(naive, tz, both_folds):
                            if after < instant <= until:
                                for_day.add(instant)
                found.extend(sorted(for_day, reverse=True))
            day -= timedelta(days=1)
        return sorted(set(found))[-limit:]

    def next_after(self, when: datetime, horizon_days: int = 400) -> datetime | None:
        """The first slot strictly after ``when`` (None if none within the horizon)."""
        end = when
        for _ in range(horizon_days // 8 + 1):
            start, end = end, end + timedelta(days=8)
            found = self.slots(start, end, limit=100000)
            if found:
                return found[0]
        return None

    def previous(self, when: datetime) -> datetime | None:
        """The last slot at or before ``when`` (within :data:`CATCH_UP_DAYS`)."""
        found = self.slots(when - timedelta(days=CATCH_UP_DAYS), when, limit=1)
        return found[-1] if found else None


@dataclass(frozen=True)
class Due:
    """Whether a scan is due now; if so, the latest slot it serves, how late it runs (seconds
    after that slot) and how many slots passed since the last scan."""

    due: bool
    slot: datetime | None = None
    late_by: float = 0.0
    missed: int = 0


def due(
    *,
    cron: str | None,
    every_seconds: int | None,
    tz: str | None,
    last: datetime | None,
    now: datetime,
) -> Due:
    """A schedule's decision at ``now``, given when the route was last scanned (``last``).

    cron: due when a slot lies in (last, now] (never scanned: in the current minute).
    every: due when ``every`` has passed since the last scan (never scanned: now); the slot is
    ``last + every``.
    """
    if every_seconds is not None:
        if last is None:
            return Due(True, now, 0.0, 1)
        step = timedelta(seconds=every_seconds)
        if now - last < step - timedelta(seconds=0.5):
            return Due(False)
        missed = min(MAX_MISSED, int((now - last) / step))
        slot = last + step * missed
        return Due(True, slot, max(0.0, (now - slot).total_seconds()), missed)
    assert cron is not None
    after = now - timedelta(seconds=60) if last is None else last
    after = max(after, now - timedelta(days=CATCH_UP_DAYS))
    slots = Cron(cron, tz).slots(after, now)
    if not slots:
        return Due(False)
    latest = slots[-1]
    return Due(True, latest, (now - latest).total_seconds(), len(slots))


def local_date(when: datetime, tz: str | None) -> date:
    return when.astimezone(zone(tz)).date()
