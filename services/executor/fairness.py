"""Fair sharing between customers (issue 15): each customer runs at most its limit of jobs at
once across every executor, and a customer at its limit never holds up another's jobs.

The limit is the endpoints' DynamoDB slot semaphore (``DynamoSemaphore``) under the key
``customer#<customer_id>``: the executor loop takes a customer slot before it hands a message
to a worker (before the endpoint slots and the lease), the worker renews it with the endpoint
slots at every heartbeat and releases it with them. A message whose customer is at its limit is
put back at the end of the queue (``SqsQueue.requeue``: a fresh copy, so waiting never counts
toward the DLQ's maxReceiveCount), behind the other customers' messages — the queue itself is
the round robin. Receiving up to 10 messages a poll while a customer is blocked lets one
executor step past a long backlog of that customer in a few requests.

:class:`Admission` keeps what one executor process knows: which customers were at their limit
a moment ago (not asked again for ``recheck_seconds`` unless one of their jobs ends here), how
long their jobs run here, and when each waiting customer's next put-back job is due — a
put-back message is delayed to its place in its customer's line (``put_back``), so the queue
holds few visible messages of a customer at its limit and another customer's job is reached
in a poll or two, whatever the backlog.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["CUSTOMER_KEY_PREFIX", "Admission", "customer_key"]

CUSTOMER_KEY_PREFIX = "customer#"
#: a job's run time before this executor has seen one end (the put-back spacing's basis). Short
#: on purpose: too short costs requests, bounded (a job put back again goes to the end of its
#: customer's line, so at most limit / FIRST_GUESS put-backs a second per waiting customer);
#: too long leaves a waiting customer's freed slots idle (measured: 1 s made a 40-job backlog
#: of 0.3 s jobs take 3.4x its time at the limit)
FIRST_GUESS = 0.25
_SCHEDULED_PRUNE_AT = 100_000


def customer_key(customer_id: str) -> str:
    """The customer's partition in the slot semaphore's table (endpoint ids are UUIDs)."""
    return f"{CUSTOMER_KEY_PREFIX}{customer_id}"


class Admission:
    """The executor loop's fair-share check. ``admit`` and ``put_back`` run on the loop's
    thread; ``ended`` on the workers' threads."""

    def __init__(
        self,
        semaphore: Any,
        limit_of: Callable[[str], int],
        *,
        lease_seconds: float,
        recheck_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.semaphore = semaphore
        self.limit_of = limit_of
        self.lease_seconds = lease_seconds
        self.recheck_seconds = recheck_seconds
        self.clock = clock
        self._blocked: dict[str, float] = {}  # customer → ask the semaphore again after
        self._next: dict[str, float] = {}  # customer → when its next put-back job is due
        self._duration: dict[str, float] = {}  # customer → its jobs' run time here (EWMA)
        self._scheduled: dict[str, float] = {}  # job put back → when it is due
        self._lock = threading.Lock()

    def admit(self, customer_id: str, holder: str, job_id: str = "") -> tuple[str, int] | None:
        """The customer's slot for this job, or None when the customer is at its limit."""
        now = self.clock()
        with self._lock:
            if self._blocked.get(customer_id, 0.0) > now:
                return None
        key = customer_key(customer_id)
        slot = self.semaphore.try_acquire(
            key, self.limit_of(customer_id), holder, self.lease_seconds
        )
        with self._lock:
            if slot is None:
                self._blocked[customer_id] = now + self.recheck_seconds
                return None
            self._blocked.pop(customer_id, None)
            self._scheduled.pop(job_id, None)
        return key, slot

    def put_back(self, customer_id: str, job_id: str) -> int:
        """Schedule a job of a customer at its limit: the delay (whole seconds) before its
        message is visible again.

        A new job takes the end of the customer's line, whose places are ``duration / limit``
        apart from now, where duration is its jobs' run time seen here (any customer's until
        one of its own ended, ``FIRST_GUESS`` before any): the jobs come back about when its
        slots free up, a few at a time, so a long backlog is not stepped over again at every
        poll and the next customer's job is never far back in the queue. A job that came back
        at its place and still finds the customer at its limit keeps its place, 1 s later (SQS
        delays are whole seconds: several places share a second, and the customer's slots free
        during it). 900 s is SQS's longest delay (a job due later comes back then)."""
        now = self.clock()
        with self._lock:
            due_before = self._scheduled.get(job_id)
            if due_before is not None and due_before <= now + 1:
                self._scheduled[job_id] = now + 1
                return 1
            duration = self._duration.get(customer_id) or self._duration.get("", FIRST_GUESS)
            spacing = duration / max(1, self.limit_of(customer_id))
            due = max(self._next.get(customer_id, now), now)
            self._next[customer_id] = due + spacing
            self._scheduled[job_id] = due
            if len(self._scheduled) > 2 * _SCHEDULED_PRUNE_AT:  # forget jobs long gone
                self._scheduled = {
                    j: d for j, d in self._scheduled.items() if d > now - 900
                }  # fmt: skip
        return min(900, math.ceil(due - now))

    def ended(self, customer_id: str, seconds: float | None = None) -> None:
        """One of the customer's jobs ended here (after ``seconds``): its slot is free, ask the
        semaphore again."""
        with self._lock:
            self._blocked.pop(customer_id, None)
            if seconds is not None:
                for key in (customer_id, ""):  # "": every customer's jobs
                    last = self._duration.get(key)
                    self._duration[key] = seconds if last is None else 0.7 * last + 0.3 * seconds
