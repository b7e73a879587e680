"""The console's Jobs page with 10,000 jobs in the read model: how long its API calls take.

Starts its own local stack (``ferry.local.stack.LocalStack``, exactly what ``ferry up`` runs) on
free ports in a temporary data dir, writes ``--jobs`` job items (default 10,000; the projector's
own item shape, folded from a sample history by ``services.projections``, ids and times varied)
into the jobs read-model table on moto server, then times, over one keep-alive connection, what
the Jobs page asks for when it opens (``/console`` itself, then ``GET /jobs?limit=50`` — the
first page, newest first, one index query — plus ``/routes`` and ``/endpoints``), the next page,
a status filter, the route filter (half the jobs carry one of ten route ids; alone and with a
status), the endpoint filter (each of ten endpoints is the source of 10 % of the jobs and the
target of 10 %; its first and second page, and with a status), one job, and the Overview's
``/stats/hourly`` (the projector's hourly counters; its count is checked against the seeded
jobs of the last 24 h). The load averages are printed before and after
the timing (the machine may be shared).

    .venv/bin/python bench/console.py [--jobs 10000] [--requests 30]

The page is "answered" when its first-page requests are: the printed "Jobs page" figure is the
sum of the medians of /jobs?limit=50, /routes and /endpoints (the page sends them in parallel, so
this is an upper bound); "Jobs page filtered by endpoint" the same with
/jobs?endpoint_id=&limit=50. Goal: <= 300 ms each (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eventsourcing.popo import POPOAggregateRecorder  # noqa: E402

from ferry.local import bootstrap  # noqa: E402
from ferry.local.stack import DEMO_CUSTOMER, LocalStack  # noqa: E402
from ferry.names import ResourceNames  # noqa: E402
from services.projections import readmodels  # noqa: E402
from services.projections.adapters import serialize  # noqa: E402
from services.projections.application import Projector  # noqa: E402
from services.projections.readmodels import JOBS  # noqa: E402
from services.projections.samples import History  # noqa: E402
from services.projections.stats import stats_deltas  # noqa: E402
from tests.support.fakes.projections import InMemoryReadModelStore  # noqa: E402

GOAL_MS = 300.0


class Client:
    def __init__(self, api_url: str, api_key: str) -> None:
        parts = urlsplit(api_url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80)
        self.key = api_key

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers={"x-api-key": self.key})
        resp = self.conn.getresponse()
        return resp.status, resp.read()


def templates() -> list[dict[str, Any]]:
    """Job items as the projector writes them: one per outcome of the sample history."""
    history = History()
    src = history.endpoint(DEMO_CUSTOMER, endpoint_type="s3")
    dst = history.endpoint_lifecycle(DEMO_CUSTOMER)
    ids = [
        history.job(DEMO_CUSTOMER, src, dst),
        history.job(DEMO_CUSTOMER, src, dst, outcome="failed"),
        history.job(DEMO_CUSTOMER, src, dst, outcome="cancelled"),
        history.job(DEMO_CUSTOMER, src, dst, outcome="queued"),
    ]
    store = InMemoryReadModelStore()
    projector = Projector(store, POPOAggregateRecorder())
    for event in history.events:
        projector.handle(event)
    items = [store.get(JOBS, job_id) for job_id in ids]
    return [i for i in items if i is not None]


ROUTES = [str(uuid.UUID(int=n + 1, version=4)) for n in range(10)]
ENDPOINTS = [str(uuid.UUID(int=n + 101, version=4)) for n in range(10)]


def seed(stack: LocalStack, count: int) -> tuple[float, list[datetime]]:
    """Write ``count`` job items (newest in the last 36 h) with BatchWriteItem, and the hourly
    counters the projector keeps with them (``stats_deltas`` of each item, summed per row);
    seconds taken and the jobs' creation times."""
    client = bootstrap.aws_client("dynamodb", stack.aws_endpoint, "us-east-1")
    table = ResourceNames().jobs_table
    counters: dict[tuple[str, str], dict[str, int]] = {}
    created_at: list[datetime] = []
    shapes = templates()
    rng = random.Random(7)
    now = datetime.now(UTC)
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for n in range(count):
        item = dict(rng.choices(shapes, weights=(85, 8, 2, 5))[0])
        created = now - timedelta(seconds=rng.uniform(0, 36 * 3600))
        item["job_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        item["created_at"] = readmodels.timestamp(created)
        item["customer_status"] = readmodels.customer_status(DEMO_CUSTOMER, item["status"])
        if n % 2 == 0:  # half the jobs come from one of ten routes (the route indexes' keys)
            route = ROUTES[n % 20 // 2]
            item["route_id"] = route
            item["customer_route"] = readmodels.customer_route(DEMO_CUSTOMER, route)
            item["customer_route_status"] = readmodels.customer_route(
                DEMO_CUSTOMER, route, item["status"]
            )
        # every job reads one of ten endpoints and writes one of the same ten (the endpoint
        # indexes' keys): each is the source of 10 % of the jobs and the target of 10 % (1 % both)
        source, target = ENDPOINTS[n % 10], ENDPOINTS[n // 10 % 10]
        for side, endpoint in (("source", source), ("target", target)):
            item[side] = {**item[side], "endpoint_id": endpoint}
            item[f"customer_{side}"] = readmodels.customer_endpoint(DEMO_CUSTOMER, endpoint)
            item[f"customer_{side}_status"] = readmodels.customer_endpoint(
                DEMO_CUSTOMER, endpoint, item["status"]
            )
        if source == target:  # as the projector keeps them: in the source indexes only
            del item["customer_target"], item["customer_target_status"]
        for delta in stats_deltas(None, item):
            row = counters.setdefault((delta.customer_id, delta.sort_key), {})
            for counter, amount in delta.counts.items():
                row[counter] = row.get(counter, 0) + amount
        created_at.append(created)
        batch.append({"PutRequest": {"Item": serialize(item)}})
        if len(batch) == 25 or n == count - 1:
            write(client, table, batch)
            batch = []
    rows = [
        {"customer_id": customer, "hour_shard": key, **row}
        for (customer, key), row in counters.items()
    ]
    for start in range(0, len(rows), 25):
        write(
            client,
            ResourceNames().job_stats_table,
            [{"PutRequest": {"Item": serialize(r)}} for r in rows[start : start + 25]],
        )
    return time.perf_counter() - started, created_at


def write(client: Any, table: str, batch: list[dict[str, Any]]) -> None:
    pending: dict[str, Any] = {table: batch}
    while pending:
        pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems")


def timed(client: Client, path: str, requests: int) -> dict[str, float]:
    samples = []
    size = 0
    for _ in range(requests):
        t0 = time.perf_counter()
        status, body = client.get(path)
        samples.append((time.perf_counter() - t0) * 1000)
        assert status == 200, (path, status, body[:300])
        size = len(body)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p95_ms": samples[max(0, int(len(samples) * 0.95) - 1)],
        "bytes": size,
    }


def _load() -> str:
    """The 1/5/15-minute load averages (2 shared cores: the figures are only as quiet as this)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="job items in the read model")
    parser.add_argument("--requests", type=int, default=30, help="requests per path")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ferry-bench-console-") as tmp:
        stack = LocalStack(Path(tmp) / "data", api_port=0, moto_port=0)
        try:
            info = stack.start()
            print(f"stack up: {info.api_url}; load average {_load()}", flush=True)
            seconds, created_at = seed(stack, args.jobs)
            print(f"{args.jobs} job items written in {seconds:.1f} s", flush=True)
            client = Client(info.api_url, info.api_key)
            _, first = client.get("/jobs?limit=50")
            token = json.loads(first)["next_token"]
            job_id = json.loads(first)["jobs"][0]["job_id"]
            _, by_endpoint = client.get(f"/jobs?endpoint_id={ENDPOINTS[0]}&limit=50")
            endpoint_token = json.loads(by_endpoint)["next_token"]
            paths = {
                "GET /console (page)": "/console",
                "GET /console/console.js": "/console/console.js",
                "GET /jobs?limit=50 (first page)": "/jobs?limit=50",
                "GET /routes": "/routes",
                "GET /endpoints?limit=100": "/endpoints?limit=100",
                "GET /jobs?limit=50&next_token (page 2)": f"/jobs?limit=50&next_token={token}",
                "GET /jobs?status=FAILED&limit=50": "/jobs?status=FAILED&limit=50",
                "GET /jobs?route_id&limit=50 (route filter)": f"/jobs?route_id={ROUTES[0]}&limit=50",
                "GET /jobs?route_id&status=FAILED": f"/jobs?route_id={ROUTES[0]}&status=FAILED&limit=50",
                "GET /jobs?endpoint_id&limit=50 (endpoint filter)": (
                    f"/jobs?endpoint_id={ENDPOINTS[0]}&limit=50"
                ),
                "GET /jobs?endpoint_id&next_token (page 2)": (
                    f"/jobs?endpoint_id={ENDPOINTS[0]}&limit=50&next_token={endpoint_token}"
                ),
                "GET /jobs?endpoint_id&status=FAILED": (
                    f"/jobs?endpoint_id={ENDPOINTS[0]}&status=FAILED&limit=50"
                ),
                "GET /jobs/{id}": f"/jobs/{job_id}",
                "GET /stats/hourly (overview, 24 h)": "/stats/hourly?hours=24",
            }
            results: dict[str, dict[str, float]] = {}
            print(f"timing; load average {_load()}", flush=True)
            for label, path in paths.items():
                results[label] = timed(client, path, args.requests)
            print(f"timed; load average {_load()}", flush=True)
            print(f"\n{'request':<50} {'median':>9} {'p95':>9} {'bytes':>9}")
            for label, r in results.items():
                print(
                    f"{label:<50} {r['median_ms']:>7.1f}ms {r['p95_ms']:>7.1f}ms "
                    f"{int(r['bytes']):>9}"
                )
            around = (
                results["GET /routes"]["median_ms"]
                + results["GET /endpoints?limit=100"]["median_ms"]
            )
            pages = {
                "Jobs page": results["GET /jobs?limit=50 (first page)"]["median_ms"] + around,
                "Jobs page filtered by endpoint": results[
                    "GET /jobs?endpoint_id&limit=50 (endpoint filter)"
                ]["median_ms"]
                + around,
            }
            for name, ms in pages.items():
                verdict = "OK" if ms <= GOAL_MS else "OVER"
                print(
                    f"\n{name} with {args.jobs} jobs in the read model: {ms:.1f} ms (sum of "
                    f"its first-page requests' medians; goal <= {GOAL_MS:.0f} ms: {verdict})"
                )
            overview = json.loads(client.get("/stats/hourly?hours=24")[1])
            window_start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            seeded = sum(1 for c in created_at if c >= window_start - timedelta(hours=23))
            counted = overview["total_jobs"]
            print(
                f"Overview (24 h): {counted} jobs counted, {seeded} seeded in the window, in "
                f"{results['GET /stats/hourly (overview, 24 h)']['median_ms']:.1f} ms"
                f" ({'OK' if counted == seeded else 'WRONG'})"
            )
            ok = all(ms <= GOAL_MS for ms in pages.values()) and counted == seeded
            return 0 if ok else 1
        finally:
            stack.stop()


if __name__ == "__main__":
    threading.current_thread().name = "bench-console"
    sys.exit(main())
