"""A WAN delay line on loopback: a TCP relay that holds every segment for a fixed one-way delay.

    .venv/bin/python bench/wan_relay.py --target 127.0.0.1:2222 --delay-ms 25 [--listen-port 0]
    .venv/bin/python bench/wan_relay.py --selftest [--delay-ms 25]

This kernel has no ``tc netem``; this is the user-space stand-in. For each accepted connection
the relay connects to the target and runs two directions, each as a reader thread and a writer
thread around a timestamped queue: the reader stamps every ``recv`` with ``now + delay`` and
appends it; the writer sleeps until the head's due time and sends it. Reading never waits for
writing, so the line is **throughput-preserving** (no stop-and-wait): a stream of R bytes/s
keeps flowing at R with R x delay bytes in flight in the queue, exactly like a long pipe. RTT
through it = 2 x delay + loopback. The queue per direction is capped (``max_in_flight``, 256 MiB
by default: far above 25-50 ms x the rates seen here) so memory stays bounded; a full queue
stalls the reader like a full pipe.

What it models and what not: the application-level windows that dominate SFTP over distance —
SSH channel windows, SFTP outstanding requests, S3-less ping-pong (open/stat/close round trips)
— see the full delay. TCP's own congestion window and loss are **not** modelled (each side's
TCP ends at the relay, on loopback): a real 50 ms path with loss would be slower, never faster.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

RECV_SIZE = 1 << 20


@dataclass
class _Line:
    """One direction: stamped segments between a reader and a writer."""

    delay: float
    max_in_flight: int
    queue: collections.deque[tuple[float, bytes]] = field(default_factory=collections.deque)
    queued: int = 0
    closed: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)

    def put(self, data: bytes) -> None:
        with self.cond:
            while self.queued >= self.max_in_flight and not self.closed:
                self.cond.wait()
            self.queue.append((time.monotonic() + self.delay, data))
            self.queued += len(data)
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def get(self) -> bytes | None:
        """The next segment once due; None at end of stream."""
        with self.cond:
            while not self.queue:
                if self.closed:
                    return None
                self.cond.wait()
            due, data = self.queue[0]
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        with self.cond:
            self.queue.popleft()
            self.queued -= len(data)
            self.cond.notify_all()
        return data


def _pump(src: socket.socket, dst: socket.socket, line: _Line) -> list[threading.Thread]:
    def reader() -> None:
        try:
            while data := src.recv(RECV_SIZE):
                line.put(data)
        except OSError:
            pass
        finally:
            line.close()

    def writer() -> None:
        try:
            while (data := line.get()) is not None:
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            with contextlib.suppress(OSError):
                src.shutdown(socket.SHUT_RDWR)
            line.close()

    threads = [
        threading.Thread(target=reader, daemon=True, name="relay-read"),
        threading.Thread(target=writer, daemon=True, name="relay-write"),
    ]
    for t in threads:
        t.start()
    return threads


class WanRelay:
    """``with WanRelay(("127.0.0.1", port), delay_ms=25) as relay: connect to relay.port``."""

    def __init__(
        self,
        target: tuple[str, int],
        delay_ms: float,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        max_in_flight: int = 256 << 20,
    ) -> None:
        self.target = target
        self.delay = delay_ms / 1000.0
        self.max_in_flight = max_in_flight
        self._server = socket.create_server((listen_host, listen_port))
        self.host, self.port = self._server.getsockname()[:2]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True, name="relay-accept")

    def start(self) -> WanRelay:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns += [client, upstream]
            _pump(client, upstream, _Line(self.delay, self.max_in_flight))
            _pump(upstream, client, _Line(self.delay, self.max_in_flight))

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.close()
        for s in self._conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def __enter__(self) -> WanRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def maybe_relay(target: tuple[str, int], delay_ms: float) -> Iterator[tuple[str, int]]:
    """The address to connect to: the target itself at 0 ms, else a relay in front of it."""
    if delay_ms <= 0:
        yield target
        return
    with WanRelay(target, delay_ms) as relay:
        yield relay.host, relay.port


# --- self-test ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SelfTest:
    delay_ms: float
    rtt_ms: float  # median of small ping-pongs through the relay
    one_way_mb_s: float  # a bulk stream through it (sink counts, then acknowledges)
    direct_mb_s: float  # the same stream straight to the sink


def _sink_server() -> tuple[socket.socket, threading.Thread]:
    """Echoes 1-byte pings; for a bulk stream (first byte b'B') counts to EOF and replies."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_serve_one, args=(conn,), daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return server, t


def _serve_one(conn: socket.socket) -> None:
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        first = conn.recv(1)
        if first == b"B":
            total = 1
            while data := conn.recv(RECV_SIZE):
                total += len(data)
            conn.sendall(str(total).encode())
            return
        while first:
            conn.sendall(first)
            first = conn.recv(1)


def _bulk(addr: tuple[str, int], size: int) -> float:
    block = b"B" + bytes(RECV_SIZE - 1)
    with socket.create_connection(addr) as s:
        started = time.monotonic()
        sent = 0
        while sent < size:
            s.sendall(block)
            sent += len(block)
        s.shutdown(socket.SHUT_WR)
        got = int(s.recv(64))
        seconds = time.monotonic() - started
    assert got == sent, (got, sent)
    return sent / seconds / 1e6


def selftest(delay_ms: float = 25.0, size: int = 256 << 20, pings: int = 7) -> SelfTest:
    server, _ = _sink_server()
    target = server.getsockname()[:2]
    try:
        direct = _bulk(target, size)
        with WanRelay(target, delay_ms) as relay:
            with socket.create_connection((relay.host, relay.port)) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                rtts = []
                for _ in range(pings):
                    t0 = time.monotonic()
                    s.sendall(b"p")
                    assert s.recv(1) == b"p"
                    rtts.append((time.monotonic() - t0) * 1000)
            through = _bulk((relay.host, relay.port), size)
    finally:
        server.close()
    rtts.sort()
    return SelfTest(delay_ms, rtts[len(rtts) // 2], through, direct)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--target", help="host:port to relay to")
    ap.add_argument("--delay-ms", type=float, default=25.0, help="one-way delay")
    ap.add_argument("--listen-port", type=int, default=0)
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--selftest-mib", type=int, default=256)
    args = ap.parse_args()
    if args.selftest:
        got = selftest(args.delay_ms, args.selftest_mib << 20)
        print(
            f"delay {got.delay_ms:.0f} ms one way: RTT {got.rtt_ms:.1f} ms "
            f"(expected ≈ {2 * got.delay_ms:.0f}); bulk {got.one_way_mb_s:.0f} MB/s through the "
            f"relay vs {got.direct_mb_s:.0f} direct"
        )
        return 0
    if not args.target:
        ap.error("--target or --selftest")
    host, port = args.target.rsplit(":", 1)
    relay = WanRelay((host, int(port)), args.delay_ms, listen_port=args.listen_port).start()
    print(f"relay 127.0.0.1:{relay.port} -> {args.target}, {args.delay_ms} ms one way", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        relay.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
