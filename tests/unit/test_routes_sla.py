"""Delivery SLAs and schedule catch-up on a fake clock: RouteFileLate once per missed window,
RouteFileArrived (late by N minutes) when the file comes, the route LATE in between; deadlines
judged by delivery time whenever the check runs; a late tick runs the missed scan once
(ScheduleTickLate); two scanners never list one route at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from events import contract as c
from services.routes.ports import JobState, ListedFile, SourceSession
from services.routes.readmodel import RoutesProjector
from services.routes.scanner import Scanner, ScannerPolicy
from services.routes.schedule import Cron
from services.routes.sla import window_stream_id
from tests.support.fakes.routes import FakeSource
from tests.unit import test_routes
from tests.unit.test_routes import World

world = test_routes.world  # the in-memory routes world fixture

BERLIN_6 = {"every": "daily", "by": "06:00", "tz": "Europe/Berlin"}


def _sla_route(w: World, **expect: Any) -> tuple[str, datetime]:
    route_id = w.route(stable={"checks": 1}, expect={**BERLIN_6, **expect})
    created = w.app.current(route_id).created_on  # type: ignore[union-attr]
    first = Cron("0 6 * * *", "Europe/Berlin").next_after(created + timedelta(hours=1))
    assert first is not None
    return route_id, first


def _window_events(w: World, route_id: str, deadline: datetime) -> list[c.FerryEvent]:
    from events.translate import stream_events

    return stream_events(w.app.recorder, window_stream_id(route_id, deadline))


def _deliver(w: World, path: str, listed_at: datetime, finished_at: datetime) -> None:
    w.source.put(path, 7, listed_at.timestamp() - 30)
    w.scanner.tick(listed_at.timestamp())
    job = next(j for j, r in w.jobs.requests.items() if r["source"]["path"] == path)
    w.jobs.states[job] = JobState("SUCCEEDED", finished_at=finished_at.isoformat())


def _status(w: World, route_id: str, deadline: datetime) -> dict[str, Any]:
    projector = RoutesProjector(w.read_model, lambda s: [])
    for event in w.app.route_events("cust-a", route_id):
        projector.handle(event)
    for event in _window_events(w, route_id, deadline):
        projector.handle(event)
    status, body = w.call("GET", f"/routes/{route_id}")
    assert status == 200
    return dict(body)


def test_a_missed_window_is_late_once_then_arrived_late_by_n_minutes(world: World) -> None:
    route_id, d1 = _sla_route(world)
    # before the deadline, and within the settling grace after it: nothing
    assert world.scanner.tick((d1 - timedelta(hours=1)).timestamp()).sla_events == 0
    assert world.scanner.tick((d1 + timedelta(seconds=30)).timestamp()).sla_events == 0
    # the first check past deadline + grace: RouteFileLate, once, however many ticks follow
    assert world.scanner.tick((d1 + timedelta(seconds=90)).timestamp()).sla_events == 1
    for minutes in (3, 10, 60):
        assert world.scanner.tick((d1 + timedelta(minutes=minutes)).timestamp()).sla_events == 0
    [late] = _window_events(world, route_id, d1)
    assert isinstance(late, c.RouteFileLate)
    assert late.deadline == d1 and late.delivered_files == 0 and late.expected_files == 1
    assert late.tz == "Europe/Berlin" and d1.astimezone(UTC).hour in (4, 5)  # 06:00 Berlin
    body = _status(world, route_id, d1)
    assert body["status"] == "LATE" and body["sla"]["late_since"] == d1.isoformat()

    # the file comes two hours late: its job finishes at d1 + 2h05
    _deliver(world, "out/a.csv", d1 + timedelta(hours=2), d1 + timedelta(hours=2, minutes=5))
    assert world.scanner.tick((d1 + timedelta(hours=2, minutes=6)).timestamp()).settled == 1
    _, arrived = _window_events(world, route_id, d1)
    assert isinstance(arrived, c.RouteFileArrived)
    assert arrived.late_by_minutes == 125 and arrived.path == "out/a.csv"
    assert arrived.arrived_at == d1 + timedelta(hours=2, minutes=5)
    body = _status(world, route_id, d1)
    assert body["status"] == "ENABLED" and body["sla"]["status"] == "OK"
    # nothing more for that window, ever
    world.scanner.tick((d1 + timedelta(hours=5)).timestamp())
    assert len(_window_events(world, route_id, d1)) == 2


def test_the_deadline_is_judged_by_delivery_time_not_by_when_the_check_runs(
    world: World,
) -> None:
    route_id, d1 = _sla_route(world)
    # delivered (job finished) ten minutes before the deadline, settled only after it
    _deliver(world, "out/b.csv", d1 - timedelta(minutes=20), d1 - timedelta(minutes=10))
    world.scanner.tick((d1 + timedelta(minutes=5)).timestamp())
    assert world.scanner.tick((d1 + timedelta(minutes=6)).timestamp()).sla_events == 0
    assert _window_events(world, route_id, d1) == []  # on time: nothing published

    # next window: the file is delivered an hour late and the first check runs three hours
    # late (the scheduler was down): Late and Arrived, judged from the delivery's time
    d2 = d1 + timedelta(days=1)
    _deliver(world, "out/c.csv", d2 + timedelta(minutes=50), d2 + timedelta(hours=1))
    world.scanner.tick((d2 + timedelta(hours=3)).timestamp())
    late, arrived = _window_events(world, route_id, d2)
    assert isinstance(late, c.RouteFileLate) and late.delivered_files == 0
    assert isinstance(arrived, c.RouteFileArrived) and arrived.late_by_minutes == 60


def test_min_files_and_pattern(world: World) -> None:
    route_id, d1 = _sla_route(world, min_files=2, pattern="pay*.csv")
    _deliver(world, "out/pay1.csv", d1 - timedelta(hours=2), d1 - timedelta(hours=2))
    _deliver(world, "out/other.csv", d1 - timedelta(minutes=100), d1 - timedelta(hours=1))
    world.scanner.tick((d1 - timedelta(minutes=30)).timestamp())
    world.scanner.tick((d1 + timedelta(minutes=2)).timestamp())
    [late] = _window_events(world, route_id, d1)
    assert isinstance(late, c.RouteFileLate)
    assert (late.expected_files, late.delivered_files) == (2, 1)  # other.csv does not match


def test_a_late_tick_runs_the_missed_scan_once_and_records_schedule_tick_late(
    world: World,
) -> None:
    route_id = world.route(trigger={"type": "schedule", "cron": "*/5 * * * *"})
    slot = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
    world.scanner.tick((slot + timedelta(seconds=5)).timestamp())
    assert world.source.listings == 1
    assert not any(
        isinstance(e, c.ScheduleTickLate) for e in world.app.route_events("cust-a", route_id)
    )
    # the ticker is down for half an hour: six slots pass unscanned
    report = world.scanner.tick((slot + timedelta(minutes=30, seconds=40)).timestamp())
    assert world.source.listings == 2 and report.late_ticks == 1  # one catch-up scan
    [late] = [
        e for e in world.app.route_events("cust-a", route_id) if isinstance(e, c.ScheduleTickLate)
    ]
    assert late.scheduled_for == slot + timedelta(minutes=30)
    assert late.missed_slots == 6 and late.late_by_seconds == 40.0
    # the next ticks inside the same slot: not due, nothing recorded
    world.scanner.tick((slot + timedelta(minutes=31)).timestamp())
    world.scanner.tick((slot + timedelta(minutes=35, seconds=2)).timestamp())  # on time
    assert world.source.listings == 3
    lates = [
        e for e in world.app.route_events("cust-a", route_id) if isinstance(e, c.ScheduleTickLate)
    ]
    assert len(lates) == 1


class _SlowSource(FakeSource):
    """A listing that takes ``delay`` seconds (and counts listings running at once)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def iter_files(self, directory: str, recursive: bool) -> Iterator[ListedFile]:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.delay)
            yield from super().iter_files(directory, recursive)
        finally:
            with self._lock:
                self.running -= 1

    def open(self, endpoint: Any) -> SourceSession:
        return self


def test_two_scanners_racing_on_one_route_list_it_once(world: World) -> None:
    world.route()
    slow = _SlowSource(0.5)
    scanners = [
        Scanner(
            app=world.app,
            routes=world.routes,
            endpoints=world.endpoints,
            sources=slow,
            state=world.state,
            job_status=world.jobs,
            policy=ScannerPolicy(workers=2),
            owner=f"worker-{n}",
        )
        for n in range(2)
    ]
    barrier = threading.Barrier(2)
    reports: list[Any] = []

    def run(scanner: Scanner) -> None:
        barrier.wait()
        reports.append(scanner.tick(2_000_000_000.0, force=True))  # only the lease decides

    threads = [threading.Thread(target=run, args=(s,)) for s in scanners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert slow.listings == 1 and slow.most == 1
    assert sorted(r.routes_scanned for r in reports) == [0, 1]
    assert sorted(r.leased_elsewhere for r in reports) == [0, 1]


def test_the_sla_read_model_is_order_independent_and_idempotent(world: World) -> None:
    from services.routes.readmodel import SLA_SK, late_since

    route_id, d1 = _sla_route(world)
    world.scanner.tick((d1 + timedelta(minutes=5)).timestamp())  # RouteFileLate
    _deliver(world, "out/a.csv", d1 + timedelta(minutes=10), d1 + timedelta(minutes=12))
    world.scanner.tick((d1 + timedelta(minutes=15)).timestamp())  # RouteFileArrived
    late, arrived = _window_events(world, route_id, d1)
    for order in ([late, arrived], [arrived, late], [arrived, late, arrived, late]):
        store = type(world.read_model)()  # the world's in-memory read model
        projector = RoutesProjector(store, lambda s: [])
        for event in order:
            projector.handle(event)
        item = store.get(route_id, SLA_SK)
        assert late_since(item) is None  # arrived, whichever came first
        assert item is not None and item["windows"][d1.isoformat()]["late_by_minutes"] == 12
    only_late = type(world.read_model)()
    RoutesProjector(only_late, lambda s: []).handle(late)
    assert late_since(only_late.get(route_id, SLA_SK)) == d1.isoformat()
    world.read_model = only_late
    for event in world.app.route_events("cust-a", route_id):
        RoutesProjector(only_late, lambda s: []).handle(event)
    status, listed = world.call("GET", "/routes")
    assert status == 200
    [row] = [r for r in listed["items"] if r["route_id"] == route_id]
    assert row["status"] == "LATE" and row["sla"]["late_since"] == d1.isoformat()
