"""Route names are unique per customer (issue 9 case 5): a conditional claim in the routes'
own table, written before the RouteCreated event. Proven with real races on moto server: two
"Lambda instances" (two applications, two threads) create the same name at the same instant."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from ferry.endpoint_directory import DynamoEndpointDirectory
from services.routes.adapters import (
    DynamoRouteIndex,
    JobsApplicationSubmitter,
)
from services.routes.application import RouteNameTaken, RoutesApplication
from tests.integration.routes_harness import RoutesStack
from tests.support.moto_server import unique_name

RACES = 8


@pytest.fixture
def stack(aws_env: dict[str, str]) -> RoutesStack:
    return RoutesStack()


def _definition(stack: RoutesStack, name: str, source: str, target: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"endpoint_id": source, "path": "in"},
        "targets": [{"endpoint_id": target}],
        "trigger": {"type": "schedule", "every": "5m"},
    }


def _instance(stack: RoutesStack) -> RoutesApplication:
    return RoutesApplication(
        endpoints=DynamoEndpointDirectory(stack.names.endpoints_table),
        jobs=JobsApplicationSubmitter(stack.jobs),
        staging_bucket=stack.names.staging_bucket,
        index=DynamoRouteIndex(stack.names.route_scan_table),
        env=stack.env,
    )


def test_two_creates_of_one_name_at_the_same_instant_make_one_route(stack: RoutesStack) -> None:
    source = stack.put_endpoint("s3", bucket=unique_name("in"), prefix="")
    target = stack.put_endpoint("s3", bucket=unique_name("out"), prefix="")
    apps = [_instance(stack), _instance(stack)]
    for race in range(RACES):
        name = f"nightly-{race}"
        barrier = threading.Barrier(2)
        results: list[str] = []
        lock = threading.Lock()

        def create(
            app: RoutesApplication,
            name: str = name,
            barrier: Any = barrier,
            results: list[str] = results,
            lock: Any = lock,
        ) -> None:
            barrier.wait()
            try:
                route = app.create(stack.customer, "key", _definition(stack, name, source, target))
                outcome = f"created {route.route_id}"
            except RouteNameTaken as taken:
                outcome = f"409 {taken.field}"
            with lock:
                results.append(outcome)

        threads = [threading.Thread(target=create, args=(app,)) for app in apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(r.split()[0] for r in results) == ["409", "created"], results
        assert "409 name" in results
    # another customer may use the same name
    other = RoutesStack.__new__(RoutesStack)
    other.__dict__.update(stack.__dict__)
    other.customer = unique_name("cust")
    theirs_source = other.put_endpoint("s3", bucket=unique_name("in"), prefix="")
    theirs_target = other.put_endpoint("s3", bucket=unique_name("out"), prefix="")
    apps[0].create(
        other.customer, "key", _definition(other, "nightly-0", theirs_source, theirs_target)
    )


def test_rename_to_a_taken_name_is_refused_and_a_rename_frees_the_old_name(
    stack: RoutesStack,
) -> None:
    source = stack.put_endpoint("s3", bucket=unique_name("in"), prefix="")
    target = stack.put_endpoint("s3", bucket=unique_name("out"), prefix="")
    app = stack.app
    a = app.create(stack.customer, "key", _definition(stack, "alpha", source, target))
    b = app.create(stack.customer, "key", _definition(stack, "beta", source, target))

    with pytest.raises(RouteNameTaken):
        app.update(stack.customer, "key", b.route_id, {"name": "alpha"})
    assert app.get_route(stack.customer, b.route_id).definition["name"] == "beta"

    app.update(stack.customer, "key", a.route_id, {"name": "gamma"})
    app.update(stack.customer, "key", b.route_id, {"name": "alpha"})  # alpha is free now
    with pytest.raises(RouteNameTaken):
        app.create(stack.customer, "key", _definition(stack, "gamma", source, target))
    app.create(stack.customer, "key", _definition(stack, "beta", source, target))  # freed too
