"""Delivery SLAs, the command side: count a route's deliveries into its windows and check the
windows whose deadline has passed (services/routes/sla.py holds the DeliveryWindow aggregate).

Which windows a delivery counts in: a file delivered at ``t`` counts in the window whose span
(previous deadline, deadline] holds ``t`` — on time for that deadline — and, late, in the window
of the previous deadline, when that one does not have its files yet: a window that missed its
deadline is LATE until a matching file arrives (RouteFileArrived, late by N minutes). Both are
decided from the delivery's time (the fan-out jobs' finish, from their final events), so a
check that runs late — or a delivery counted after a late check — gives the same answer.

Checks run on Ferry's scheduler (every scanner tick): each deadline that passed more than
``grace_seconds`` ago (the time a settled delivery takes to be counted), within the last
``lookback_days``, after the route was created, is checked once; RouteFileLate is appended
once per window (the window's stream is deterministic; a racing checker's append conflicts).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.routes.application import RoutesApplication, RouteView
from services.routes.definition import ExpectDef
from services.routes.schedule import Cron
from services.routes.sla import DeliveryWindow, window_stream_id

_TINY = timedelta(microseconds=1)


class Expectations:
    def __init__(
        self,
        app: RoutesApplication,
        *,
        grace_seconds: float = 60.0,
        lookback_days: int = 7,
        max_windows: int = 10,
    ) -> None:
        self.app = app
        self.grace = timedelta(seconds=grace_seconds)
        self.lookback = timedelta(days=lookback_days)
        self.max_windows = max_windows
        self._done: set[UUID] = set()  # windows this process decided (late, or on time)

    # -- deliveries ----------------------------------------------------------------------------

    def delivered(
        self, route: RouteView, path: str, relpath: str, file_version: str, at: datetime
    ) -> list[str]:
        """A file version of the route was delivered at ``at``: counted in its windows.
        Idempotent (a window counts a version once). Returns the published events appended."""
        expect = route.definition.expect
        if expect is None or not expect.matches(relpath):
            return []
        created = self._created(route.route_id)
        if created is None:
            return []
        cron = Cron(expect.cron, expect.tz)
        appended: list[str] = []
        nxt = cron.next_after(at - _TINY)
        previous = cron.previous(at - _TINY)
        for deadline in (previous, nxt):
            if deadline is None or deadline < created:
                continue
            appended += self._update(
                route, expect, cron, deadline, lambda w: w.count(path, file_version, at)
            )
        return appended

    # -- the check -----------------------------------------------------------------------------

    def check(self, route: RouteView, now: datetime) -> list[str]:
        """Check the route's passed deadlines (see the module docstring)."""
        expect = route.definition.expect
        if expect is None:
            return []
        created = self._created(route.route_id)
        if created is None:
            return []
        cron = Cron(expect.cron, expect.tz)
        start = max(created, now - self.lookback)
        appended: list[str] = []
        for deadline in cron.slots(start, now - self.grace, limit=self.max_windows):
            stream = window_stream_id(route.route_id, deadline)
            if stream in self._done:
                continue
            appended += self._update(route, expect, cron, deadline, lambda w: w.check(now))
            self._done.add(stream)
        return appended

    # -- internals -----------------------------------------------------------------------------

    def _created(self, route_id: str) -> datetime | None:
        route = self.app.current(route_id)
        if route is None or route.created_on is None:
            return None
        created: datetime = route.created_on
        return created if created.tzinfo else created.replace(tzinfo=UTC)

    def _update(
        self,
        route: RouteView,
        expect: ExpectDef,
        cron: Cron,
        deadline: datetime,
        change: Callable[[DeliveryWindow], bool],
    ) -> list[str]:
        for _ in range(5):
            window = self._window(route, expect, cron, deadline)
            if not change(window):
                return []  # nothing to record (a new window is not stored empty)
            pending = [type(e).__name__ for e in window.pending_events]
            try:
                self.app.save(window)
            except IntegrityError:
                continue  # another checker or settler appended first: reload, decide again
            return [name for name in pending if name in ("RouteFileLate", "RouteFileArrived")]
        return []

    def _window(
        self, route: RouteView, expect: ExpectDef, cron: Cron, deadline: datetime
    ) -> DeliveryWindow:
        stream = window_stream_id(route.route_id, deadline)
        try:
            window: DeliveryWindow = self.app.repository.get(stream)
            return window
        except AggregateNotFoundError:
            pass
        start = cron.previous(deadline - _TINY) or deadline - timedelta(days=1)
        return DeliveryWindow.open(
            customer_id=route.customer_id,
            route_id=route.route_id,
            deadline=deadline,
            window_start=start,
            expected_files=expect.min_files,
            tz=expect.tz,
        )
