"""Load run: N small files through ONE push route with two targets on the local stack, delivered
and checked byte for byte, with every AWS API call Ferry made counted and priced.

    .venv/bin/python bench/load_push.py                  # 1,000 files → 2,000 jobs
    .venv/bin/python bench/load_push.py --files 50       # quick check

What runs: ``ferry up``'s processes (bench/_local.py) with the executor's production defaults; a
push route (``trigger: event``) from an S3 outbox to an S3 archive (S3→S3) and a partner's SFTP
directory on OpenSSH sshd (S3→SFTP). The driver waits until GET /routes lists the route (the
push consumer matches events against the routes read model, issue 9 case 2), uploads N objects of
1-8 KiB from 4 threads, waits until all 2N target files exist and every Ferry queue is empty, and
then — after the call counts are taken — checks every byte and every job (GET /jobs/{id} of each
job the route's ledger names must be SUCCEEDED).

Calls are counted by the moto server (events/_moto_calls.py): every Ferry process signs with
the access key ``testing``, the driver with its own key, so the driver's uploads, listings and
checks are not in Ferry's count. Idle polling (SQS long polls of the pollers and the executor,
the stream poller's GetRecords, the routes ticker) runs whether or not there is work: it is
measured for ``--idle`` seconds before the upload and printed per second, and the per-job table is
the whole run's count divided by delivered jobs (idle polling over the run's duration included).

Prices: ``PRICES`` below, us-east-1 list prices as of 2026-12-01 (sources next to each).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._local import FERRY_KEY, LocalRun, sha256_file

KiB = 1024

# ---------------------------------------------------------------------------------- prices
#: USD per request (or per billed unit), us-east-1, standard classes, taken 2026-12-01 from:
#: - DynamoDB on-demand: $0.625 per million write request units, $0.125 per million read
#:   request units (https://airbyte.com/data-engineering-resources/dynamodb-pricing, "US East";
#:   units as https://aws.amazon.com/dynamodb/pricing/ defines them: 1 WRU per write ≤ 1 KB, 2 per
#:   transactional write; 1 RRU per strongly consistent read ≤ 4 KB, 0.5 eventually consistent).
#: - S3 Standard: PUT, COPY, POST, LIST $0.005 per 1,000; GET, SELECT and all other $0.0004 per
#:   1,000; DELETE and abort free (https://c3x.dev/blog/s3-request-fees-explained; the same figures
#:   in https://awsi.click/en/articles/s3-request-pricing-get-put-difference/).
#: - SQS standard queues: $0.40 per million requests, each 64 KB chunk of a payload a request
#:   (https://cloudburn.io/blog/amazon-sqs-pricing, US East, March 2026).
#: - EventBridge: custom events $1.00 per million (PutEvents entries, 64 KB chunks); AWS service
#:   events such as S3 "Object Created" on the default bus are free
#:   (https://cloudburn.io/blog/amazon-eventbridge-pricing,
#:   https://blog.awsfundamentals.com/aws-eventbridge-pricing-guide).
#: - Secrets Manager: $0.05 per 10,000 API calls
#:   (https://hivebook.wiki/wiki/aws-secrets-manager-rotated-secrets-dynamic-db-credentials-kms).
#: - STS: priced at 0 here (AWS does not charge for STS requests; no page in the search corpus
#:   states it, so this one is not cited).
#: - DynamoDB Streams GetRecords: 0 here, because in AWS the publisher is a Lambda trigger on the
#:   stream and AWS does not bill GetRecords made by Lambda triggers (not cited either); the local
#:   stand-in's GetRecords polls are still counted and shown.
PRICE_DDB_WRU = 0.625 / 1e6
PRICE_DDB_RRU = 0.125 / 1e6
PRICE_S3_TIER1 = 0.005 / 1000
PRICE_S3_TIER2 = 0.0004 / 1000
PRICE_SQS = 0.40 / 1e6
PRICE_EVENTS = 1.00 / 1e6
PRICE_SECRETS = 0.05 / 10_000
PRICE_STS = 0.0
PRICE_STREAMS = 0.0
REGION_AND_DATE = "us-east-1, list prices taken 2026-12-01"

_S3_TIER1 = (
    "Put",
    "Copy",
    "Post",
    "List",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "CreateBucket",
)
_S3_FREE = ("DeleteObject", "DeleteObjects", "AbortMultipartUpload", "DeleteBucket")
_DDB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


def price(service: str, operation: str, count: float, units: float) -> float:
    """What ``count`` calls (``units`` billed units, see events/_moto_calls.py) would cost."""
    if service == "dynamodb":
        return units * (PRICE_DDB_WRU if operation in _DDB_WRITES else PRICE_DDB_RRU)
    if service == "dynamodbstreams":
        return count * PRICE_STREAMS
    if service == "s3":
        if operation.startswith(_S3_FREE):
            return 0.0
        return count * (PRICE_S3_TIER1 if operation.startswith(_S3_TIER1) else PRICE_S3_TIER2)
    if service == "sqs":
        return count * PRICE_SQS
    if service == "events":
        return (units if operation == "PutEvents" else 0.0) * PRICE_EVENTS
    if service == "secretsmanager":
        return count * PRICE_SECRETS
    if service == "sts":
        return count * PRICE_STS
    return 0.0


def ferry_calls(rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, float]]:
    out: dict[tuple[str, str], tuple[int, float]] = {}
    for r in rows:
        if r["principal"] == FERRY_KEY:
            out[(r["service"], r["operation"])] = (int(r["count"]), float(r["units"]))
    return out


def cost_table(calls: dict[tuple[str, str], tuple[int, float]], jobs: int, idle_s: float) -> str:
    """Calls per delivered job by service and operation, and their price."""
    lines = [
        f"{'service':<16} {'operation':<26} {'calls':>8} {'per job':>9} {'USD per 1M jobs':>16}"
    ]
    by_service: dict[str, float] = defaultdict(float)
    total_calls = 0
    total = 0.0
    for (service, operation), (count, units) in sorted(calls.items()):
        usd = price(service, operation, count, units)
        by_service[service] += usd
        total += usd
        total_calls += count
        lines.append(
            f"{service:<16} {operation:<26} {count:>8} {count / jobs:>9.2f} "
            f"{usd / jobs * 1e6:>16.2f}"
        )
    # EventBridge → SQS deliveries happen inside moto (no HTTP call to count), but AWS bills each
    # one as an SQS request: estimated as the messages consumers deleted.
    deleted = (
        calls.get(("sqs", "DeleteMessageBatch"), (0, 0.0))[1]
        + calls.get(("sqs", "DeleteMessage"), (0, 0.0))[0]
    )
    usd = deleted * PRICE_SQS
    by_service["sqs"] += usd
    total += usd
    lines.append(
        f"{'sqs':<16} {'(EventBridge deliveries)':<26} {int(deleted):>8} {deleted / jobs:>9.2f} "
        f"{usd / jobs * 1e6:>16.2f}   estimated: messages deleted"
    )
    lines.append(
        f"{'total':<16} {'':<26} {total_calls:>8} {total_calls / jobs:>9.2f} "
        f"{total / jobs * 1e6:>16.2f}"
    )
    lines.append(
        "by service (USD per 1M delivered jobs): "
        + ", ".join(f"{s} {v / jobs * 1e6:.2f}" for s, v in sorted(by_service.items()))
    )
    lines.append(f"prices: {REGION_AND_DATE} (bench/load_push.py PRICES)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ run
def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _pct(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_load(files: int, *, idle: float, seed: int, data_dir: Path | None, log: Any) -> int:
    rng = random.Random(seed)
    with (
        tempfile.TemporaryDirectory(prefix="ferry-load-") as tmp,
        LocalRun(Path(data_dir or tmp) / "data", count_calls=True, log=log) as run,
    ):
        assert run.sshd is not None
        run.customer_bucket("load-outbox")
        run.client("s3").put_bucket_notification_configuration(
            Bucket="load-outbox", NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        run.customer_bucket("load-archive")
        partner = run.sftp_dir("partner")
        outbox = run.register_s3("load-outbox", "load-outbox")
        archive = run.register_s3("load-archive", "load-archive")
        sftp = run.register_sftp("load-partner", partner)
        status, route = run.api(
            "POST",
            "/routes",
            {
                "name": "load-push",
                "source": {"endpoint_id": outbox, "path": "outbox", "pattern": "*.dat"},
                "targets": [
                    {"endpoint_id": archive, "path_template": "archive/"},
                    {"endpoint_id": sftp, "path_template": "in/"},
                ],
                "trigger": {"type": "event"},
            },
        )
        if status != 201:
            raise RuntimeError(f"POST /routes → {status}: {route}")
        route_id = route["route_id"]
        deadline = time.monotonic() + 60
        while True:  # the push consumer matches against the routes read model
            _, listed = run.api("GET", "/routes")
            if any(i.get("route_id") == route_id for i in listed.get("items", [])):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the route never reached the routes read model")
            time.sleep(0.5)
        log(f"route {route_id} listed; measuring {idle:.0f} s of idle polling")
        run.calls(reset=True)
        time.sleep(idle)
        idle_calls = ferry_calls(run.calls(reset=True))

        payloads = {
            f"f-{i:05d}.dat": rng.randbytes(rng.randint(1 * KiB, 8 * KiB)) for i in range(files)
        }
        digests = {name: hashlib.sha256(data).hexdigest() for name, data in payloads.items()}
        log(f"uploading {files} files")
        started = time.monotonic()
        s3_local = threading.local()

        def upload(item: tuple[str, bytes]) -> None:
            if not hasattr(s3_local, "client"):
                s3_local.client = run.client("s3")
            s3_local.client.put_object(Bucket="load-outbox", Key=f"outbox/{item[0]}", Body=item[1])

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(upload, payloads.items()))
        uploaded = time.monotonic() - started
        log(f"uploaded in {uploaded:.1f} s; waiting for {2 * files} deliveries")

        s3 = run.client("s3")
        in_dir = partner / "in"

        def delivered() -> tuple[int, int]:
            n_s3 = sum(
                page.get("KeyCount", 0)
                for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket="load-archive", Prefix="archive/"
                )
            )
            n_sftp = (
                sum(1 for p in in_dir.iterdir() if p.name.endswith(".dat"))
                if in_dir.is_dir()
                else 0
            )
            return n_s3, n_sftp

        wait_deadline = time.monotonic() + max(900.0, files * 15.0)
        last_log = 0.0
        queues = (
            "executor_queue",
            "jobs_queue",
            "projections_queue",
            "routes_queue",
            "routes_projections_queue",
        )
        while True:
            n_s3, n_sftp = delivered()
            if n_s3 >= files and n_sftp >= files and all(run.queue_depth(q) == 0 for q in queues):
                break
            now = time.monotonic()
            if now - last_log > 15:
                log(f"delivered S3 {n_s3}/{files}, SFTP {n_sftp}/{files} ({now - started:.0f} s)")
                last_log = now
            if now > wait_deadline:
                log("deadline passed before every file was delivered")
                break
            time.sleep(1.0)
        elapsed = time.monotonic() - started
        time.sleep(2.0)  # the last projections / PM messages in flight
        calls = ferry_calls(run.calls())
        elapsed_counted = time.monotonic() - started

        # ---- checks (after the counts: these reads would otherwise be billed to Ferry)
        bad: list[str] = []
        for name, digest in digests.items():
            key = f"archive/{name}"
            try:
                got = hashlib.sha256(s3.get_object(Bucket="load-archive", Key=key)["Body"].read())
                if got.hexdigest() != digest:
                    bad.append(f"s3 {key}: digest mismatch")
            except s3.exceptions.NoSuchKey:
                bad.append(f"s3 {key}: missing")
            path = in_dir / name
            if not path.is_file():
                bad.append(f"sftp {path}: missing")
            elif sha256_file(path) != digest:
                bad.append(f"sftp {path}: digest mismatch")
        _, listing = run.api("GET", f"/routes/{route_id}/files?limit=1000")
        job_ids: list[str] = []
        for item in listing.get("items", []):
            job_ids.extend(item.get("job_ids", []))
        statuses: dict[str, int] = defaultdict(int)
        waits: list[float] = []  # created → started (queued), per job
        runs: list[float] = []  # started → finished
        for job_id in job_ids:
            _, job = run.api("GET", f"/jobs/{job_id}")
            statuses[str(job.get("status"))] += 1
            times = [_epoch(job.get(k)) for k in ("created_at", "started_at", "finished_at")]
            if None not in times:
                waits.append(times[1] - times[0])  # type: ignore[operator]
                runs.append(times[2] - times[1])  # type: ignore[operator]
        succeeded = statuses.get("SUCCEEDED", 0)

        print(f"files {files}, jobs {len(job_ids)}, SUCCEEDED {succeeded}, states {dict(statuses)}")
        print(f"bytes checked: {2 * files - len(bad)} of {2 * files} targets match their source")
        for line in bad[:20]:
            print(f"  {line}")
        print(
            f"delivery: {elapsed:.1f} s from the first upload to the last target and empty "
            f"queues (uploads took {uploaded:.1f} s): {2 * files / elapsed:.2f} jobs/s"
        )
        if waits:
            print(
                f"per job: created → started p50 {_pct(waits, 50):.1f} s, p95 {_pct(waits, 95):.1f} s;"
                f" started → finished p50 {_pct(runs, 50):.2f} s, p95 {_pct(runs, 95):.2f} s"
            )
        idle_total = sum(c for c, _ in idle_calls.values())
        print(
            f"idle polling: {idle_total / idle:.1f} Ferry calls/s with no work ("
            + ", ".join(
                f"{s}:{o} {c / idle:.1f}/s" for (s, o), (c, _) in sorted(idle_calls.items())
            )
            + f"); ≈ {idle_total / idle * elapsed_counted:.0f} of the run's calls"
        )
        jobs = max(1, succeeded)
        print(
            f"AWS calls by Ferry per delivered job ({jobs} jobs, {elapsed_counted:.0f} s counted):"
        )
        print(cost_table(calls, jobs, idle))
        ok = succeeded == 2 * files and not bad and len(job_ids) == 2 * files
        return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=15.0, help="seconds of idle measurement")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 1 <= args.files <= 1000:
        parser.error("--files: 1 to 1000 (the route's file listing is read in one page)")
    lock = threading.Lock()

    def log(msg: str) -> None:
        with lock:
            print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    return run_load(args.files, idle=args.idle, seed=args.seed, data_dir=args.data_dir, log=log)


if __name__ == "__main__":
    sys.exit(main())
