"""The bytes-per-day limit in the executor (issue 15, fair sharing; ferry/daily_bytes.py has the
decision and the count, docs/data-plane.md "Fair sharing" the rules).

POST /transfers refuses a customer's new jobs once its jobs delivered its daily bytes today
(UTC), but jobs admitted before that (a backlog queued in the morning), retries and every
route-started job (never refused at request time) would still run and blow the budget. So the
executor checks too, before the customer slot and the lease: a job of a customer over its
budget is *held until the next 00:00 UTC* — its message is put out of sight, no lease is taken,
no attempt is consumed, the job stays QUEUED (cancellable at once). A running job is never cut:
the check is an admission check, so a customer can overshoot by what its jobs already running
deliver (and by the projection's lag of a few seconds).

How a held message waits: its visibility is extended to the next midnight (at most SQS's 12 h:
a job held longer comes back at noon, is checked again and put away again). Every receive counts
toward the executor queue's maxReceiveCount (10), so a message received ``FRESH_COPY_AT`` times
or more is replaced by a fresh copy instead (``SqsQueue.requeue``: same body, receive count 0,
visible after at most 900 s, then put away by visibility as before): a job may wait any number
of days without reaching the DLQ.

What one executor process knows is cached (:class:`DailyBudget`): a customer found over its
budget stays over until the UTC day changes (delivered bytes only grow within a day); one found
under is not asked again for ``recheck_seconds``. A failed count allows (logged), like the API.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ferry.daily_bytes import (
    DeliveredBytes,
    DynamoDailyBytes,
    daily_bytes_refusal,
    day_of,
    seconds_until_next_utc_day,
)

if TYPE_CHECKING:
    from services.executor.settings import ExecutorSettings

log = logging.getLogger(__name__)

__all__ = ["FRESH_COPY_AT", "SQS_LONGEST_VISIBILITY", "DailyBudget"]

#: a held message received this many times is replaced by a fresh copy (the executor queue's
#: maxReceiveCount is 10: the margin is for receives that are not holds — slot waits, crashes)
FRESH_COPY_AT = 4
#: SQS's longest visibility timeout is 12 h from the receive; a little less, to stay inside it
SQS_LONGEST_VISIBILITY = 43_200 - 60


class DailyBudget:
    """The executor loop's bytes-per-day check (thread-safe). ``delivered`` None or no limit
    for the customer: never holds."""

    def __init__(
        self,
        delivered: DeliveredBytes | None,
        limit_of: Callable[[str], int | None],
        *,
        recheck_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delivered = delivered
        self.limit_of = limit_of
        self.recheck_seconds = recheck_seconds
        self.clock = clock
        self.monotonic = monotonic
        self._over: dict[str, str] = {}  # customer → the UTC day it is over its budget
        self._under: dict[str, tuple[str, float]] = {}  # customer → (day, ask again after)
        self._lock = threading.Lock()

    @classmethod
    def of(cls, settings: ExecutorSettings) -> DailyBudget:
        """From the executor's settings: the job-stats table is read only when some customer
        has a limit."""
        reader = (
            DynamoDailyBytes(settings.table("job_stats")) if settings.daily_bytes_limited else None
        )
        return cls(
            reader,
            settings.daily_bytes_limit_of,
            recheck_seconds=settings.daily_bytes_recheck_seconds,
        )

    def wait_seconds(self, customer_id: str) -> int | None:
        """None: the customer's job may start now. Else the whole seconds until 00:00 UTC,
        when its budget is back."""
        limit = self.limit_of(customer_id)
        if limit is None or self.delivered is None:
            return None
        now = self.clock()
        day = day_of(now)
        with self._lock:
            if self._over.get(customer_id) == day:
                return seconds_until_next_utc_day(now)
            under = self._under.get(customer_id)
            if under is not None and under[0] == day and under[1] > self.monotonic():
                return None
        try:
            delivered = self.delivered.delivered_today(customer_id, now)
        except Exception as exc:  # fail open: a failed count never holds a job
            log.warning("bytes delivered today by %s not counted: %r", customer_id, exc)
            delivered = None
        refusal = daily_bytes_refusal(delivered, limit, now)
        with self._lock:
            if refusal is None:
                self._under[customer_id] = (day, self.monotonic() + self.recheck_seconds)
                return None
            self._over[customer_id] = day
            self._under.pop(customer_id, None)
        log.info(
            "customer %s delivered %d of its daily_bytes_limit %d today: its jobs wait %d s "
            "for 00:00 UTC",
            customer_id,
            refusal.delivered,
            refusal.limit,
            refusal.retry_after,
        )
        return refusal.retry_after

    def hold(self, queue: Any, message: Any, customer_id: str) -> bool:
        """True when the job waits for the next UTC day: its message is put out of sight until
        then (``queue``: ``SqsQueue``; a fresh copy once it was received often). No lease, no
        attempt. False: go ahead."""
        wait = self.wait_seconds(customer_id)
        if wait is None:
            return False
        if getattr(message, "receive_count", 1) >= FRESH_COPY_AT:
            try:
                if not queue.requeue([message], [min(900, wait)]):
                    return True
            except Exception as exc:  # the original is still held: put it away as below
                log.warning("message %s: fresh copy not sent: %r", message.message_id, exc)
        try:
            queue.extend(message, min(wait, SQS_LONGEST_VISIBILITY))
        except Exception as exc:  # it comes back after its visibility timeout and is held again
            log.warning("message %s: visibility not changed: %r", message.message_id, exc)
        return True
