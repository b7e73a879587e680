"""The per-route scan lease on DynamoDB (moto server over HTTP): of workers racing for one
route exactly one holds it; it is renewed by its holder, taken over only after it expired,
released only by its holder; and two scanners (two processes' worth: separate stores, clients
and owners) racing on one due route list it once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3

from services.routes.adapters import DynamoScanStateStore
from services.routes.ports import ListedFile, SourceSession
from services.routes.scanner import Scanner, ScannerPolicy
from tests.integration.routes_harness import RoutesStack
from tests.support.fakes.routes import FakeJobs, FakeSource


def test_racing_workers_exactly_one_holds_the_lease(aws_env: dict[str, str]) -> None:
    stack = RoutesStack()
    stores = [
        DynamoScanStateStore(stack.names.route_scan_table, boto3.client("dynamodb"))
        for _ in range(8)
    ]
    barrier = threading.Barrier(len(stores))
    won: list[str] = []

    def race(n: int) -> None:
        barrier.wait()
        if stores[n].acquire_scan("route-1", f"w{n}", 1000.0, 60.0):
            won.append(f"w{n}")

    threads = [threading.Thread(target=race, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1
    holder, other = won[0], "w-late"
    store = stores[0]
    assert store.acquire_scan("route-1", holder, 1030.0, 60.0)  # renewed by its holder
    assert not store.acquire_scan("route-1", other, 1080.0, 60.0)  # renewal moved expiry
    store.release_scan("route-1", other)  # not the holder: nothing released
    assert not store.acquire_scan("route-1", other, 1080.0, 60.0)
    assert store.acquire_scan("route-1", other, 1091.0, 60.0)  # expired: taken over
    store.release_scan("route-1", other)
    assert store.acquire_scan("route-1", holder, 1092.0, 60.0)  # released: free again


class _SlowSource(FakeSource):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0  # listings running at once, at most

    def open(self, endpoint: Any) -> SourceSession:
        return self

    def iter_files(self, directory: str, recursive: bool) -> Iterator[ListedFile]:
        with self.lock:  # (FakeSource counts listings)
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(1.5)
            yield from super().iter_files(directory, recursive)
        finally:
            with self.lock:
                self.running -= 1


def test_two_scanners_on_one_due_route_list_it_once(aws_env: dict[str, str]) -> None:
    stack = RoutesStack()
    jobs = FakeJobs()
    stack.use_jobs(jobs)
    source = stack.put_endpoint("sftp", host="127.0.0.1", port=22, base_path="/p")
    target = stack.put_endpoint("s3", bucket="b", prefix="")
    route_id = stack.create_route(
        {
            "name": "leased",
            "source": {"endpoint_id": source, "path": "in"},
            "targets": [{"endpoint_id": target}],
            "trigger": {"type": "schedule", "every": "1m"},
        }
    )
    slow = _SlowSource()
    slow.put("in/a.csv", 3, 1.0)

    def scanner(n: int) -> Scanner:
        from services.routes.scanner import build_scanner

        built = build_scanner(settings=stack.settings, app=stack.app, sources=slow, job_status=jobs)
        return Scanner(
            app=built.app,
            routes=built.routes,
            endpoints=built.endpoints,
            sources=slow,
            state=DynamoScanStateStore(stack.names.route_scan_table, boto3.client("dynamodb")),
            job_status=jobs,
            policy=ScannerPolicy(workers=2),
            owner=f"process-{n}",
        )

    scanners = [scanner(n) for n in range(2)]
    barrier = threading.Barrier(2)
    reports: list[Any] = []

    def run(s: Scanner) -> None:
        barrier.wait()
        reports.append(s.tick(time.time(), force=True))  # due for both: only the lease decides

    threads = [threading.Thread(target=run, args=(s,)) for s in scanners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert slow.most == 1  # never two listings of the route at once
    assert slow.listings == 1  # the loser tried while the winner held it: skipped
    assert sorted(r.routes_scanned for r in reports) == [0, 1]
    assert sorted(r.leased_elsewhere for r in reports) == [0, 1]
    assert route_id
