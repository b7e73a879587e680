"""bench/wan_relay.py: the delay is there, the throughput is kept, the bytes arrive intact."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

from bench.wan_relay import WanRelay, selftest

MiB = 1024 * 1024


def test_round_trip_is_twice_the_delay_and_bulk_is_not_stop_and_wait() -> None:
    got = selftest(delay_ms=20, size=64 * MiB, pings=5)
    assert 39 <= got.rtt_ms <= 60, got
    # Stop-and-wait with 1 MiB segments would move ≤ 1 MiB per 40 ms RTT (≈ 26 MB/s).
    assert got.one_way_mb_s > 100, got


def test_bytes_arrive_in_order_both_ways() -> None:
    data = os.urandom(8 * MiB + 3)
    server = socket.create_server(("127.0.0.1", 0))
    seen: dict[str, str] = {}

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            digest, total = hashlib.sha256(), 0
            while total < len(data):
                block = conn.recv(1 << 20)
                digest.update(block)
                total += len(block)
            seen["server"] = digest.hexdigest()
            conn.sendall(data[::-1])

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    relay = WanRelay(server.getsockname()[:2], delay_ms=5)
    with relay, socket.create_connection((relay.host, relay.port)) as s:
        s.sendall(data)
        back = bytearray()
        while len(back) < len(data):
            back += s.recv(1 << 20)
    t.join(10)
    server.close()
    assert seen["server"] == hashlib.sha256(data).hexdigest()
    assert bytes(back) == data[::-1]
