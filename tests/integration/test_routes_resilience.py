"""Issue 9, case 3, as found: one badly named file silently stopped a pull route. Against moto
server (S3 source, DynamoDB event store, the real jobs application): a bad file becomes
FileSkipped with a reason and the route goes on; a route whose listing itself fails is FAILING
with the reason (RouteScanFailed) and back to ENABLED (RouteScanRecovered) when a later listing
succeeds."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from services.routes.scanner import build_scanner
from tests.integration.routes_harness import RoutesStack
from tests.support.moto_server import unique_name


@pytest.fixture
def s3_pull(aws_env: dict[str, str]) -> dict[str, Any]:
    stack = RoutesStack()
    s3 = boto3.client("s3")
    inbox, lake = stack.buckets("inbox", "lake")
    source = stack.put_endpoint("s3", bucket=inbox, prefix="")
    target = stack.put_endpoint("s3", bucket=lake, prefix="")
    return {"stack": stack, "s3": s3, "inbox": inbox, "source": source, "target": target}


def _pull_route(stack: RoutesStack, source: str, target: str, **extra: Any) -> str:
    return stack.create_route(
        {
            "name": unique_name("pull"),
            "source": {"endpoint_id": source, "path": "in", "recursive": True},
            "targets": [{"endpoint_id": target, "path_template": "got/{filename}"}],
            "trigger": {"type": "schedule", "every": "1m"},
            "stable": {"checks": 1},
            **extra,
        }
    )


def test_a_badly_named_file_is_skipped_with_a_reason_and_the_good_one_is_sent(
    s3_pull: dict[str, Any],
) -> None:
    stack: RoutesStack = s3_pull["stack"]
    s3 = s3_pull["s3"]
    s3.put_object(Bucket=s3_pull["inbox"], Key="in/a//bad.dat", Body=b"bad")
    s3.put_object(Bucket=s3_pull["inbox"], Key="in/b-good.dat", Body=b"good")
    route_id = _pull_route(stack, s3_pull["source"], s3_pull["target"])
    scanner = build_scanner(settings=stack.settings, app=stack.app)

    now = time.time()
    first = scanner.tick(now + 60)
    second = scanner.tick(now + 120)  # the bad file is decided once, not retried every tick

    assert first.routes_scanned == 1 and first.dispatched == 1
    assert second.dispatched == 0
    assert stack.job_requested_count() == 1
    good = stack.app.ledger(route_id, "in/b-good.dat")
    assert good is not None and len(good.dispatched) == 1
    stack.project_file(route_id, "in/a//bad.dat")
    [bad] = stack.read_model.files(route_id, "bad.dat", 10)
    assert bad["status"] == "skipped" and bad["reason"] == "invalid_path"
    assert "empty segments" in bad["detail"]
    skips = [
        e for e in stack.app.file_events(route_id, "in/a//bad.dat") if getattr(e, "reason", None)
    ]
    assert len(skips) == 1
    route = stack.app.get_route(stack.customer, route_id)
    assert route.scan_error is None  # files are skipped; the route itself is fine


def test_a_route_whose_listing_fails_is_failing_with_the_reason_until_a_listing_succeeds(
    s3_pull: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the bucket grant (tenancy) is a tag the scanner caches briefly: not at all in this test
    monkeypatch.setenv("FERRY_BUCKET_TAG_CACHE_SECONDS", "0")
    stack: RoutesStack = s3_pull["stack"]
    missing = unique_name("gone")
    source = stack.put_endpoint("s3", bucket=missing, prefix="")
    route_id = _pull_route(stack, source, s3_pull["target"])
    scanner = build_scanner(settings=stack.settings, app=stack.app)
    now = time.time()

    scanner.tick(now + 60)
    scanner.tick(now + 120)  # still failing: recorded once

    types = [e.detail_type() for e in stack.app.route_events(stack.customer, route_id)]
    assert types == ["RouteCreated", "RouteScanFailed"]
    route = stack.app.get_route(stack.customer, route_id)
    assert route.scan_error is not None and "ACCESS_DENIED" in route.scan_error
    assert "Traceback" not in route.scan_error

    s3_pull["s3"].create_bucket(Bucket=missing)
    stack.grant_bucket(missing)
    s3_pull["s3"].put_object(Bucket=missing, Key="in/x.dat", Body=b"x")
    report = scanner.tick(now + 180)

    assert report.dispatched == 1
    types = [e.detail_type() for e in stack.app.route_events(stack.customer, route_id)]
    assert types == ["RouteCreated", "RouteScanFailed", "RouteScanRecovered"]
    assert stack.app.get_route(stack.customer, route_id).scan_error is None


def test_a_file_whose_target_path_would_be_too_long_is_skipped_and_the_rest_is_sent(
    s3_pull: dict[str, Any],
) -> None:
    stack: RoutesStack = s3_pull["stack"]
    s3 = s3_pull["s3"]
    long_name = "n" * 1000 + ".dat"  # a valid S3 key; the rendered target path is > 1024
    s3.put_object(Bucket=s3_pull["inbox"], Key=f"in/{long_name}", Body=b"long")
    s3.put_object(Bucket=s3_pull["inbox"], Key="in/short.dat", Body=b"short")
    route_id = stack.create_route(
        {
            "name": unique_name("deep"),
            "source": {"endpoint_id": s3_pull["source"], "path": "in"},
            "targets": [
                {"endpoint_id": s3_pull["target"], "path_template": "x" * 60 + "/{filename}"}
            ],
            "trigger": {"type": "schedule", "every": "1m"},
            "stable": {"checks": 1},
        }
    )
    scanner = build_scanner(settings=stack.settings, app=stack.app)

    report = scanner.tick(time.time() + 60)

    assert report.dispatched == 1 and report.skipped == {"invalid_path": 1}
    stack.project_file(route_id, f"in/{long_name}")
    [item] = stack.read_model.files(route_id, long_name, 10)
    assert item["reason"] == "invalid_path" and "target.path" in item["detail"]
    assert len(item["detail"]) < 600  # the field and the rule, not the 1,000-character input
