"""Routes pull listing benchmark: a partner SFTP directory of N files (default 10,000) on a real
OpenSSH sshd, listed through the routes SFTP source (services.executor.sftp iter_dir, READDIR
batches) — peak RSS and time — then scanned tick by tick with the per-tick dispatch limit.

    .venv/bin/python -m bench.routes_listing [--files 10000] [--limit 2000]

Needs root (tests/support/sshd.py runs sshd and a test account). Phase 1 is the listing alone
(nothing kept); phase 2 runs the real Scanner with in-memory fakes for the ledger, the jobs and
the scan state (in AWS the scan state is the <prefix>-route-scan DynamoDB table, so its O(N)
memory here is the fake's, reported separately).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from events.contract import EndpointStatus, EndpointType
from services.executor.sftp import SftpCredentials, SftpTarget, connect
from services.routes.adapters import SftpSource
from services.routes.application import RoutesApplication
from services.routes.ports import EndpointInfo, RouteDirectory, SourceOpener, SourceSession
from services.routes.scanner import Scanner, ScannerPolicy
from tests.support.fakes.routes import (
    FakeJobs,
    InMemoryEndpointDirectory,
    InMemoryRouteIndex,
    InMemoryScanStateStore,
)
from tests.support.sshd import SshdServer

# The test sshd is on loopback, which Ferry's SFTP egress policy refuses unless allow-listed.
os.environ.setdefault("FERRY_EGRESS_ALLOW", "127.0.0.0/8")


def rss_kib() -> tuple[int, int]:
    """(current, peak) resident set size in KiB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            values[key] = int(value.split()[0])
    return values["VmRSS"], values["VmHWM"]


def reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


class Opener(SourceOpener):
    def __init__(self, server: SshdServer, base: Path) -> None:
        self.server, self.base = server, base

    def open(self, endpoint: EndpointInfo) -> SourceSession:
        session = connect(
            SftpTarget(self.server.host, self.server.port, self.server.host_key_line),
            SftpCredentials(self.server.username, private_key=self.server.private_key_text),
        )
        return SftpSource(session, str(self.base))


class Routes(RouteDirectory):
    def __init__(self, app: RoutesApplication, route_id: str) -> None:
        self.app, self.route_id = app, route_id

    def enabled_routes(self, trigger: str) -> list[tuple[str, str, dict]]:
        route = self.app.get_route("bench", self.route_id)
        return [(self.route_id, "bench", route.definition)] if trigger == "schedule" else []


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=2_000)
    args = parser.parse_args()

    with SshdServer() as server:
        base = server.make_dir()
        inbox = base / "inbox"
        inbox.mkdir()
        server.chown_to_user(inbox)
        started = time.perf_counter()
        for i in range(args.files):
            (inbox / f"partner-file-{i:06d}.csv").write_bytes(b"x" * (i % 100))
        print(f"created {args.files} files in {time.perf_counter() - started:.1f}s")

        opener = Opener(server, base)
        sftp = EndpointInfo(
            endpoint_id="src",
            customer_id="bench",
            type=EndpointType.SFTP,
            status=EndpointStatus.ACTIVE,
        )
        s3 = EndpointInfo(
            endpoint_id="dst",
            customer_id="bench",
            type=EndpointType.S3,
            status=EndpointStatus.ACTIVE,
        )

        # phase 1: the listing alone
        session = opener.open(sftp)
        reset_peak()
        before, _ = rss_kib()
        started = time.perf_counter()
        count = sum(1 for _ in session.iter_files("inbox", recursive=False))
        elapsed = time.perf_counter() - started
        _, peak = rss_kib()
        session.close()
        print(
            f"listing: {count} entries in {elapsed:.2f}s ({count / elapsed:,.0f}/s); "
            f"RSS before {before / 1024:.1f} MiB, peak during {peak / 1024:.1f} MiB "
            f"(+{(peak - before) / 1024:.1f} MiB)"
        )

        # phase 2: ticks of the real scanner, per-tick limit
        jobs = FakeJobs()
        endpoints = InMemoryEndpointDirectory([sftp, s3])
        app = RoutesApplication(endpoints=endpoints, jobs=jobs, index=InMemoryRouteIndex())
        route = app.create(
            "bench",
            "bench",
            {
                "name": "bench",
                "source": {"endpoint_id": "src", "path": "inbox", "pattern": "*.csv"},
                "targets": [{"endpoint_id": "dst", "path_template": "in/{filename}"}],
                "trigger": {"type": "schedule", "every": "10s"},
                "stable": {"checks": 1},
            },
        )
        state = InMemoryScanStateStore()
        scanner = Scanner(
            app=app,
            routes=Routes(app, route.route_id),
            endpoints=endpoints,
            sources=opener,
            state=state,
            job_status=jobs,
            policy=ScannerPolicy(dispatch_limit=args.limit),
        )
        now = time.time()
        tick = 0
        reset_peak()
        before, _ = rss_kib()
        while True:
            started = time.perf_counter()
            report = scanner.tick(now + 60 * tick)
            print(
                f"tick {tick}: listed {report.listed}, dispatched {report.dispatched}, "
                f"state writes {report.state_writes}, {time.perf_counter() - started:.2f}s"
            )
            tick += 1
            if report.dispatched == 0 and tick > 1:
                break
        _, peak = rss_kib()
        print(
            f"scanner: {len(jobs.requests)} jobs over {tick} ticks; RSS peak {peak / 1024:.1f} "
            f"MiB (+{(peak - before) / 1024:.1f} MiB, including the in-memory fakes holding "
            f"{len(state.states)} scan states and {len(jobs.requests)} jobs)"
        )
        os.sync()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
