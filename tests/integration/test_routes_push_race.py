"""Issue 9, case 2, as found: files that land right after a push route is created were never
delivered (the push consumer matched S3 events against the routes read model, which lags the
command, and dropped what it could not match). Through moto server: S3 → EventBridge (default
bus) → SQS → the real push consumer, with the routes read model *not yet projected* — the
consumer must route from what the command wrote, and answer for what no route took."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from services.routes.application import InvalidRoute, NotFound
from services.routes.push import build_push_consumer, make_handler
from tests.integration.routes_harness import RoutesStack, drain, s3_events_queue
from tests.support.moto_server import unique_name

RACES = 20


@pytest.fixture
def bucket_stack(aws_env: dict[str, str]) -> dict[str, Any]:
    stack = RoutesStack()
    s3 = boto3.client("s3")
    outbox, archive = stack.buckets("outbox", "archive")
    queue = s3_events_queue(outbox)
    source = stack.put_endpoint("s3", bucket=outbox, prefix="")
    target = stack.put_endpoint("s3", bucket=archive, prefix="")
    handlers = [
        make_handler(build_push_consumer(settings=stack.settings, app=stack.app)) for _ in range(2)
    ]
    return {
        "stack": stack,
        "s3": s3,
        "outbox": outbox,
        "queue": queue,
        "source": source,
        "target": target,
        "handle": handlers,
    }


def _push_route(stack: RoutesStack, source: str, target: str, path: str) -> str:
    """The command only, as POST /routes does it: the read model is not projected yet."""
    route = stack.app.create(
        stack.customer,
        "key-test",
        {
            "name": unique_name("race"),
            "source": {"endpoint_id": source, "path": path},
            "targets": [{"endpoint_id": target, "path_template": f"{path}/{{filename}}"}],
            "trigger": {"type": "event"},
        },
    )
    return route.route_id


def test_objects_uploaded_right_after_the_route_is_created_are_all_dispatched(
    bucket_stack: dict[str, Any],
) -> None:
    stack: RoutesStack = bucket_stack["stack"]
    s3, outbox = bucket_stack["s3"], bucket_stack["outbox"]
    routes = {}
    for i in range(RACES):  # create a route and upload into it in the same second, 20 times
        routes[i] = _push_route(stack, bucket_stack["source"], bucket_stack["target"], f"in{i}")
        s3.put_object(Bucket=outbox, Key=f"in{i}/file-{i}.csv", Body=f"row {i}\n".encode())
    assert stack.read_model.enabled("event") == []  # the read model has not caught up

    assert drain(bucket_stack["queue"], bucket_stack["handle"], expect=RACES) == RACES

    dispatched = 0
    for i, route_id in routes.items():
        ledger = stack.app.ledger(route_id, f"in{i}/file-{i}.csv")
        if ledger is not None and ledger.dispatched:
            dispatched += 1
    assert dispatched == RACES
    assert stack.job_requested_count() == RACES


def test_an_object_no_route_takes_is_recorded_for_the_bucket_owner_only(
    bucket_stack: dict[str, Any],
) -> None:
    stack: RoutesStack = bucket_stack["stack"]
    s3, outbox = bucket_stack["s3"], bucket_stack["outbox"]
    _push_route(stack, bucket_stack["source"], bucket_stack["target"], "routed")
    s3.put_object(Bucket=outbox, Key="elsewhere/lost.csv", Body=b"nobody routes this")

    assert drain(bucket_stack["queue"], bucket_stack["handle"], expect=1) == 1

    [entry] = stack.app.unrouted(stack.customer, bucket_stack["source"])
    assert entry["key"] == "elsewhere/lost.csv" and entry["reason"] == "no_route"
    assert stack.job_requested_count() == 0
    # another customer — even one that registered an endpoint on this bucket, which failed
    # validation — learns nothing about it
    intruder = stack.put_endpoint(
        "s3", bucket=outbox, prefix="", customer="cust-other", status="VALIDATION_FAILED"
    )
    with pytest.raises(InvalidRoute) as refused:
        stack.app.unrouted("cust-other", intruder)
    assert refused.value.code == "endpoint_not_active"
    with pytest.raises(NotFound):
        stack.app.unrouted("cust-other", bucket_stack["source"])  # not theirs: 404


def test_a_route_whose_source_is_not_active_gets_nothing(bucket_stack: dict[str, Any]) -> None:
    """A route made while its endpoint was ACTIVE; then validation (the tenancy check: the
    bucket is not the customer's to use) failed the endpoint. The push consumer delivers only
    from an ACTIVE source of the route's own customer, and records nothing in that route's
    ledger (the object's name is not the route owner's to learn)."""
    stack: RoutesStack = bucket_stack["stack"]
    s3, outbox = bucket_stack["s3"], bucket_stack["outbox"]
    borrowed = stack.put_endpoint("s3", bucket=outbox, prefix="")
    route_id = stack.create_route(  # projected too: the read model lists it
        {
            "name": "borrowed",
            "source": {"endpoint_id": borrowed, "path": "victim"},
            "targets": [{"endpoint_id": bucket_stack["target"]}],
            "trigger": {"type": "event"},
        }
    )
    stack.put_endpoint(
        "s3", bucket=outbox, prefix="", endpoint_id=borrowed, status="VALIDATION_FAILED"
    )
    s3.put_object(Bucket=outbox, Key="victim/secret.csv", Body=b"secret")

    assert drain(bucket_stack["queue"], bucket_stack["handle"], expect=1) == 1

    assert stack.job_requested_count() == 0
    assert stack.app.ledger(route_id, "victim/secret.csv") is None
