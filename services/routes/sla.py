"""Delivery SLAs (a route's ``expect``): the DeliveryWindow aggregate, one per (route, deadline).

A window is the span (previous deadline, deadline] of a route's ``expect`` schedule. Deliveries
are counted into it (FileCounted, internal: once per file version, with the time its
FileDelivered was recorded), and the check at or after the deadline decides from those times —
never from when the check happened to run — whether enough matching files were delivered by
the deadline:

- fewer than ``min_files`` delivered by the deadline: RouteFileLate (once per window; a window's
  stream is deterministic, so two checkers racing append it once: the second append conflicts);
- a window reported late gets its ``min_files``-th file: RouteFileArrived, late by N minutes
  (also when that delivery was counted before a late check ran: the check reports both).

Pure: no boto3, no clock (times are passed in).
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from events import contract as c
from events.aggregate import FerryAggregate

_WINDOW_NS = uuid5(NAMESPACE_URL, "https://ferry.invalid/route-window")


def window_stream_id(route_id: str, deadline: datetime) -> UUID:
    """The window stream of one deadline of one route: deterministic, so every checker and
    every settler finds the same one."""
    return uuid5(_WINDOW_NS, f"{route_id}\x00{deadline.isoformat()}")


class DeliveryWindow(FerryAggregate):
    class WindowOpened(FerryAggregate.Created):
        internal = True  # bookkeeping: RouteFileLate / RouteFileArrived are what is published
        route_id: str
        deadline: datetime
        window_start: datetime
        expected_files: int
        tz: str

    class FileCounted(FerryAggregate.Event):
        internal = True
        route_id: str
        path: str
        file_version: str
        delivered_at: datetime

    class RouteFileLate(FerryAggregate.Event):
        contract = c.RouteFileLate

    class RouteFileArrived(FerryAggregate.Event):
        contract = c.RouteFileArrived

    def __init__(
        self,
        *,
        customer_id: str,
        correlation_id: str,
        route_id: str,
        deadline: datetime,
        window_start: datetime,
        expected_files: int,
        tz: str,
    ) -> None:
        self.customer_id = customer_id
        self.correlation_id = correlation_id
        self.route_id = route_id
        self.deadline = deadline
        self.window_start = window_start
        self.expected_files = expected_files
        self.tz = tz
        self.counted: dict[str, tuple[datetime, str]] = {}  # path|version -> (delivered_at, path)
        self.late = False
        self.arrived = False

    @classmethod
    def open(
        cls,
        *,
        customer_id: str,
        route_id: str,
        deadline: datetime,
        window_start: datetime,
        expected_files: int,
        tz: str,
    ) -> DeliveryWindow:
        return cls._create(
            cls.WindowOpened,
            id=window_stream_id(route_id, deadline),
            customer_id=customer_id,
            correlation_id=route_id,
            route_id=route_id,
            deadline=deadline,
            window_start=window_start,
            expected_files=expected_files,
            tz=tz,
        )

    @event(FileCounted)
    def _counted(self, route_id: str, path: str, file_version: str, delivered_at: datetime) -> None:
        self.counted[f"{path}|{file_version}"] = (delivered_at, path)

    @event(RouteFileLate)
    def _late(
        self,
        route_id: str,
        deadline: datetime,
        window_start: datetime,
        expected_files: int,
        delivered_files: int,
        tz: str,
    ) -> None:
        self.late = True

    @event(RouteFileArrived)
    def _arrived(
        self,
        route_id: str,
        deadline: datetime,
        arrived_at: datetime,
        late_by_minutes: int,
        path: str,
    ) -> None:
        self.arrived = True

    # -- queries -----------------------------------------------------------------------------

    def on_time(self) -> int:
        return sum(1 for at, _ in self.counted.values() if at <= self.deadline)

    @property
    def satisfied(self) -> bool:
        return len(self.counted) >= self.expected_files

    @property
    def open_late(self) -> bool:
        """Reported late and still waiting for its files."""
        return self.late and not self.arrived

    # -- commands ----------------------------------------------------------------------------

    def count(self, path: str, file_version: str, delivered_at: datetime) -> bool:
        """A matching file version was delivered at ``delivered_at``: counted once. A window
        already reported late that now has its files records RouteFileArrived."""
        key = f"{path}|{file_version}"
        if key in self.counted or self.satisfied:
            return False
        self._counted(
            route_id=self.route_id, path=path, file_version=file_version, delivered_at=delivered_at
        )
        self._arrive_if_due()
        return True

    def check(self, now: datetime) -> bool:
        """At or after the deadline: RouteFileLate unless ``min_files`` were delivered by the
        deadline (by their delivery times, whenever this check runs). True if it appended."""
        if now < self.deadline or self.late:
            return False
        on_time = self.on_time()
        if on_time >= self.expected_files:
            return False
        self._late(
            route_id=self.route_id,
            deadline=self.deadline,
            window_start=self.window_start,
            expected_files=self.expected_files,
            delivered_files=on_time,
            tz=self.tz,
        )
        self._arrive_if_due()  # late files counted before this check ran
        return True

    def _arrive_if_due(self) -> None:
        if not self.open_late or not self.satisfied:
            return
        ordered = sorted(self.counted.values())
        arrived_at, path = ordered[self.expected_files - 1]
        late_by = max(0, int((arrived_at - self.deadline).total_seconds() // 60))
        self._arrived(
            route_id=self.route_id,
            deadline=self.deadline,
            arrived_at=arrived_at,
            late_by_minutes=late_by,
            path=path,
        )
