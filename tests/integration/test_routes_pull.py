"""Pull routes against a real OpenSSH sshd and moto server: a partner directory listed tick by
tick; a file written slowly across ticks is dispatched once, only after it stopped growing; a
bigger directory is listed in pages and dispatched according to the per-tick limit."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from services.routes.adapters import DynamoRoutesReadModel, DynamoScanStateStore
from services.routes.application import RoutesApplication
from services.routes.scanner import Scanner, ScannerPolicy, build_scanner
from tests.integration.routes_harness import RoutesStack
from tests.support.fakes.routes import FakeJobs, InMemoryEndpointDirectory, InMemoryRouteIndex
from tests.support.moto_server import unique_name
from tests.support.sshd import SshdServer


def _sftp_endpoint(stack: RoutesStack, server: SshdServer, base: Path) -> str:
    secret = boto3.client("secretsmanager").create_secret(
        Name=unique_name("partner"),
        SecretString=json.dumps(
            {"username": server.username, "private_key": server.private_key_text}
        ),
    )["ARN"]
    return stack.put_endpoint(
        "sftp",
        host=server.host,
        port=server.port,
        username=server.username,
        base_path=str(base),
        host_key=server.host_key_line,
        auth_method="private_key",
        secret_arn=secret,
    )


def _write(server: SshdServer, path: Path, data: bytes, *, append: bool = False) -> None:
    with open(path, "ab" if append else "wb") as handle:
        handle.write(data)
    server.chown_to_user(path)


@pytest.fixture
def pull(aws_env: dict[str, str], sshd: SshdServer, sftp_dir: Path) -> dict[str, Any]:
    stack = RoutesStack()
    inbox = sftp_dir / "inbox"
    inbox.mkdir()
    sshd.chown_to_user(inbox)
    source = _sftp_endpoint(stack, sshd, sftp_dir)
    bucket = unique_name("archive")
    boto3.client("s3").create_bucket(Bucket=bucket)
    target = stack.put_endpoint("s3", bucket=bucket, prefix="")
    return {"stack": stack, "inbox": inbox, "source": source, "target": target}


def test_slowly_written_file_is_dispatched_once_after_it_stops_growing(
    pull: dict[str, Any], sshd: SshdServer
) -> None:
    stack: RoutesStack = pull["stack"]
    inbox: Path = pull["inbox"]
    route_id = stack.create_route(
        {
            "name": "partner-pull",
            "source": {"endpoint_id": pull["source"], "path": "inbox", "pattern": "*.csv"},
            "targets": [{"endpoint_id": pull["target"], "path_template": "in/{filename}"}],
            "trigger": {"type": "schedule", "every": "1m"},
        }
    )
    scanner = build_scanner(settings=stack.settings, app=stack.app)
    _write(sshd, inbox / "a.csv", b"a,1\n")
    _write(sshd, inbox / "notes.txt", b"not routed\n")
    _write(sshd, inbox / "slow.csv", b"part 1\n")
    now = time.time()

    dispatched = [scanner.tick(now).dispatched]  # first sight: nothing yet
    _write(sshd, inbox / "slow.csv", b"part 2\n", append=True)
    dispatched.append(scanner.tick(now + 60).dispatched)  # a.csv stable; slow.csv grew
    _write(sshd, inbox / "b.csv", b"b,2\n")
    _write(sshd, inbox / "slow.csv", b"part 3\n", append=True)
    dispatched.append(scanner.tick(now + 120).dispatched)  # slow.csv grew again
    dispatched.append(scanner.tick(now + 180).dispatched)  # b.csv and slow.csv now stable
    dispatched.append(scanner.tick(now + 240).dispatched)  # nothing new
    assert scanner.tick(now + 250).routes_scanned == 0  # not due yet (every 1m)
    assert dispatched == [0, 1, 0, 2, 0]
    assert stack.job_requested_count() == 3

    slow = stack.app.ledger(route_id, "inbox/slow.csv")
    assert slow is not None
    [(version, entry)] = slow.dispatched.items()
    final_size = (inbox / "slow.csv").stat().st_size
    assert final_size == 21 and version.startswith(f"{final_size}:")
    job = stack.jobs.get_job(stack.customer, entry["job_ids"][0])
    assert job.spec["source"]["path"] == "inbox/slow.csv"
    assert job.spec["target"] == {"endpoint_id": pull["target"], "path": "in/slow.csv"}

    for path in ("inbox/slow.csv", "inbox/notes.txt"):
        stack.project_file(route_id, path)
    [slow_item] = stack.read_model.files(route_id, "slow.csv", 10)
    reasons = [h.get("reason") for h in slow_item["history"]]
    assert reasons == [None, "unstable", "unstable", None]
    assert slow_item["status"] == "dispatched"
    [notes] = stack.read_model.files(route_id, "notes.txt", 10)
    assert notes["reason"] == "pattern"


def test_a_big_directory_is_listed_in_pages_and_dispatched_per_tick_limit(
    pull: dict[str, Any], sshd: SshdServer
) -> None:
    stack: RoutesStack = pull["stack"]
    inbox: Path = pull["inbox"]
    count, limit = 500, 200
    for i in range(count):
        _write(sshd, inbox / f"f{i:05d}.csv", b"x" * (i % 7))
    # the ledger in memory and jobs faked (this measures listing and the scan state, not the
    # jobs service); the listing is a real SFTP session and the scan state is DynamoDB
    jobs = FakeJobs()
    endpoints = InMemoryEndpointDirectory()
    real = stack.app.endpoints
    for endpoint_id in (pull["source"], pull["target"]):
        found = real.get(endpoint_id)
        assert found is not None
        endpoints.put(found)
    app = RoutesApplication(endpoints=endpoints, jobs=jobs, index=InMemoryRouteIndex())
    route = app.create(
        stack.customer,
        "key",
        {
            "name": "bulk",
            "source": {"endpoint_id": pull["source"], "path": "inbox"},
            "targets": [{"endpoint_id": pull["target"]}],
            "trigger": {"type": "schedule", "every": "10s"},
            "stable": {"checks": 1},
        },
    )
    read_model = DynamoRoutesReadModel(stack.names.routes_table)
    read_model.put(
        {
            "route_id": route.route_id,
            "sk": "route",
            "customer_id": stack.customer,
            "definition": route.definition,
            "enabled": True,
            "trigger_type": "schedule",
            "created_at": "2026-01-01T00:00:00+00:00",
            "version": 1,
        },
        None,
    )
    base = build_scanner(settings=stack.settings, app=app, job_status=jobs)
    scanner = Scanner(
        app=app,
        routes=read_model,
        endpoints=endpoints,
        sources=base.sources,
        state=DynamoScanStateStore(stack.settings.scan),
        job_status=jobs,
        policy=ScannerPolicy(dispatch_limit=limit),
    )
    now = time.time()
    reports = [scanner.tick(now + 60 * t) for t in range(4)]
    assert [r.listed for r in reports] == [count] * 4
    assert [r.dispatched for r in reports] == [limit, limit, count - 2 * limit, 0]
    assert len(jobs.requests) == count
    assert reports[3].state_writes == 0  # a steady directory costs no writes


def test_the_scanner_consumes_ticks_from_the_tick_queue(aws_env: dict[str, str]) -> None:
    from services.routes.scanner import tick_messages
    from services.routes.settings import RoutesSettings

    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=unique_name("tick"))["QueueUrl"]
    for _ in range(3):
        sqs.send_message(QueueUrl=url, MessageBody='{"tick": "now"}')
    ticks = tick_messages(RoutesSettings(tick_queue_url=url))
    assert next(ticks) is None  # queued ticks collapse into one
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"


def test_an_unreadable_subdirectory_is_skipped_with_its_reason_and_the_rest_is_sent(
    pull: dict[str, Any], sshd: SshdServer
) -> None:
    """Issue 9 case 3: a permission error on one entry of a recursive listing (a real sshd
    refusing a directory) is that entry's FileSkipped(unreadable); the route goes on."""
    stack: RoutesStack = pull["stack"]
    inbox: Path = pull["inbox"]
    for name in ("locked", "open"):
        (inbox / name).mkdir()
        sshd.chown_to_user(inbox / name)
    _write(sshd, inbox / "open" / "a.csv", b"a\n")
    _write(sshd, inbox / "locked" / "hidden.csv", b"h\n")
    (inbox / "locked").chmod(0)
    try:
        route_id = stack.create_route(
            {
                "name": "partner-tree",
                "source": {"endpoint_id": pull["source"], "path": "inbox", "recursive": True},
                "targets": [{"endpoint_id": pull["target"], "path_template": "in/{relpath}"}],
                "trigger": {"type": "schedule", "every": "1m"},
                "stable": {"checks": 1},
            }
        )
        scanner = build_scanner(settings=stack.settings, app=stack.app)
        report = scanner.tick(time.time() + 60)
    finally:
        (inbox / "locked").chmod(0o755)

    assert report.dispatched == 1 and report.skipped == {"unreadable": 1}
    stack.project_file(route_id, "inbox/locked")
    [locked] = stack.read_model.files(route_id, "inbox/locked", 10)
    assert (locked["reason"], locked["detail"]) == ("unreadable", "PERMISSION_DENIED"), locked
    assert stack.app.get_route(stack.customer, route_id).scan_error is None
