"""Issue 9 cases 2, 3 and 5 as a new user meets them on the local stack (``ferry up`` in a
subprocess; the real API server, push consumer, read-model poller, ticker, scanner and
executor): objects uploaded the moment a push route exists are delivered; a badly named file
does not stop a pull route; a failed delivery is retried with ``ferry routes retry``."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.harness import Stack, http, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


def s3_endpoint(stack: Stack, name: str, bucket: str) -> str:
    """A bucket of the local stack's customer (granted by tag, as tenancy requires)."""
    from ferry.local.stack import DEMO_CUSTOMER

    s3 = stack.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_tagging(
        Bucket=bucket,
        Tagging={"TagSet": [{"Key": "ferry:customer", "Value": DEMO_CUSTOMER}]},
    )
    created = stack.cli_json(
        "endpoints", "add", "--name", name, "--type", "s3", "--bucket", bucket,
        "--direction", "BOTH", "--wait", "60",
    )  # fmt: skip
    assert created["status"] == "ACTIVE", created
    return str(created["endpoint_id"])


def _route_jobs(stack: Stack, route_id: str) -> list[dict[str, Any]]:
    jobs = stack.cli_json("jobs", "--limit", "100")["jobs"]
    return [j for j in jobs if j.get("route_id") == route_id]


def test_objects_uploaded_the_moment_a_push_route_exists_are_delivered(stack: Stack) -> None:
    s3 = stack.client("s3")
    outbox = s3_endpoint(stack, "race-outbox", "race-outbox")
    archive = s3_endpoint(stack, "race-archive", "race-archive")
    s3.put_bucket_notification_configuration(
        Bucket="race-outbox", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    status, route = http(
        stack,
        "POST",
        "/routes",
        {
            "name": "race",
            "source": {"endpoint_id": outbox, "path": "out"},
            "targets": [{"endpoint_id": archive, "path_template": "in/{filename}"}],
            "trigger": {"type": "event"},
        },
    )
    assert status == 201, route
    payloads = {f"out/f{i}.csv": f"row {i}\n".encode() * (i + 1) for i in range(5)}
    for key, body in payloads.items():  # at once, right after the 201
        s3.put_object(Bucket="race-outbox", Key=key, Body=body)

    def delivered() -> bool:
        jobs = _route_jobs(stack, route["route_id"])
        return len(jobs) == 5 and all(j["status"] == "SUCCEEDED" for j in jobs)

    wait_until(delivered, timeout=120, interval=1, what="5 route jobs SUCCEEDED")
    for key, body in payloads.items():
        name = key.rsplit("/", 1)[-1]
        got = s3.get_object(Bucket="race-archive", Key=f"in/{name}")["Body"].read()
        assert got == body

    # an object no route covers is answered for, to the bucket's owner
    s3.put_object(Bucket="race-outbox", Key="elsewhere/lost.csv", Body=b"x")
    wait_until(
        lambda: any(
            i["key"] == "elsewhere/lost.csv"
            for i in stack.cli_json("routes", "unrouted", outbox, "--json")["items"]
        ),
        timeout=60,
        interval=1,
        what="unrouted object listed",
    )


def test_a_badly_named_file_does_not_stop_a_pull_route(stack: Stack) -> None:
    s3 = stack.client("s3")
    inbox = s3_endpoint(stack, "pull-inbox", "pull-inbox")
    lake = s3_endpoint(stack, "pull-lake", "pull-lake")
    s3.put_object(Bucket="pull-inbox", Key="in/a//bad.dat", Body=b"bad")
    s3.put_object(Bucket="pull-inbox", Key="in/b-good.dat", Body=b"good")
    status, route = http(
        stack,
        "POST",
        "/routes",
        {
            "name": "pull",
            "source": {"endpoint_id": inbox, "path": "in", "recursive": True},
            "targets": [{"endpoint_id": lake, "path_template": "got/{filename}"}],
            "trigger": {"type": "schedule", "every": "10s"},
            "stable": {"checks": 1},
        },
    )
    assert status == 201, route
    route_id = route["route_id"]

    def good_sent() -> bool:
        jobs = _route_jobs(stack, route_id)
        return len(jobs) == 1 and jobs[0]["status"] == "SUCCEEDED"

    wait_until(good_sent, timeout=120, interval=1, what="b-good.dat delivered")
    assert s3.get_object(Bucket="pull-lake", Key="got/b-good.dat")["Body"].read() == b"good"
    files = stack.cli_json("routes", "files", route_id, "--name", "bad.dat", "--json")["items"]
    assert [(f["status"], f["reason"]) for f in files] == [("skipped", "invalid_path")]
    assert "empty segments" in files[0]["detail"]
    shown = stack.cli_json("routes", "show", route_id, "--json")
    assert shown["status"] == "ENABLED", shown


def test_a_failed_file_is_retried_with_the_cli(stack: Stack) -> None:
    s3 = stack.client("s3")
    src = s3_endpoint(stack, "retry-src", "retry-src")
    dst = s3_endpoint(stack, "retry-dst", "retry-dst")
    s3.put_object(Bucket="retry-dst", Key="got/pay.csv", Body=b"older")  # overwrite false
    s3.put_object(Bucket="retry-src", Key="in/pay.csv", Body=b"new content")
    status, route = http(
        stack,
        "POST",
        "/routes",
        {
            "name": "retry",
            "source": {"endpoint_id": src, "path": "in"},
            "targets": [{"endpoint_id": dst, "path_template": "got/{filename}"}],
            "trigger": {"type": "schedule", "every": "10s"},
            "stable": {"checks": 1},
            "max_attempts": 1,
            "post_action": "move",
            "move_to": "done",
        },
    )
    assert status == 201, route
    route_id = route["route_id"]
    wait_until(
        lambda: stack.cli_json("routes", "show", route_id, "--json")["status"] == "FAILING",
        timeout=120,
        interval=1,
        what="the route FAILING",
    )
    s3.delete_object(Bucket="retry-dst", Key="got/pay.csv")  # the operator fixes the cause
    retried = stack.cli("routes", "retry", route_id, "--path", "in/pay.csv")
    assert retried.returncode == 0 and "retrying in/pay.csv" in retried.stdout

    def recovered() -> bool:
        item = stack.cli_json("routes", "files", route_id, "--name", "pay.csv", "--json")
        return [f["status"] for f in item["items"]] == ["post_action_completed"]

    wait_until(recovered, timeout=120, interval=1, what="the file delivered and moved")
    assert s3.get_object(Bucket="retry-dst", Key="got/pay.csv")["Body"].read() == b"new content"
    assert s3.get_object(Bucket="retry-src", Key="done/pay.csv")["Body"].read() == b"new content"
    assert stack.cli_json("routes", "show", route_id, "--json")["status"] == "ENABLED"
    time.sleep(0)  # (no further assertions: the stack is shared by the module)
