"""The queued-jobs limit of POST /transfers (fair sharing, issue 15) through the real resolver,
in-memory adapters; the jobs read model's count is a fake of the QueuedJobs port that the test
keeps as the projection would (a job waits from its 202 until it starts)."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest

from events.contract import Direction, EndpointStatus, EndpointType
from ferry.api import issue_key
from ferry.apigw import rest_event
from services.jobs.application import TransferRequest
from services.jobs.bootstrap import bootstrap
from services.jobs.handlers import build_resolver
from services.jobs.ports import EndpointInfo, QueuedJobs
from services.jobs.settings import JobsSettings
from tests.support.fakes.jobs import InMemoryEndpointDirectory, InMemoryIdempotencyStore
from tests.support.fakes.keys import InMemoryKeyStore


class WaitingJobs(QueuedJobs):
    def __init__(self) -> None:
        self.waiting: dict[str, set[str]] = {}
        self.asked: list[tuple[str, int]] = []

    def count(self, customer_id: str, at_most: int) -> int:
        self.asked.append((customer_id, at_most))
        return min(len(self.waiting.get(customer_id, set())), at_most)


class World:
    def __init__(self) -> None:
        keys = InMemoryKeyStore()
        self.keys = {c: issue_key(keys, c)[0] for c in ("cust-a", "cust-b")}
        self.endpoints = {
            c: [
                EndpointInfo(
                    endpoint_id=str(uuid4()),
                    customer_id=c,
                    type=EndpointType.S3,
                    direction=Direction.BOTH,
                    status=EndpointStatus.ACTIVE,
                )
                for _ in range(2)
            ]
            for c in ("cust-a", "cust-b")
        }
        self.queued = WaitingJobs()
        self.service = bootstrap(
            settings=JobsSettings(
                jobs_queued_limit_overrides='{"cust-a": 3}', jobs_queued_retry_after_seconds=20
            ),
            endpoints=InMemoryEndpointDirectory([e for es in self.endpoints.values() for e in es]),
            idempotency=InMemoryIdempotencyStore(),
            keys=keys,
            queued=self.queued,
        )
        self.resolver = build_resolver(self.service)

    def body(self, customer: str, name: str) -> dict[str, Any]:
        src, dst = self.endpoints[customer]
        return {
            "source": {"endpoint_id": src.endpoint_id, "path": f"in/{name}"},
            "target": {"endpoint_id": dst.endpoint_id, "path": f"out/{name}"},
        }

    def submit(
        self, customer: str, name: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        event = rest_event(
            "POST",
            "/transfers",
            body=json.dumps(self.body(customer, name)),
            headers={"x-api-key": self.keys[customer], **(headers or {})},
        )
        response = self.resolver.resolve(event, None)
        answer = json.loads(response["body"])
        if response["statusCode"] == 202 and not answer["deduplicated"]:
            self.queued.waiting.setdefault(customer, set()).add(answer["job_id"])
        headers = {k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
        return response["statusCode"], answer, {**headers, **(response.get("headers") or {})}


@pytest.fixture
def world() -> World:
    return World()


def test_beyond_its_queued_limit_a_customer_gets_429_with_retry_after_naming_the_limit(
    world: World,
) -> None:
    # Given A (limit 3) has 3 jobs waiting
    assert [world.submit("cust-a", f"f{i}")[0] for i in range(3)] == [202, 202, 202]
    # When it submits a fourth
    status, answer, headers = world.submit("cust-a", "f3")
    # Then 429, Retry-After, the limit named; nothing was queued
    assert status == 429
    assert headers["Retry-After"] == "20"
    assert answer["error"]["code"] == "queued_limit_reached"
    assert "queued_limit 3" in answer["error"]["message"]
    assert len(world.queued.waiting["cust-a"]) == 3
    # and B (the default limit, 1000) is not affected
    assert world.submit("cust-b", "f0")[0] == 202
    assert ("cust-b", 1000) in world.queued.asked


def test_once_a_job_starts_the_refused_request_is_accepted_and_queues_its_job(
    world: World,
) -> None:
    for i in range(3):
        world.submit("cust-a", f"f{i}")
    assert world.submit("cust-a", "f3")[0] == 429
    world.queued.waiting["cust-a"].pop()  # one job started running
    status, answer, _ = world.submit("cust-a", "f3")  # the same request again (dedupe on)
    assert status == 202 and answer["deduplicated"] is False
    job = world.service.app.get_job("cust-a", answer["job_id"])
    assert job.status.value == "QUEUED"


def test_a_repeated_accepted_request_is_answered_at_the_limit_and_routes_are_never_refused(
    world: World,
) -> None:
    key = {"Idempotency-Key": "k-1"}
    first = world.submit("cust-a", "f0", key)
    world.submit("cust-a", "f1")
    world.submit("cust-a", "f2")
    # the replay of an accepted request creates nothing: no limit applies
    status, answer, _ = world.submit("cust-a", "f0", key)
    assert status == 202 and answer["job_id"] == first[1]["job_id"] and answer["deduplicated"]
    # a route's file becomes a job even at the limit (it waits in the executor's fair share)
    request = TransferRequest.model_validate({**world.body("cust-a", "routed"), "dedupe": False})
    made = world.service.app.submit("cust-a", "route", request, route_id=str(uuid4()))
    assert made.created
