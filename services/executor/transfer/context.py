"""What one attempt shares with the worker: the record/check/cancel callbacks, the outcome
exceptions, and the TEST ONLY hooks (fault injection, read counters)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.executor.domain import Transfer
from services.executor.transfer.throttle import Throttle

__all__ = [
    "Abandoned",
    "Cancelled",
    "Fault",
    "LeaseLost",
    "Restart",
    "RunContext",
    "Stats",
    "commit_point",
]


class Cancelled(Exception):
    """A cancel was requested for the job (its stream, read at a commit point): stop before
    publishing anything, clean up, release the lease with outcome=cancelled."""


class Abandoned(Exception):
    """The process is stopping (SIGTERM): leave the job for another executor."""


class LeaseLost(Exception):
    """Another executor appended to the Transfer stream: stop without writing."""


class Restart(Exception):
    """The partial state of a leg can't be resumed: start the leg again from nothing."""


class Fault:
    """TEST ONLY fault injection: ``FERRY_EXECUTOR_FAULT=point[:n]`` SIGKILLs this process at
    the named point (``before_first_chunk``, ``after_chunk:N`` — the N-th chunk commit of this
    process, whichever chunk it is —, ``before_publish``, ``after_publish``, ``after_write``: a
    single-object write — PUT or CopyObject — landed and its commit is not recorded yet). Inert
    unless that setting is present."""

    def __init__(self, spec: str | None) -> None:
        self.point, _, n = (spec or "").partition(":")
        self.n = int(n) if n else 1
        self.chunks = 0
        self._lock = threading.Lock()

    def hit(self, point: str) -> None:
        if not self.point:
            return
        if point == "chunk":
            with self._lock:
                self.chunks += 1
                if self.point == "after_chunk" and self.chunks >= self.n:
                    os.kill(os.getpid(), signal.SIGKILL)
        elif point == self.point:
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Stats:
    """TEST ONLY read counters of one attempt (the worker writes them to ``stats_file``)."""

    source_bytes: int = 0
    target_reread_bytes: int = 0
    chunks_committed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)


@dataclass
class RunContext:
    """Callbacks a run needs from the worker. ``record`` is serialised by the worker (one
    lock): the K chunk workers of a leg may call it at once."""

    record: Callable[[Callable[[Transfer], Any]], Any]
    check: Callable[[], None] = lambda: None
    #: a cheap, strongly consistent "was a cancel requested?" (the job's stream)
    cancelled: Callable[[], bool] = lambda: False
    fault: Fault = field(default_factory=lambda: Fault(None))
    stats: Stats = field(default_factory=Stats)
    #: the bandwidth budget (transfer/throttle.py): re-rated by the worker's heartbeat
    throttle: Throttle = field(default_factory=Throttle)
    #: set just before the first write that can publish the file at the target (rename,
    #: multipart completion, single PUT, CopyObject): from then on a cancel is too late
    publishing: bool = False


def commit_point(ctx: RunContext, *, publish: bool = False) -> None:
    """Before a chunk commit or the publish: stop if the lease is lost / the process stops,
    and honour a requested cancel. ``publish``: the next call may publish the file, so a cancel
    requested after this point is too late (the rename decides, not the request). Once a
    publishing write has started (a single PUT is a chunk's write), later commit points only
    check the lease: the file may be at the target, so the job cannot become CANCELLED."""
    ctx.check()
    if not ctx.publishing and ctx.cancelled():
        raise Cancelled()
    if publish:
        ctx.publishing = True
