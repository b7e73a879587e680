"""Two regions on one moto server (ferry/local/regions.py): each a complete set of Ferry's
service processes with its own bus, queues, executors and API, sharing the MRSC tables.

- smoke: a job requested through region A; each region's bus delivers every event of it once.
- failover: jobs of the four flows in flight through region A's API, region A SIGKILLed
  (every process group at once); region B finishes every job from the committed chunks.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from ferry.local import bootstrap
from ferry.local.regions import CORE_SERVICES, MOTO_REGION, REGION_A, REGION_B, TwoRegions
from ferry.names import ALL_SOURCES, ResourceNames

pytestmark = [pytest.mark.timeout(600)]

KiB, MiB = 1024, 1024 * 1024


# ------------------------------------------------------------------------------------ helpers
def _fast_env(lease_seconds: float = 4.0) -> dict[str, str]:
    return {
        # failover speed: a dead region's lease expires after this, then B's retry takes over
        "FERRY_EXECUTOR_LEASE_SECONDS": str(lease_seconds),
        "FERRY_EXECUTOR_HEARTBEAT_SECONDS": "1",
        "FERRY_EXECUTOR_SLOT_WAIT_VISIBILITY_SECONDS": "1",
        "FERRY_EXECUTOR_CHUNK_SIZE": str(256 * KiB),
        "FERRY_EXECUTOR_SINGLE_PUT_THRESHOLD": str(1 * MiB),
        "FERRY_EXECUTOR_COPY_PART_THRESHOLD": str(6 * MiB),
        "FERRY_EXECUTOR_COPY_PART_SIZE": str(5 * MiB),
        "FERRY_EXECUTOR_CONCURRENCY": "4",
        "FERRY_EXECUTOR_SFTP_TIMEOUT": "5",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


class Api:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"x-api-key": self.key, "Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, answer = self.call(method, path, body, **kw)
        assert status < 300, (method, path, status, answer)
        return answer

    def endpoint(self, body: dict[str, Any], timeout: float = 90) -> str:
        endpoint_id = str(self.ok("POST", "/endpoints", body)["endpoint_id"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, found = self.call("GET", f"/endpoints/{endpoint_id}")
            if status == 404:  # not projected yet
                time.sleep(0.3)
                continue
            if found.get("status") == "ACTIVE":
                return endpoint_id
            assert found.get("status") in ("PENDING_VALIDATION", "VALIDATING", None), found
            time.sleep(0.3)
        raise AssertionError(f"endpoint {body['name']} not ACTIVE after {timeout} s")

    def transfer(self, body: dict[str, Any], key: str) -> tuple[int, Any]:
        return self.call("POST", "/transfers", body, headers={"Idempotency-Key": key})

    def job(self, job_id: str) -> dict[str, Any]:
        """The job in this region's read model ({"status": None} while not projected yet)."""
        status, answer = self.call("GET", f"/jobs/{job_id}")
        if status == 404:
            return {"status": None}
        assert status == 200, answer
        return dict(answer)


def catch_all_queue(names: ResourceNames, label: str) -> str:
    """A test queue with a catch-all rule on one region's bus (what a consumer would get)."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    url = str(sqs.create_queue(QueueName=f"{names.prefix}-{label}")["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    rule = f"{names.prefix}-{label}-all"
    events.put_rule(
        Name=rule,
        EventBusName=names.bus,
        EventPattern=json.dumps({"source": list(ALL_SOURCES)}),
        State="ENABLED",
    )
    events.put_targets(Rule=rule, EventBusName=names.bus, Targets=[{"Id": "q", "Arn": arn}])
    return url


def drain(queue_url: str, quiet: float = 3.0, timeout: float = 60.0) -> Counter[tuple[str, int]]:
    """(stream_id, version) -> deliveries, until the queue stays empty for ``quiet`` s."""
    sqs = boto3.client("sqs")
    seen: Counter[tuple[str, int]] = Counter()
    deadline, last = time.monotonic() + timeout, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last < quiet:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        for m in messages:
            detail = json.loads(m["Body"])["detail"]
            seen[(str(detail["stream_id"]), int(detail["version"]))] += 1
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
            last = time.monotonic()
    return seen


def published_events(events_table: str) -> set[tuple[str, int]]:
    """Every (stream, version) of the event store that the publisher publishes."""
    from events.dynamodb import stored_event_from_item
    from events.translate import to_integration

    ddb = boto3.client("dynamodb")
    out: set[tuple[str, int]] = set()
    for page in ddb.get_paginator("scan").paginate(TableName=events_table, ConsistentRead=True):
        for item in page["Items"]:
            if to_integration(stored_event_from_item(item)) is not None:
                out.add((item["stream_id"]["S"], int(item["version"]["N"])))
    return out


def claims(table: str) -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb")
    items: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items += page["Items"]
    return items


@pytest.fixture
def regions_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test process talks to the simulation's moto too (boto3 from the environment)."""
    for name in ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FERRY_EGRESS_ALLOW", "127.0.0.0/8")
    yield tmp_path


def _start(data_dir: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> TwoRegions:
    prefix = f"mr{uuid.uuid4().hex[:6]}"
    regions = TwoRegions(data_dir, prefix=prefix, on_event=lambda _m: None, **kwargs)
    for key, value in bootstrap.aws_environment(regions.aws_endpoint, MOTO_REGION).items():
        monkeypatch.setenv(key, value)
    started = time.monotonic()
    regions.start()
    print(f"two regions up in {time.monotonic() - started:.1f} s")
    return regions


# -------------------------------------------------------------------------------------- smoke
def test_both_regions_publish_each_event_once(
    regions_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    regions = _start(
        regions_env / "sim", monkeypatch, extra_env=_fast_env(), services=CORE_SERVICES
    )
    try:
        a, b = regions[REGION_A], regions[REGION_B]
        assert a.info is not None
        queues = {r.name: catch_all_queue(r.messaging, "watch") for r in (a, b)}
        s3 = boto3.client("s3")
        bucket = f"{regions.prefix}-data"
        s3.create_bucket(Bucket=bucket)
        payload = os.urandom(300 * KiB)
        s3.put_object(Bucket=bucket, Key="in/small.bin", Body=payload)
        api = Api(a.api_url, a.info.api_key)
        source = api.endpoint(
            {"name": "src", "type": "s3", "bucket": bucket, "prefix": "in/", "direction": "BOTH"}
        )
        target = api.endpoint(
            {"name": "dst", "type": "s3", "bucket": bucket, "prefix": "out/", "direction": "BOTH"}
        )
        status, job = api.transfer(
            {
                "source": {"endpoint_id": source, "path": "small.bin"},
                "target": {"endpoint_id": target, "path": "small.bin"},
            },
            key="smoke-1",
        )
        assert status == 202, job
        deadline = time.monotonic() + 60
        while api.job(job["job_id"])["status"] != "SUCCEEDED":
            assert time.monotonic() < deadline, api.job(job["job_id"])
            time.sleep(0.3)
        body = s3.get_object(Bucket=bucket, Key="out/small.bin")["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()

        expected = published_events(regions.names.events_table)
        for region in (a, b):
            seen = drain(queues[region.name])
            missing = expected - set(seen)
            assert not missing, f"{region.name} missed {len(missing)} of {len(expected)}"
            duplicated = {k: v for k, v in seen.items() if v > 1}
            assert not duplicated, f"{region.name} got duplicates: {duplicated}"
        items = claims(regions.names.publications_table)
        assert len(items) == len(expected) and all(i["published"]["BOOL"] for i in items)
        origins = Counter(i["region"]["S"] for i in items)
        print(f"{len(expected)} events, each delivered once per region; claims won: {origins}")
        # both regions' stream pollers ran (each its own checkpoints)
        for region in (a, b):
            assert (region.data_dir / "stream-checkpoints.json").exists()
    finally:
        regions.stop()
