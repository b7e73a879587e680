"""Benchmark the DynamoDB event store (events.dynamodb) against a moto server.

Measures appends/s and append latency (p50/p99) for single-event appends (conditional PutItem)
and 5-event appends (one TransactWriteItems), with 1 and 4 concurrent writers. Each writer
appends to its own aggregate stream, version after version, as an application would.

    .venv/bin/python bench/event_store.py                      # starts its own moto server
    .venv/bin/python bench/event_store.py --endpoint-url http://127.0.0.1:5000 --seconds 3

Without --endpoint-url it runs ``python -m events._moto`` as a separate process (so the server
and the writers do not share one interpreter lock) and stops it at the end. The figures are
moto's, not AWS's: they show the module's overhead and compare the scenarios, nothing more.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import Environment

from events.dynamodb import DynamoDBAggregateRecorder, DynamoDBFactory

STATE = b'{"timestamp":"2026-01-01T00:00:00+00:00","bytes_committed":8388608,"part":17}'


@dataclass
class Result:
    label: str
    writers: int
    events_per_append: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def appends_per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextmanager
def moto_process() -> Iterator[str]:
    """Run ``python -m events._moto`` on a free port; yield its URL; stop it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "events._moto", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("MOTO_URL="):
            msg = f"moto server did not start (printed {line!r})"
            raise RuntimeError(msg)
        yield line.removeprefix("MOTO_URL=")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_scenario(
    factory: DynamoDBFactory,
    label: str,
    writers: int,
    events_per_append: int,
    seconds: float,
) -> Result:
    recorder = factory.aggregate_recorder()
    assert isinstance(recorder, DynamoDBAggregateRecorder)
    latencies: list[list[float]] = [[] for _ in range(writers)]
    errors = [0] * writers
    start = threading.Barrier(writers + 1)
    deadline = [0.0]

    def writer(index: int) -> None:
        stream = uuid.uuid4()
        version = 0
        # Warm-up append (connection pool, code paths), not measured.
        recorder.insert_events([StoredEvent(stream, version, "Warm", STATE)])
        start.wait()
        while time.perf_counter() < deadline[0]:
            events = [
                StoredEvent(stream, version + i, "Transfer.ChunkCommitted", STATE)
                for i in range(1, events_per_append + 1)
            ]
            began = time.perf_counter()
            try:
                recorder.insert_events(events)
            except Exception:
                errors[index] += 1
                continue
            latencies[index].append(time.perf_counter() - began)
            version += events_per_append

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds + 60  # provisional, until all are warm
    start.wait()
    began = time.perf_counter()
    deadline[0] = began + seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return Result(
        label=label,
        writers=writers,
        events_per_append=events_per_append,
        seconds=elapsed,
        latencies=[latency for per_writer in latencies for latency in per_writer],
        errors=sum(errors),
    )


def print_table(endpoint_url: str, seconds: float, results: list[Result]) -> None:
    print(f"\nFerry event store (events.dynamodb) on moto at {endpoint_url}, {seconds:g} s each")
    header = (
        f"{'append':<26}{'writers':>8}{'appends/s':>11}{'events/s':>10}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'appends':>9}{'errors':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.label:<26}{r.writers:>8}{r.appends_per_second:>11.0f}"
            f"{r.appends_per_second * r.events_per_append:>10.0f}"
            f"{r.percentile_ms(0.50):>9.1f}{r.percentile_ms(0.99):>9.1f}"
            f"{len(r.latencies):>9}{r.errors:>8}"
        )
    all_latencies = [latency for r in results for latency in r.latencies]
    if all_latencies:
        print(f"(median of all appends: {1000 * statistics.median(all_latencies):.1f} ms)")
    print(
        "Note: moto applies DynamoDB requests one at a time (events._moto), and its\n"
        "TransactWriteItems deep-copies the whole table once per item (for rollback), so the\n"
        "transactional rows fall as the table grows. AWS does neither: compare rows, not clouds."
    )


def bench(endpoint_url: str, seconds: float, writer_counts: list[int]) -> list[Result]:
    os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.pop("AWS_CA_BUNDLE", None)
    scenarios = [
        ("1 event (PutItem)", 1),
        ("5 events (TransactWrite)", 5),
    ]
    results = []
    for label, events_per_append in scenarios:
        for writers in writer_counts:
            # A fresh table per scenario: moto's transactions copy the whole table.
            table = f"bench-events-{uuid.uuid4().hex[:8]}"
            env = Environment(
                env={
                    "FERRY_EVENTS_TABLE": table,
                    "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                }
            )
            factory = DynamoDBFactory(env)
            try:
                result = run_scenario(factory, label, writers, events_per_append, seconds)
            finally:
                factory.close()
            print(
                f"  {label}, {writers} writer(s): {result.appends_per_second:.0f} appends/s",
                file=sys.stderr,
            )
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--endpoint-url", help="an already running moto server")
    parser.add_argument("--seconds", type=float, default=6.0, help="per scenario (default 6)")
    parser.add_argument(
        "--writers", type=int, nargs="+", default=[1, 4], help="concurrent writer counts"
    )
    args = parser.parse_args(argv)
    if args.endpoint_url:
        results = bench(args.endpoint_url, args.seconds, args.writers)
        print_table(args.endpoint_url, args.seconds, results)
    else:
        with moto_process() as url:
            results = bench(url, args.seconds, args.writers)
            print_table(url, args.seconds, results)
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
