"""Bandwidth caps: one pacer per leg, fed by the attempt's share of each endpoint's cap.

The budget (how a cap is shared). An endpoint's ``bandwidth_limit`` (bytes/s) is shared by
every transfer holding one of its semaphore slots (``DynamoSemaphore``: a slot per active
transfer, renewed at every heartbeat), in every executor: each takes ``cap ÷ holders``. The
executor computes that share when the attempt starts and again at every heartbeat, from the
endpoint's *current* limit (the endpoints read model, where it reads the endpoint's config) and
the count of live slots — so a cap set, changed or lifted mid-transfer takes effect within one
heartbeat, and a transfer joining or leaving changes the others' shares within one heartbeat.
A leg paces at the lowest of the job's own ``options.bandwidth_limit`` and the shares of the
endpoints its bytes touch (S3→SFTP, SFTP→S3: both; SFTP→SFTP: leg 1 the source's, leg 2 the
target's). Why not a token-bucket item in DynamoDB: that is a conditional write per chunk per
transfer on one hot item (and refills computed from several executors' clocks); the split costs
one Query per capped endpoint per heartbeat and no per-chunk call. What the split gives up: a
holder that moves less than its share (a lower job limit, a slow partner, verifying) leaves that
bandwidth unused, and a transfer that joins is paced by the others only from their next
heartbeat (overshoot ≤ heartbeat x cap; docs/data-plane.md "Bandwidth caps").

The pacer (how a share is enforced). :class:`Pacer` is a token bucket of one chunk, at chunk
granularity: the pipeline's reader asks it for a chunk's bytes *before* reading the chunk
(after taking one of the K slots), and waits until they are earned — so K chunks in flight
together respect the rate, and pacing holds no chunk in memory (what waits is a number, not
bytes). It keeps no state in the Transfer stream: a resume moves the missing chunks at the rate
of the new attempt, and the resume rule is unchanged. Lifting the cap wakes a waiting reader
at once; changing it re-times the wait from the moment of the change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping

__all__ = ["Pacer", "Throttle", "endpoint_shares"]

#: longest single wait, so a waiting reader notices a stop (lease lost, SIGTERM, a failure)
_SLICE = 0.25


class Pacer:
    """A token bucket of ``rate`` bytes/s (None: unlimited) that starts empty and holds at
    most one chunk (the largest asked for): a reservation of ``n`` bytes is allowed once the
    bucket has refilled them. So the time a reader spends between chunks counts (the rate is
    kept, not undershot), and an idle pause earns a burst of one chunk at most. ``clock`` and ``sleep`` are
    injectable (tests: a fake clock). Thread-safe; in the pipeline one reader calls
    :meth:`take`, the heartbeat calls :meth:`set_rate`."""

    def __init__(
        self,
        rate: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[threading.Condition, float], None] | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep or (lambda cond, seconds: cond.wait(seconds))
        self._cond = threading.Condition()
        self._rate = _valid(rate)
        #: bytes earned and not spent (at most ``_capacity``), negative while owed
        self._tokens = 0.0
        self._capacity = 0.0
        self._at = clock()
        self.waited = 0.0  # seconds spent waiting (for logs and tests)

    @property
    def rate(self) -> float | None:
        with self._cond:
            return self._rate

    def _refill(self, now: float) -> None:
        if self._rate is not None:
            self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now

    def set_rate(self, rate: float | None) -> None:
        """A new rate from now on (what is owed is re-timed at it); None lifts the cap and
        forgives what is owed. Wakes a waiting reader."""
        rate = _valid(rate)
        with self._cond:
            self._refill(self._clock())
            self._rate = rate
            if rate is None:
                self._tokens = 0.0
            self._cond.notify_all()

    def take(
        self,
        n: int,
        stopped: Callable[[], bool] = lambda: False,
        check: Callable[[], None] = lambda: None,
    ) -> bool:
        """Reserve ``n`` bytes and wait until they are earned. False when ``stopped()``
        became true while waiting; ``check()`` (may raise) is called at least every 0.25 s."""
        with self._cond:
            self._refill(self._clock())
            if self._rate is None:
                return True
            self._capacity = max(self._capacity, float(n))
            self._tokens -= n
            started = self._clock()
            try:
                while True:
                    self._refill(self._clock())
                    if self._rate is None or self._tokens > -1.0:  # within a byte
                        return True
                    if stopped():
                        self._tokens += n  # not read: give the reservation back
                        return False
                    check()
                    self._sleep(self._cond, min(_SLICE, max(1e-3, -self._tokens / self._rate)))
            finally:
                self.waited += self._clock() - started


def _valid(rate: float | None) -> float | None:
    if rate is None:
        return None
    if rate <= 0:
        raise ValueError(f"a rate is positive bytes/s, not {rate!r}")
    return float(rate)


class Throttle:
    """The bandwidth budget of one attempt: the job's own limit and this attempt's share of
    each capped endpoint. :meth:`pacer` gives a leg its pacer (by the endpoints its bytes
    touch); :meth:`set_shares` (attempt start, every heartbeat) re-rates every pacer."""

    def __init__(self, job_limit: int | None = None) -> None:
        self.job_limit = job_limit
        self._lock = threading.Lock()
        self._shares: dict[str, float | None] = {}
        self._pacers: list[tuple[tuple[str, ...], Pacer]] = []

    def rate(self, endpoint_ids: Iterable[str]) -> float | None:
        """The lowest of the job's limit and the shares of ``endpoint_ids`` (None: no cap)."""
        with self._lock:
            return self._rate(tuple(endpoint_ids))

    def _rate(self, endpoint_ids: tuple[str, ...]) -> float | None:
        limits = [float(self.job_limit)] if self.job_limit else []
        limits += [s for e in endpoint_ids if (s := self._shares.get(e)) is not None]
        return min(limits) if limits else None

    def pacer(self, endpoint_ids: Iterable[str]) -> Pacer:
        ids = tuple(dict.fromkeys(endpoint_ids))
        with self._lock:
            made = Pacer(self._rate(ids))
            self._pacers.append((ids, made))
            return made

    def set_shares(self, shares: Mapping[str, float | None]) -> None:
        with self._lock:
            self._shares = dict(shares)
            pacers = [(p, self._rate(ids)) for ids, p in self._pacers]
        for pacer, rate in pacers:
            if pacer.rate != rate:
                pacer.set_rate(rate)

    @property
    def shares(self) -> dict[str, float | None]:
        with self._lock:
            return dict(self._shares)


def endpoint_shares(
    endpoint_ids: Iterable[str],
    *,
    limit_of: Callable[[str], int | None],
    holders: Callable[[str], int],
) -> dict[str, float | None]:
    """Each endpoint's share for one holder: its current ``bandwidth_limit`` ÷ the transfers
    holding its slots (at least 1: this one). Holders are only counted for capped endpoints."""
    out: dict[str, float | None] = {}
    for endpoint_id in dict.fromkeys(endpoint_ids):
        cap = limit_of(endpoint_id)
        out[endpoint_id] = None if not cap else cap / max(1, holders(endpoint_id))
    return out
