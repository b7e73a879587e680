"""One slow partner directory never delays the others: two pull routes against the suite's real
OpenSSH sshd, one of them through a WAN delay line on 127.0.0.1 (bench/wan_relay.py: every
segment held 150 ms each way, and a directory of many entries), the other direct. The scanner
lists due routes on its worker pool under per-route leases and its loop does not wait for
listings: the fast route's files are dispatched tick after tick while the slow listing is still
running, and the slow route is never listed twice at once (it is skipped while in flight)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from bench.wan_relay import WanRelay
from services.routes.scanner import Scanner, ScannerPolicy, build_scanner
from tests.integration.routes_harness import RoutesStack
from tests.integration.test_routes_pull import _sftp_endpoint, _write
from tests.support.moto_server import unique_name
from tests.support.sshd import SshdServer

#: (entries in the slow directory, one-way delay ms): the default suite runs the short one
SHORT, LONG = (20, 100), (300, 150)


def _route(stack: RoutesStack, name: str, source: str, directory: str, target: str) -> str:
    return stack.create_route(
        {
            "name": name,
            "source": {"endpoint_id": source, "path": directory, "pattern": "*.csv"},
            "targets": [{"endpoint_id": target, "path_template": f"{name}/{{filename}}"}],
            "trigger": {"type": "schedule", "every": "1m"},
            "stable": {"checks": 1},
        }
    )


def _wait(condition: Any, timeout: float) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError("timed out")
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.parametrize(
    "shape", [SHORT, pytest.param(LONG, marks=pytest.mark.slow)], ids=["short", "long"]
)
def test_a_slow_sftp_listing_does_not_delay_the_other_routes(
    aws_env: dict[str, str], sshd: SshdServer, sftp_dir: Path, shape: tuple[int, int]
) -> None:
    entries, delay_ms = shape
    stack = RoutesStack()
    bucket = unique_name("iso")
    boto3.client("s3").create_bucket(Bucket=bucket)
    target = stack.put_endpoint("s3", bucket=bucket, prefix="")
    for name in ("fast", "slow"):
        (sftp_dir / name).mkdir()
        sshd.chown_to_user(sftp_dir / name)
    for i in range(entries):  # many entries: many READDIR round trips through the delay
        _write(sshd, sftp_dir / "slow" / f"s{i:04d}.txt", b"x")
    _write(sshd, sftp_dir / "slow" / "late.csv", b"slow,1\n")
    _write(sshd, sftp_dir / "fast" / "one.csv", b"fast,1\n")

    with WanRelay((sshd.host, sshd.port), delay_ms) as relay:
        fast_ep = _sftp_endpoint(stack, sshd, sftp_dir)
        slow_ep = _sftp_endpoint(stack, sshd, sftp_dir)
        _through(stack, slow_ep, relay)  # the same sshd, behind the delay line
        fast = _route(stack, "fast", fast_ep, "fast", target)
        slow = _route(stack, "slow", slow_ep, "slow", target)
        built = build_scanner(settings=stack.settings, app=stack.app)
        scanner = Scanner(
            app=built.app,
            routes=built.routes,
            endpoints=built.endpoints,
            sources=built.sources,
            state=built.state,
            job_status=built.job_status,
            policy=ScannerPolicy(workers=2),
        )
        try:
            now = time.time()
            start = time.monotonic()
            scanner.tick(now, wait=False)
            fast_first = _wait(lambda: _dispatched(stack, fast) == 1, 20)
            assert slow in scanner._inflight, "the slow listing finished before the fast one"

            # the next tick, while the slow listing still runs: the fast route is scanned
            # again (and its new file sent); the slow one is not started a second time
            _write(sshd, sftp_dir / "fast" / "two.csv", b"fast,2\n")
            report = scanner.tick(now + 61, wait=False)
            assert report.leased_elsewhere == 1  # the slow route, in flight
            fast_second = _wait(lambda: _dispatched(stack, fast) == 2, 20)
            assert slow in scanner._inflight

            slow_done = _wait(lambda: _dispatched(stack, slow) == 1, 120)
            slow_total = time.monotonic() - start
        finally:
            scanner.close()
    print(
        f"fast route: first dispatch {fast_first:.2f}s, second tick's {fast_second:.2f}s; "
        f"slow listing (delay {delay_ms} ms, {entries} entries): {slow_total:.1f}s"
    )
    assert fast_first < slow_total / 2
    assert slow_done > 0 and stack.job_requested_count() == 3


def _dispatched(stack: RoutesStack, route_id: str) -> int:
    """Dispatched files of the route, from its ledger."""
    count = 0
    for path in ("fast/one.csv", "fast/two.csv", "slow/late.csv"):
        ledger = stack.app.ledger(route_id, path)
        if ledger is not None and ledger.dispatched:
            count += 1
    return count


def _through(stack: RoutesStack, endpoint_id: str, relay: WanRelay) -> None:
    from events.dynamodb_values import deserialize, serialize

    key = {"endpoint_id": {"S": endpoint_id}}
    item = deserialize(stack.ddb.get_item(TableName=stack.names.endpoints_table, Key=key)["Item"])
    item["config"] = {**item["config"], "host": relay.host, "port": relay.port}
    stack.ddb.put_item(TableName=stack.names.endpoints_table, Item=serialize(item))
