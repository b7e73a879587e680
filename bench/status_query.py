"""Status-query latency on the local stack: GET /jobs/{id} and GET /jobs?status=.

Starts its own local stack (``ferry.local.stack.LocalStack``: moto server, the API server
standing in for API Gateway, the workers) on free ports in a temporary data dir, registers two
S3 endpoints, submits ``--jobs`` small transfers and waits until they are all final (so that the
measurement sees no background transfer load), then times ``--requests`` sequential requests per
query over one keep-alive connection, and the same with ``--threads`` concurrent clients.

    .venv/bin/python bench/status_query.py [--jobs 40] [--requests 500] [--threads 4]

What is measured is the whole local path — HTTP server → API Gateway event → Powertools resolver
→ API key lookup (cached) → DynamoDB read model on moto server — not AWS latency.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ferry.local import bootstrap  # noqa: E402
from ferry.local.stack import LocalStack  # noqa: E402


class Client:
    def __init__(self, api_url: str, api_key: str) -> None:
        parts = urlsplit(api_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.key = api_key
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"x-api-key": self.key, "Content-Type": "application/json"}
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise TimeoutError(what)


def prepare(stack: LocalStack, client: Client, jobs: int) -> list[str]:
    s3 = bootstrap.aws_client("s3", stack.aws_endpoint, "us-east-1")
    endpoint_ids = []
    for name, direction in (("bench-src", "INBOUND"), ("bench-dst", "OUTBOUND")):
        s3.create_bucket(Bucket=name)
        status, created = client.call(
            "POST",
            "/endpoints",
            {"name": name, "type": "s3", "bucket": name, "prefix": "", "direction": direction},
        )
        assert status == 201 or status == 200, created
        endpoint_ids.append(created["endpoint_id"])
    for endpoint_id in endpoint_ids:
        _wait(
            lambda e=endpoint_id: (
                client.call("GET", f"/endpoints/{e}")[1].get("status") == "ACTIVE"
            ),
            120,
            f"endpoint {endpoint_id} ACTIVE",
        )
    src, dst = endpoint_ids
    job_ids = []
    for i in range(jobs):
        s3.put_object(Bucket="bench-src", Key=f"f{i}.txt", Body=f"file {i}\n".encode())
        status, created = client.call(
            "POST",
            "/transfers",
            {
                "source": {"endpoint_id": src, "path": f"f{i}.txt"},
                "target": {"endpoint_id": dst, "path": f"out/f{i}.txt"},
            },
        )
        assert status == 202, created
        job_ids.append(created["job_id"])
    final = {"SUCCEEDED", "FAILED", "CANCELLED"}

    def all_final() -> bool:
        return all(
            (client.call("GET", f"/jobs/{j}")[1] or {}).get("status") in final for j in job_ids
        )

    _wait(all_final, 600, "every job final")
    return job_ids


def measure(make_client: Any, paths: list[str], requests: int, threads: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    per_thread = requests // threads

    def worker(seed: int) -> None:
        nonlocal errors
        client = make_client()
        rng = random.Random(seed)
        mine = []
        bad = 0
        for _ in range(per_thread):
            path = rng.choice(paths)
            t0 = time.perf_counter()
            status, _ = client.call("GET", path)
            mine.append(time.perf_counter() - t0)
            bad += status != 200
        with lock:
            latencies.extend(mine)
            errors += bad

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "req_per_s": len(latencies) / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--requests", type=int, default=500, help="per GET /jobs/{id} run")
    parser.add_argument("--list-requests", type=int, default=200, help="per GET /jobs run")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: stop the stack

    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp:
        stack = LocalStack(Path(tmp), api_port=0, moto_port=0, on_event=lambda m: None)
        try:
            info = stack.start()
            client = Client(info.api_url, info.api_key)
            t0 = time.monotonic()
            job_ids = prepare(stack, client, args.jobs)
            statuses: dict[str, int] = {}
            for j in job_ids:
                s = client.call("GET", f"/jobs/{j}")[1]["status"]
                statuses[s] = statuses.get(s, 0) + 1
            print(f"{len(job_ids)} jobs ready in {time.monotonic() - t0:.1f} s: {statuses}")
            status = max(statuses, key=lambda k: statuses[k])
            queries = {
                "GET /jobs/{id}": [f"/jobs/{j}" for j in job_ids],
                f"GET /jobs?status={status}&limit=50": [f"/jobs?status={status}&limit=50"],
            }
            print(f"{'query':<40} {'threads':>7} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} errors")
            for (label, paths), requests in zip(
                queries.items(), (args.requests, args.list_requests), strict=True
            ):
                for threads in (1, args.threads):
                    r = measure(
                        lambda: Client(info.api_url, info.api_key), paths, requests, threads
                    )
                    print(
                        f"{label:<40} {threads:>7} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
                        f"{r['req_per_s']:>8.1f} {r['errors']:>6.0f}"
                    )
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
