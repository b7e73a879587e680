"""What the hash chain costs (issue 11): append rate before/after hashing on the same store, and
verification speed.

    .venv/bin/python bench/audit.py [--seconds 2] [--rounds 5] [--streams 100] [--events 25]

On one moto server (``python -m events._moto`` in its own process, as bench/event_store.py) and
one events table, single-event appends (conditional PutItem, a Transfer's ChunkCommitted
state) alternate between a recorder with the chain off (``chained=False``: the pre-issue-11
item) and on, in ``--rounds`` rounds of ``--seconds`` each, so both see the same table size and
machine load. "warm" is the normal case (the writer read or wrote the stream's head before: the
previous hash is in the process's cache); "cold" empties the cache before every append (a
writer that never read the stream: one extra Query per append). Then ``--streams`` streams of
``--events`` events are verified: from DynamoDB (Query + walk) and in memory (the walk alone).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import boto3  # noqa: E402
from event_store import moto_process  # noqa: E402
from eventsourcing.persistence import StoredEvent  # noqa: E402

from events.chain import link, verify_stream  # noqa: E402
from events.dynamodb import _HEADS, DynamoDBAggregateRecorder, create_events_table  # noqa: E402

_FIXTURE = json.loads((REPO / "tests" / "fixtures" / "stored_events_v1.json").read_text())
CHUNK = next(e for e in _FIXTURE if e["topic"].endswith("Transfer.ChunkCommitted"))
TOPIC = CHUNK["topic"]
STATE = CHUNK["state"].encode()


def run(recorder: DynamoDBAggregateRecorder, seconds: float, *, cold: bool) -> list[float]:
    stream = uuid.uuid4()
    version = 1
    recorder.insert_events([StoredEvent(stream, version, TOPIC, STATE)])  # warm-up
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        version += 1
        if cold:
            _HEADS.clear()
        began = time.perf_counter()
        recorder.insert_events([StoredEvent(stream, version, TOPIC, STATE)])
        latencies.append(time.perf_counter() - began)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--endpoint-url", help="an already running moto server")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--events", type=int, default=25)
    parser.add_argument(
        "--index", action="store_true", help="with the customer-and-time GSI on the table"
    )
    args = parser.parse_args(argv)
    if args.endpoint_url:
        return _bench(args.endpoint_url, args)
    with moto_process() as url:
        return _bench(url, args)


def _bench(url: str, args: argparse.Namespace) -> int:
    os.environ["AWS_ENDPOINT_URL"] = url
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.pop("AWS_CA_BUNDLE", None)
    client = boto3.client("dynamodb")
    table = f"bench-audit-{uuid.uuid4().hex[:8]}"
    # moto maintains a GSI synchronously inside the PutItem (AWS propagates it asynchronously,
    # off the write's latency): --index measures that moto cost too.
    create_events_table(client, table, customer_index=args.index)
    plain = DynamoDBAggregateRecorder(client, table, chained=False)
    chained = DynamoDBAggregateRecorder(client, table, chained=True)

    results: dict[str, list[float]] = {"no chain": [], "chain, warm": [], "chain, cold": []}
    rates: dict[str, list[float]] = {k: [] for k in results}
    round_p50: dict[str, list[float]] = {k: [] for k in results}
    scenarios = [
        ("no chain", plain, False),
        ("chain, warm", chained, False),
        ("chain, cold", chained, True),
    ]
    for round_ in range(args.rounds):
        # rotate the order: no scenario always runs first (or last) in a round
        for label, recorder, cold in scenarios[round_ % 3 :] + scenarios[: round_ % 3]:
            latencies = run(recorder, args.seconds, cold=cold)
            results[label].extend(latencies)
            rates[label].append(len(latencies) / sum(latencies))
            round_p50[label].append(statistics.median(latencies))
        print(f"  round {round_ + 1}/{args.rounds} done", file=sys.stderr)

    hashing = _hash_cost()
    index = "with" if args.index else "without"
    print(
        f"\nHash chain cost on moto at {url}, table {index} the GSI "
        f"({args.rounds} x {args.seconds:g} s per row)"
    )
    header = (
        f"{'append (1 event)':<18}{'appends/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'vs none':>9}"
        f"{'p50 per round, min - max':>28}"
    )
    print(header)
    print("-" * len(header))
    base = statistics.median(rates["no chain"])
    base_p50 = statistics.median(results["no chain"])
    for label, latencies in results.items():
        rate = statistics.median(rates[label])
        ordered = sorted(latencies)
        p50 = statistics.median(ordered)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        change = (p50 / base_p50 - 1) * 100
        spread = f"{1000 * min(round_p50[label]):.1f} - {1000 * max(round_p50[label]):.1f}"
        print(
            f"{label:<18}{rate:>11.0f}{1000 * p50:>9.2f}{1000 * p99:>9.2f}{change:>+8.1f}%"
            f"{spread:>28}"
        )
    print(
        f"(appends/s: median of the rounds; 'vs none': p50 latency change. Hashing itself "
        f"(events.chain.link, sha256 + canonical encoding + JSON peek): {hashing * 1e6:.1f} µs "
        f"per event = {100 * hashing / base_p50:.2f} % of the unchained p50.)"
    )
    del base
    plain_cost = min(_client_side_cost(False) for _ in range(3))
    chained_cost = min(_client_side_cost(True) for _ in range(3))
    extra = chained_cost - plain_cost
    print(
        f"Client-side CPU per append (recorder + botocore, network answered in-process, best of "
        f"3): {plain_cost * 1e6:.0f} µs without the chain, {chained_cost * 1e6:.0f} µs with it: "
        f"+{extra * 1e6:.0f} µs = {100 * extra / base_p50:.2f} % of the unchained p50 here, "
        f"{100 * extra / 0.005:.1f} % of a 5 ms DynamoDB PutItem."
    )

    # ----------------------------------------------------------------- verification
    # a fresh table: moto's TransactWriteItems copies the whole table per item
    fresh = f"bench-verify-{uuid.uuid4().hex[:8]}"
    create_events_table(client, fresh, customer_index=args.index)
    chained = DynamoDBAggregateRecorder(client, fresh, chained=True)
    stream_ids = []
    for _ in range(args.streams):
        stream = uuid.uuid4()
        stream_ids.append(str(stream))
        for start in range(1, args.events + 1, 25):
            chained.insert_events(
                [
                    StoredEvent(stream, v, TOPIC, STATE)
                    for v in range(start, min(args.events, start + 24) + 1)
                ]
            )
    began = time.perf_counter()
    items_by_stream = {s: chained.stream_items(s) for s in stream_ids}
    read = time.perf_counter() - began
    began = time.perf_counter()
    assert all(verify_stream(s, items).ok for s, items in items_by_stream.items())
    walk = time.perf_counter() - began
    total = sum(len(i) for i in items_by_stream.values())
    print(
        f"\nVerification of {args.streams} streams x {args.events} events ({total} events): "
        f"{total / (read + walk):,.0f} events/s from DynamoDB (read {read:.2f} s + walk "
        f"{walk:.3f} s); the walk alone: {total / walk:,.0f} events/s"
    )
    return 0


class _Ok:
    status_code = 200


def _client_side_cost(chained: bool, n: int = 3000) -> float:
    """Seconds per single-event append spent in this process (the recorder + botocore building
    and signing the request), with the network answered in-process: deterministic, unlike a
    loaded moto server. Warm cache (the normal case)."""
    client = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:9")
    client.meta.events.register(
        "before-call.dynamodb.PutItem", lambda **_: (_Ok(), {"ResponseMetadata": {}})
    )
    recorder = DynamoDBAggregateRecorder(client, "bench-offline", chained=chained)
    stream = uuid.uuid4()
    recorder.insert_events([StoredEvent(stream, 1, TOPIC, STATE)])
    began = time.process_time()  # this process's CPU: other processes' load does not count
    for version in range(2, n + 2):
        recorder.insert_events([StoredEvent(stream, version, TOPIC, STATE)])
    return (time.process_time() - began) / n


def _hash_cost(n: int = 20000) -> float:
    stream = str(uuid.uuid4())
    began = time.process_time()
    prev = "0" * 64
    for version in range(n):
        prev = link(stream, version, TOPIC, STATE, prev).hash
    return (time.process_time() - began) / n


if __name__ == "__main__":
    raise SystemExit(main())
