"""Projection consumer throughput against moto server: events/s through the SQS handler.

Builds ``--jobs`` job histories (each: endpoint-free job stream + Transfer stream with
``--chunks`` ChunkCommitted per leg, two legs, one retry — ``samples.History.job``), writes them
to a DynamoDB event store on an in-process moto server (``events._moto.SerialMotoServer``, real
HTTP), interleaves the jobs' events round-robin the way ``--jobs`` concurrent transfers would
publish them, and feeds them in SQS batches of ``--batch`` records through
``services.projections.consumer.make_handler`` (the Lambda handler's code path). Prints events/s
and checks the resulting read model equals a clean rebuild of the same streams.

    .venv/bin/python bench/projections.py [--jobs 4] [--chunks 60] [--batch 10] [--window 0]
                                          [--per-record]

``--window N`` shuffles deliveries inside windows of N records (SQS standard queues reorder);
``--per-record`` runs the pre-batching path instead (``Projector.handle`` per record: one read +
one conditional write per event) for comparison on the same machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402

from events._moto import SerialMotoServer  # noqa: E402
from events.contract import FerryEvent  # noqa: E402
from events.dynamodb import DynamoDBAggregateRecorder, create_events_table  # noqa: E402
from ferry.names import ResourceNames  # noqa: E402
from services.projections.adapters import DynamoReadModelStore  # noqa: E402
from services.projections.application import Projector, Queries  # noqa: E402
from services.projections.bootstrap import ProjectionsContext  # noqa: E402
from services.projections.consumer import make_handler  # noqa: E402
from services.projections.readmodels import ENDPOINTS, JOBS, KEY_ATTRIBUTE  # noqa: E402
from services.projections.samples import History, to_stored  # noqa: E402
from services.projections.tables import create_read_model_tables  # noqa: E402
from tests.support.fakes.keys import InMemoryKeyStore  # noqa: E402


def interleaved(history: History, job_ids: list[str]) -> list[FerryEvent]:
    """Each job's events in its own order, the jobs round-robin (concurrent transfers)."""
    per_job: dict[str, list[FerryEvent]] = defaultdict(list)
    for event in history.events:
        per_job[event.correlation_id].append(event)
    queues = [per_job[j] for j in job_ids]
    out: list[FerryEvent] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def sqs_event(events: list[FerryEvent], start: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{start + i}",
                "receiptHandle": f"r{start + i}",
                "body": json.dumps(
                    {
                        "version": "0",
                        "id": f"eb-{start + i}",
                        "source": e.SOURCE,
                        "detail-type": e.detail_type(),
                        "detail": e.model_dump(mode="json"),
                    }
                ),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
                "awsRegion": "us-east-1",
            }
            for i, e in enumerate(events)
        ]
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--chunks", type=int, default=60, help="chunks per leg")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--window", type=int, default=0, help="shuffle window (0: in order)")
    parser.add_argument("--per-record", action="store_true", help="the pre-batching path")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    with SerialMotoServer() as server:
        client = boto3.client(
            "dynamodb",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        names = ResourceNames(prefix="bench")
        create_events_table(client, names.events_table)
        create_read_model_tables(client, names)
        recorder = DynamoDBAggregateRecorder(client, names.events_table)

        history = History()
        job_ids = [
            history.job("acme", "src", "dst", size=args.chunks * 1024, chunk_size=1024)
            for _ in range(args.jobs)
        ]
        streams: dict[str, list[FerryEvent]] = defaultdict(list)
        for event in history.events:
            streams[event.stream_id].append(event)
        for events in streams.values():
            for i in range(0, len(events), 100):
                recorder.insert_events([to_stored(e) for e in events[i : i + 100]])

        deliveries = interleaved(history, job_ids)
        if args.window > 1:
            rng = random.Random(args.seed)
            for i in range(0, len(deliveries), args.window):
                part = deliveries[i : i + args.window]
                rng.shuffle(part)
                deliveries[i : i + args.window] = part

        store = DynamoReadModelStore(client, names)
        projector = Projector(store, recorder)
        handle = make_handler(
            ProjectionsContext(projector, Queries(store, recorder), InMemoryKeyStore())
        )
        calls: Counter[str] = Counter()

        def count(model: Any, **_: Any) -> None:
            calls[model.name] += 1

        client.meta.events.register("before-call.dynamodb", count)
        failures = 0
        started = time.perf_counter()
        if args.per_record:
            for event in deliveries:
                projector.handle(event)
        else:
            for i in range(0, len(deliveries), args.batch):
                result = handle(sqs_event(deliveries[i : i + args.batch], i), None)
                failures += len(result["batchItemFailures"])
        seconds = time.perf_counter() - started
        client.meta.events.unregister("before-call.dynamodb", count)
        live = {k: {i[KEY_ATTRIBUTE[k]]: i for i in store.scan(k)} for k in (ENDPOINTS, JOBS)}

        # A clean projection of the same streams (what rebuild does) into a second jobs table.
        rebuilt_names = ResourceNames(prefix="bench-rebuilt")
        create_read_model_tables(client, rebuilt_names)
        clean = DynamoReadModelStore(client, rebuilt_names)
        check = Projector(clean, None)
        for events in streams.values():
            check.apply_stream(events)
        rebuilt = {k: {i[KEY_ATTRIBUTE[k]]: i for i in clean.scan(k)} for k in (ENDPOINTS, JOBS)}

    mode = "per-record" if args.per_record else f"batched (batch {args.batch})"
    print(
        f"{mode}: {len(deliveries)} events of {args.jobs} jobs"
        f"{f', shuffled in windows of {args.window}' if args.window > 1 else ''}: "
        f"{seconds:.2f} s, {len(deliveries) / seconds:.0f} events/s, {failures} failed records, "
        f"DynamoDB calls {dict(sorted(calls.items()))} = "
        f"{sum(calls.values()) / len(deliveries):.2f}/event, "
        f"read model {'==' if live == rebuilt else '!='} rebuild"
    )
    return 0 if live == rebuilt and failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
