"""A small process supervisor for the local stack: stands in for ECS / Lambda's process lifecycle.

Each service runs as its own process in its own process group (so a service's own children go
with it), its stdout and stderr in ``<log_dir>/<name>.log`` (one log per run of the stack: the last
runs' logs are kept as ``<name>.log.1`` … ``.3``). A service that dies is
restarted with exponential backoff (as ECS or Lambda would start a new task/instance); a
*critical* one (moto server: its state is in memory) is not restarted — its death stops the
stack. ``stop()`` sends SIGTERM to every process group, waits, then SIGKILLs what is left, so
nothing survives the stack. Children also get SIGTERM if the supervisor itself dies
(``PR_SET_PDEATHSIG``), so even a SIGKILLed ``ferry up`` leaves nothing behind.

The supervisor records ``{name: pid}`` in ``<state_dir>/pids.json`` whenever it (re)starts a
process (tests and ``ferry`` use it to find the stack's processes) and removes it on ``stop()``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1
MAX_BACKOFF_SECONDS = 30.0
HEALTHY_AFTER_SECONDS = 30.0  # a process up this long resets its backoff


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None  # extra variables on top of the supervisor's environment
    critical: bool = False  # its death stops the whole stack instead of a restart
    cwd: str | None = None


@dataclass
class _Running:
    service: Service
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start_at: float = 0.0
    history: list[int] = field(default_factory=list)  # every pid it has had


class Supervisor:
    def __init__(
        self,
        log_dir: Path,
        state_dir: Path | None = None,
        *,
        base_env: dict[str, str] | None = None,
        on_event: Callable[[str], None] | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.state_dir = Path(state_dir) if state_dir else self.log_dir
        self.base_env = dict(base_env if base_env is not None else os.environ)
        self.on_event = on_event or (lambda _msg: None)
        self.stop_timeout = stop_timeout
        self._procs: dict[str, _Running] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self.failed: str | None = None  # name of a critical service that died
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------------------ start
    def add(self, service: Service, *, start: bool = True) -> None:
        with self._lock:
            self._procs[service.name] = _Running(service)
            if start:
                self._start(self._procs[service.name])

    def _start(self, running: _Running) -> None:
        service = running.service
        env = dict(self.base_env)
        env.update(service.env or {})
        env.setdefault("PYTHONUNBUFFERED", "1")
        if running.log is None:
            path = self.log_dir / f"{service.name}.log"
            if not running.history:  # this run's first start: the last run's log moves aside
                rotate(path, keep=LOGS_KEPT)
            running.log = open(path, "ab")  # noqa: SIM115
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        running.log.write(f"--- {stamp} supervisor: starting {service.name}\n".encode())
        running.log.flush()
        running.proc = subprocess.Popen(
            service.argv,
            stdin=subprocess.DEVNULL,
            stdout=running.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=service.cwd,
            start_new_session=True,  # own process group: killpg takes its children too
            preexec_fn=_die_with_parent,
        )
        running.started_at = time.monotonic()
        running.history.append(running.proc.pid)
        self._write_pids()

    def start_held(self, name: str) -> None:
        """Start a service that was added with ``start=False``."""
        with self._lock:
            running = self._procs[name]
            if running.proc is None:
                self._start(running)

    def pids(self) -> dict[str, int]:
        with self._lock:
            return {
                name: r.proc.pid
                for name, r in self._procs.items()
                if r.proc is not None and r.proc.poll() is None
            }

    def all_pids(self) -> list[int]:
        """Every pid any service has had (for leak checks)."""
        with self._lock:
            return [pid for r in self._procs.values() for pid in r.history]

    def restarts(self, name: str) -> int:
        with self._lock:
            return self._procs[name].restarts

    def _write_pids(self) -> None:
        path = self.state_dir / "pids.json"
        tmp = path.with_suffix(".tmp")
        payload = {"supervisor": os.getpid(), "services": self.pids()}
        tmp.write_text(json.dumps(payload))
        tmp.replace(path)

    # ------------------------------------------------------------------------------ watch
    def poll_once(self) -> None:
        """Restart dead services whose backoff has elapsed; note a dead critical service."""
        now = time.monotonic()
        with self._lock:
            if self._stopping.is_set():
                return
            for running in self._procs.values():
                proc = running.proc
                if proc is None:
                    if running.next_start_at and now >= running.next_start_at:
                        running.next_start_at = 0.0
                        self._start(running)
                    continue
                code = proc.poll()
                if code is None:
                    continue
                name = running.service.name
                # Its process group may still hold children: take them down with it.
                _killpg(proc.pid, signal.SIGKILL)
                running.proc = None
                if running.service.critical:
                    self.failed = name
                    self.on_event(f"{name} exited with code {code}; stopping the stack")
                    return
                if now - running.started_at >= HEALTHY_AFTER_SECONDS:
                    running.restarts = 0
                delay = min(MAX_BACKOFF_SECONDS, 0.5 * (2**running.restarts))
                running.restarts += 1
                running.next_start_at = now + delay
                self.on_event(f"{name} exited with code {code}; restarting in {delay:.1f} s")
            self._write_pids()

    def run(self, until: threading.Event | None = None, interval: float = 0.2) -> None:
        """Watch the services until ``until`` is set, a critical one dies, or stop() runs."""
        until = until or threading.Event()
        while not until.is_set() and not self._stopping.is_set() and self.failed is None:
            self.poll_once()
            until.wait(interval)

    # ------------------------------------------------------------------------------- stop
    def stop(self) -> None:
        """SIGTERM every process group, wait up to stop_timeout, then SIGKILL the rest.

        The services go first (they may still write to AWS while finishing: an executor
        releasing its lease), then the critical ones (moto server)."""
        self._stopping.set()
        with self._lock:
            running = [r for r in self._procs.values() if r.proc is not None]
            services = [r for r in running if not r.service.critical]
            critical = [r for r in running if r.service.critical]
            for phase in (services, critical):
                if phase:
                    names = ", ".join(r.service.name for r in reversed(phase))
                    self.on_event(f"stopping {names}")
                self._stop_group(list(reversed(phase)))
            for r in self._procs.values():
                if r.log is not None:
                    r.log.close()
                    r.log = None
            with contextlib.suppress(OSError):
                (self.state_dir / "pids.json").unlink()

    def kill_all(self) -> list[int]:
        """SIGKILL every process group at once and restart none (a crash, not a stop: nothing
        gets to finish or release anything); the pids killed. Logs stay open until stop()."""
        self._stopping.set()
        with self._lock:
            running = [r for r in self._procs.values() if r.proc is not None]
            for r in running:
                assert r.proc is not None
                _killpg(r.proc.pid, signal.SIGKILL)
            killed = []
            for r in running:
                assert r.proc is not None
                with contextlib.suppress(subprocess.TimeoutExpired):
                    r.proc.wait(timeout=5)
                killed.append(r.proc.pid)
                r.proc = None
            return killed

    def _stop_group(self, running: list[_Running]) -> None:
        for r in running:
            assert r.proc is not None
            _killpg(r.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for r in running:
            assert r.proc is not None
            remaining = max(0.1, deadline - time.monotonic())
            try:
                r.proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                pass
            _killpg(r.proc.pid, signal.SIGKILL)  # and any straggler in its group
            with contextlib.suppress(subprocess.TimeoutExpired):
                r.proc.wait(timeout=5)
            r.proc = None

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


LOGS_KEPT = 3


def rotate(path: Path, keep: int) -> None:
    """``name.log`` → ``name.log.1`` → … → ``name.log.<keep>`` (the oldest dropped): one log per
    run of the stack, the last ``keep`` runs kept."""
    if not path.exists():
        return
    for n in range(keep, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if n == keep:
            older.unlink(missing_ok=True)
        newer = path if n == 1 else path.with_name(f"{path.name}.{n - 1}")
        if newer.exists():
            newer.replace(older)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
