"""End to end with the real executor (in-process) on moto server and OpenSSH sshd: a partner's
SFTP file fanned out to an S3 archive and another SFTP server (the seeds' bank example); the
source is moved only after both targets SUCCEEDED, and stays put when one target fails.

Wiring that the local stack does with EventBridge is done by hand here: the job's JobQueued goes
to the executor queue, and the executor's events go to the jobs application (the process
manager's command) — the jobs read model is replaced by a JobStatusReader on the job stream."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from events.contract import JobQueued
from events.translate import stream_events
from ferry.endpoint_directory import DynamoEndpointDirectory
from services.jobs.adapters import create_idempotency_table
from services.jobs.application import JobsApplication
from services.jobs.bootstrap import bootstrap as jobs_bootstrap
from services.jobs.settings import JobsSettings
from services.routes.adapters import (
    DynamoRouteIndex,
    DynamoRoutesReadModel,
    DynamoScanStateStore,
    EndpointSourceOpener,
    JobsApplicationSubmitter,
    create_tables,
)
from services.routes.application import RoutesApplication
from services.routes.ports import JobState, JobStatusReader, RouteDirectory
from services.routes.scanner import Scanner
from tests.integration.executor_harness import Stack
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.sshd import SshdServer


class JobStreamStatus(JobStatusReader):
    def __init__(self, jobs: JobsApplication, customer: str) -> None:
        self.jobs, self.customer = jobs, customer

    def get(self, job_id: str) -> JobState | None:
        job = self.jobs.get_job(self.customer, job_id)
        return JobState(job.status.value, job.error_code, job.error_message, job.redriven_to)


class OneRoute(RouteDirectory):
    def __init__(self, app: RoutesApplication, customer: str, route_id: str) -> None:
        self.app, self.customer, self.route_id = app, customer, route_id

    def enabled_routes(self, trigger: str) -> list[tuple[str, str, dict[str, Any]]]:
        route = self.app.get_route(self.customer, self.route_id)
        ok = route.enabled and route.definition["trigger"]["type"] == trigger
        return [(self.route_id, self.customer, route.definition)] if ok else []


def _dispatched(app: RoutesApplication, route_id: str, path: str) -> list[dict[str, Any]]:
    ledger = app.ledger(route_id, path)
    assert ledger is not None, f"no ledger for {path}"
    return list(ledger.dispatched.values())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def world(aws_env: dict[str, str], sshd: SshdServer, sftp_dir: Path) -> dict[str, Any]:
    stack = Stack(aws_env, sshd, sftp_dir)
    names = stack.names
    create_idempotency_table(stack.ddb, names.idempotency_table)
    create_tables(stack.ddb, names.routes_table, names.route_scan_table)
    env = {"PERSISTENCE_MODULE": "events.dynamodb", "FERRY_EVENTS_TABLE": names.events_table}
    jobs = jobs_bootstrap(
        settings=JobsSettings(
            endpoints_table=names.endpoints_table,
            idempotency_table=names.idempotency_table,
            api_keys_table=names.api_keys_table,
        ),
        keys=InMemoryKeyStore(),
        env=env,
    ).app
    app = RoutesApplication(
        endpoints=DynamoEndpointDirectory(names.endpoints_table),
        jobs=JobsApplicationSubmitter(jobs),
        staging_bucket=names.staging_bucket,
        index=DynamoRouteIndex(names.route_scan_table),
        env=env,
    )
    outbound = sftp_dir / "outbound"
    partner = sftp_dir / "partner"
    for directory in (outbound, partner, sftp_dir / "archive"):
        directory.mkdir()
        sshd.chown_to_user(directory)
    partner_ep = stack.endpoint_sftp(base_path=str(partner))
    return {
        "stack": stack,
        "jobs": jobs,
        "app": app,
        "outbound": outbound,
        "partner": partner,
        "partner_ep": partner_ep,
        "sshd": sshd,
        "sftp_dir": sftp_dir,
    }


def _run_jobs(world: dict[str, Any], job_ids: list[str]) -> None:
    """JobQueued → executor; executor events → the jobs application (process manager)."""
    stack: Stack = world["stack"]
    jobs: JobsApplication = world["jobs"]
    for job_id in job_ids:
        for event in stream_events(jobs.recorder, job_id):
            if isinstance(event, JobQueued):
                stack.send(event)
    executor = stack.executor()
    stack.drain(executor, jobs=len(job_ids), timeout=60)
    for job_id in job_ids:
        for event in stack.events(job_id):
            jobs.on_executor_event(event)


def _route(world: dict[str, Any]) -> tuple[str, Scanner]:
    stack: Stack = world["stack"]
    app: RoutesApplication = world["app"]
    route = app.create(
        stack.customer_id,
        "key",
        {
            "name": "bank",
            "source": {"endpoint_id": stack.sftp_ep, "path": "outbound", "pattern": "*.csv"},
            "targets": [
                {"endpoint_id": stack.s3_dst, "path_template": "{customer}/{yyyy}/{mm}/"},
                {"endpoint_id": world["partner_ep"], "path_template": "in/{filename}"},
            ],
            "trigger": {"type": "schedule", "every": "1m"},
            "stable": {"checks": 1},
            "post_action": "move",
            "move_to": "archive",
            "max_attempts": 1,
        },
    )
    scanner = Scanner(
        app=app,
        routes=OneRoute(app, stack.customer_id, route.route_id),
        endpoints=app.endpoints,
        sources=EndpointSourceOpener(stack.names.endpoints_table),
        state=DynamoScanStateStore(stack.names.route_scan_table),
        job_status=JobStreamStatus(world["jobs"], stack.customer_id),
    )
    return route.route_id, scanner


def test_fan_out_delivers_both_then_moves_the_source(world: dict[str, Any]) -> None:
    stack: Stack = world["stack"]
    route_id, scanner = _route(world)
    payload = b"iban;amount\n" + b"DE00;1.00\n" * 5000
    (world["outbound"] / "pay.csv").write_bytes(payload)
    world["sshd"].chown_to_user(world["outbound"] / "pay.csv")
    now = time.time()

    assert scanner.tick(now).dispatched == 1
    [entry] = _dispatched(world["app"], route_id, "outbound/pay.csv")
    _run_jobs(world, entry["job_ids"])
    statuses = [world["jobs"].get_job(stack.customer_id, j).status.value for j in entry["job_ids"]]
    assert statuses == ["SUCCEEDED", "SUCCEEDED"]
    assert (world["outbound"] / "pay.csv").exists()  # not moved before the scanner settles

    report = scanner.tick(now + 60)
    assert report.settled == 1
    yyyy_mm = time.strftime(
        "%Y/%m", time.gmtime((world["sftp_dir"] / "archive" / "pay.csv").stat().st_mtime)
    )
    archived = stack.get_s3(stack.dst_bucket, f"{stack.customer_id}/{yyyy_mm}/pay.csv")
    assert _sha(archived) == _sha(payload)
    assert _sha((world["partner"] / "in" / "pay.csv").read_bytes()) == _sha(payload)
    assert not (world["outbound"] / "pay.csv").exists()
    assert (world["sftp_dir"] / "archive" / "pay.csv").read_bytes() == payload
    last = world["app"].file_events(route_id, "outbound/pay.csv")[-1]
    assert last.detail_type() == "FilePostActionCompleted"
    assert scanner.tick(now + 120).dispatched == 0  # moved away: nothing to send again


def test_a_failed_target_leaves_the_source_and_records_the_failure(
    world: dict[str, Any],
) -> None:
    route_id, scanner = _route(world)
    payload = b"x" * 1000
    (world["outbound"] / "fail.csv").write_bytes(payload)
    world["sshd"].chown_to_user(world["outbound"] / "fail.csv")
    # the partner already has in/fail.csv and the route does not overwrite: that target fails
    (world["partner"] / "in").mkdir()
    world["sshd"].chown_to_user(world["partner"] / "in")
    (world["partner"] / "in" / "fail.csv").write_bytes(b"older")
    now = time.time()
    assert scanner.tick(now).dispatched == 1
    [entry] = _dispatched(world["app"], route_id, "outbound/fail.csv")
    _run_jobs(world, entry["job_ids"])
    statuses = [
        world["jobs"].get_job(world["stack"].customer_id, j).status.value for j in entry["job_ids"]
    ]
    assert statuses == ["SUCCEEDED", "FAILED"]
    scanner.tick(now + 60)
    assert (world["outbound"] / "fail.csv").read_bytes() == payload  # not moved
    last = world["app"].file_events(route_id, "outbound/fail.csv")[-1]
    assert last.detail_type() == "FileDeliveryFailed"
    assert last.failed_job_ids == [entry["job_ids"][1]]


def _fail_one_target(world: dict[str, Any], name: str) -> tuple[str, Scanner, bytes, list[str]]:
    """A dispatched file whose partner target FAILED (TARGET_EXISTS), settled as failed."""
    route_id, scanner = _route(world)
    payload = b"y" * 2000
    (world["outbound"] / name).write_bytes(payload)
    world["sshd"].chown_to_user(world["outbound"] / name)
    (world["partner"] / "in").mkdir(exist_ok=True)
    world["sshd"].chown_to_user(world["partner"] / "in")
    (world["partner"] / "in" / name).write_bytes(b"older")
    now = time.time()
    assert scanner.tick(now).dispatched == 1
    [entry] = _dispatched(world["app"], route_id, f"outbound/{name}")
    _run_jobs(world, entry["job_ids"])
    scanner.tick(now + 60)
    last = world["app"].file_events(route_id, f"outbound/{name}")[-1]
    assert last.detail_type() == "FileDeliveryFailed"
    # the operator fixes the cause: the partner's stale file goes away
    (world["partner"] / "in" / name).unlink()
    return route_id, scanner, payload, entry["job_ids"]


def _recovered(world: dict[str, Any], route_id: str, name: str, payload: bytes) -> None:
    events = [e.detail_type() for e in world["app"].file_events(route_id, f"outbound/{name}")]
    assert events[-2:] == ["FileDelivered", "FilePostActionCompleted"]
    assert events.count("FilePostActionCompleted") == 1
    assert not (world["outbound"] / name).exists()
    assert (world["sftp_dir"] / "archive" / name).read_bytes() == payload
    assert (world["partner"] / "in" / name).read_bytes() == payload


def test_redriving_a_route_files_failed_job_delivers_it_and_runs_the_post_action(
    world: dict[str, Any],
) -> None:
    """Issue 9 case 5, as found: POST /jobs/{id}/redrive of a route file's failed job left the
    ledger failed and the source unmoved even after the redriven job succeeded."""
    stack: Stack = world["stack"]
    route_id, scanner, payload, job_ids = _fail_one_target(world, "redrive.csv")
    new_job = world["jobs"].redrive(stack.customer_id, "key-ops", job_ids[1]).job_id
    assert world["jobs"].get_job(stack.customer_id, new_job).route_id == route_id
    _run_jobs(world, [new_job])

    report = scanner.tick(time.time() + 120)

    assert report.settled == 1
    _recovered(world, route_id, "redrive.csv", payload)
    delivered = [
        e
        for e in world["app"].file_events(route_id, "outbound/redrive.csv")
        if e.detail_type() == "FileDelivered"
    ]
    assert delivered[0].job_ids == [job_ids[0], new_job]  # type: ignore[attr-defined]


def test_retrying_a_failed_file_and_redriving_its_job_deliver_once(world: dict[str, Any]) -> None:
    """POST /routes/{id}/files/retry and POST /jobs/{id}/redrive of the same failed job converge
    on one new job; the post-action runs exactly once."""
    stack: Stack = world["stack"]
    app: RoutesApplication = world["app"]
    route_id, scanner, payload, job_ids = _fail_one_target(world, "retry.csv")

    retried = app.retry_file(stack.customer_id, "key-ops", route_id, "outbound/retry.csv").job_ids
    assert retried[0] == job_ids[0] and retried[1] != job_ids[1]
    # the same failed job redriven through the jobs API too: the same new job, not another
    assert world["jobs"].redrive(stack.customer_id, "key-ops", job_ids[1]).job_id == retried[1]
    _run_jobs(world, [retried[1]])
    scanner.tick(time.time() + 120)
    scanner.tick(time.time() + 180)  # nothing more to do

    _recovered(world, route_id, "retry.csv", payload)
    assert stack.s3 is not None


def test_push_objects_are_delivered_and_ferry_writes_do_not_loop(world: dict[str, Any]) -> None:
    """S3 push, executed: every object SUCCEEDED with the right bytes at both targets, one of
    them the source bucket itself under another prefix — whose new objects start no job."""
    import json

    import boto3

    from services.routes.adapters import S3ObjectInspector
    from services.routes.push import PushConsumer, make_handler
    from tests.integration.routes_harness import drain, s3_events_queue

    stack: Stack = world["stack"]
    app: RoutesApplication = world["app"]
    queue = s3_events_queue(stack.src_bucket)
    route = app.create(
        stack.customer_id,
        "key",
        {
            "name": "outbox",
            "source": {"endpoint_id": stack.s3_src, "path": "out", "pattern": "*.csv"},
            "targets": [
                {"endpoint_id": stack.s3_src, "path_template": "delivered/{filename}"},
                {"endpoint_id": stack.s3_dst, "path_template": "in/{filename}"},
            ],
            "trigger": {"type": "event"},
        },
    )
    handle = make_handler(
        PushConsumer(
            app=app,
            routes=OneRoute(app, stack.customer_id, route.route_id),
            endpoints=app.endpoints,
            objects=S3ObjectInspector(),
            state=DynamoScanStateStore(stack.names.route_scan_table),
            staging_bucket=stack.names.staging_bucket,
        )
    )
    payloads = {f"out/o{i}.csv": json.dumps({"row": i}).encode() * (i + 1) for i in range(6)}
    for key, body in payloads.items():
        stack.s3.put_object(Bucket=stack.src_bucket, Key=key, Body=body)
    assert drain(queue, handle) == len(payloads)
    job_ids = []
    for key in payloads:
        [entry] = _dispatched(app, route.route_id, key)
        job_ids.extend(entry["job_ids"])
    assert len(job_ids) == 2 * len(payloads)
    _run_jobs(world, job_ids)
    statuses = {world["jobs"].get_job(stack.customer_id, j).status.value for j in job_ids}
    assert statuses == {"SUCCEEDED"}
    for key, body in payloads.items():
        name = key.rsplit("/", 1)[-1]
        assert stack.get_s3(stack.src_bucket, f"delivered/{name}") == body
        assert stack.get_s3(stack.dst_bucket, f"in/{name}") == body
    # the executor's writes into the source bucket raised S3 events: none starts a job
    before = len(job_ids)
    assert drain(queue, handle) >= len(payloads)  # the delivered/ objects' events
    after = sum(
        len(e["job_ids"]) for key in payloads for e in _dispatched(app, route.route_id, key)
    )
    assert after == before
    listed = boto3.client("s3").list_objects_v2(Bucket=stack.src_bucket, Prefix="delivered/")
    assert listed["KeyCount"] == len(payloads)


def test_objects_uploaded_right_after_a_push_route_is_created_are_delivered(
    world: dict[str, Any],
) -> None:
    """Issue 9 case 2, executed: the route's command only (its read model never projected),
    five objects uploaded at once right after it, all five delivered with the right bytes."""
    import boto3

    from services.routes.adapters import S3ObjectInspector
    from services.routes.push import PushConsumer, make_handler
    from tests.integration.routes_harness import drain, s3_events_queue

    stack: Stack = world["stack"]
    app: RoutesApplication = world["app"]
    queue = s3_events_queue(stack.src_bucket)
    read_model = DynamoRoutesReadModel(stack.names.routes_table)
    handle = make_handler(
        PushConsumer(
            app=app,
            routes=read_model,  # the real, lagging read model: empty for this route
            endpoints=app.endpoints,
            objects=S3ObjectInspector(),
            state=DynamoScanStateStore(stack.names.route_scan_table),
            staging_bucket=stack.names.staging_bucket,
        )
    )
    route = app.create(
        stack.customer_id,
        "key",
        {
            "name": "fresh",
            "source": {"endpoint_id": stack.s3_src, "path": "fresh"},
            "targets": [{"endpoint_id": stack.s3_dst, "path_template": "fresh/{filename}"}],
            "trigger": {"type": "event"},
        },
    )
    payloads = {f"fresh/o{i}.bin": bytes([i]) * (1000 * (i + 1)) for i in range(5)}
    for key, body in payloads.items():
        stack.s3.put_object(Bucket=stack.src_bucket, Key=key, Body=body)
    assert read_model.enabled("event") == []

    assert drain(queue, handle, expect=len(payloads)) == len(payloads)

    job_ids = [
        j for key in payloads for e in _dispatched(app, route.route_id, key) for j in e["job_ids"]
    ]
    assert len(job_ids) == len(payloads)
    _run_jobs(world, job_ids)
    for key, body in payloads.items():
        assert stack.get_s3(stack.dst_bucket, key) == body
    listed = boto3.client("s3").list_objects_v2(Bucket=stack.dst_bucket, Prefix="fresh/")
    assert listed["KeyCount"] == len(payloads)
