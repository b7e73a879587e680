"""Endpoint names are unique per customer, proven with a real race on the DynamoDB event store
(moto server): several application instances (as several API Lambdas would be) register the same
name at the same instant; the name claim is a conditional append of its own stream, made before
the endpoint's EndpointRegistered (one stream per append: MRSC tables have no transactions), so
exactly one registration succeeds and the others get 409 ``name_taken`` — not a read-model
check, which every racer would pass."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from events.contract import EndpointConfig, EndpointType
from events.dynamodb import create_events_table
from services.endpoints.application import EndpointsApplication, Registration
from services.endpoints.domain import EndpointNameTaken
from tests.support.fakes.endpoints import InMemorySecretStore
from tests.support.moto_server import unique_name

pytestmark = pytest.mark.usefixtures("aws_env")

RACERS = 6


def _apps(table: str) -> list[EndpointsApplication]:
    env = {"PERSISTENCE_MODULE": "events.dynamodb", "FERRY_EVENTS_TABLE": table}
    return [
        EndpointsApplication(
            secrets=InMemorySecretStore(), env=env, is_reserved_bucket=lambda b: False
        )
        for _ in range(RACERS)
    ]


def _registration(name: str) -> Registration:
    return Registration(
        name=name,
        direction="BOTH",
        max_concurrency=1,
        config=EndpointConfig(type=EndpointType.S3, bucket="customer-bucket"),
    )


def _race(apps: list[EndpointsApplication], name: str) -> list[Any]:
    """Every app registers ``name`` at the same instant; returns the endpoints / errors."""
    barrier = threading.Barrier(len(apps))
    outcomes: list[Any] = []
    lock = threading.Lock()

    def register(app: EndpointsApplication) -> None:
        barrier.wait()
        try:
            result: Any = app.register(
                customer_id="cust-race", actor="k", registration=_registration(name)
            )
        except EndpointNameTaken as taken:
            result = taken
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=register, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_racing_registrations_with_one_name_give_exactly_one_endpoint() -> None:
    import boto3

    table = unique_name("events")
    create_events_table(boto3.client("dynamodb"), table)
    apps = _apps(table)
    for round_ in range(3):
        name = f"raced-{round_}"
        outcomes = _race(apps, name)
        winners = [o for o in outcomes if not isinstance(o, Exception)]
        losers = [o for o in outcomes if isinstance(o, EndpointNameTaken)]
        assert len(winners) == 1, outcomes
        assert len(losers) == RACERS - 1, outcomes
        # the winner's endpoint holds the name; the losers left nothing behind
        assert apps[0].get(winners[0].id).name == name

    # a retired endpoint frees the name for exactly one new claimant
    first = apps[0].register(
        customer_id="cust-race", actor="k", registration=_registration("again")
    )
    with pytest.raises(EndpointNameTaken):
        apps[1].register(customer_id="cust-race", actor="k", registration=_registration("again"))
    apps[2].retire(customer_id="cust-race", endpoint_id=first.id, actor="k")
    outcomes = _race(apps, "again")
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1, outcomes
