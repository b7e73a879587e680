"""Events stored by earlier code still load: every aggregate and the publisher read them.

``tests/fixtures/stored_events_v1.json`` holds stored events (topic + state, as the event
store keeps them) of every event class of every aggregate — Endpoint, EndpointName, Job,
Transfer, Route, RouteFile — written by main before events were declared once (issue 13). It
was made by running the aggregates' commands against eventsourcing's in-memory persistence
with the applications' transcoder (the same as ``events/dynamodb.py``'s): ``python -m
tests.unit.test_stored_event_compat`` regenerates it, and must only ever be run to add a *new*
version's file, never to rewrite this one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic

from events.aggregate import FerryApplication
from events.contract import EndpointConfig, FerryEvent
from events.translate import to_integration

FIXTURE = Path(__file__).parent.parent / "fixtures" / "stored_events_v1.json"
POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}

SPEC = {
    "flow": "S3_TO_SFTP",
    "source": {"endpoint_id": "ep-src", "path": "in/a.csv"},
    "target": {"endpoint_id": "ep-dst", "path": "out/a.csv"},
    "options": {"overwrite": False, "post_action": "none", "max_attempts": 2, "verify": "digest"},
}


def _generate() -> list[dict[str, Any]]:  # pragma: no cover - run by hand to make a fixture
    from services.endpoints.domain import Endpoint, EndpointName
    from services.executor.domain import EndpointCheck, Transfer
    from services.jobs.domain import Job
    from services.routes.domain import Route, RouteFile

    app = FerryApplication(env=POPO)
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    lease = timedelta(minutes=5)
    aggregates: list[Any] = []

    def uid(n: int) -> UUID:
        return UUID(int=0x1E55_0000_0000_0000_0000_0000_0000_0000 + n)

    # Endpoint: every event; EndpointName: every claim event.
    ep = Endpoint.register(
        endpoint_id=uid(1),
        customer_id="acme",
        name="inbox",
        direction="INBOUND",
        max_concurrency=4,
        config=EndpointConfig.model_validate(
            {"type": "s3", "bucket": "acme-in", "prefix": "in/", "region": "us-east-1"}
        ),
        secret_arn=None,
        actor="key-1",
    )
    ep.record_validation(checked_version=1, ok=True, checks=["list"], host_key_fingerprint=None)
    ep.update({"prefix": "drop/"}, actor="key-1")
    ep.record_validation(checked_version=3, ok=False, reason_code="NoSuchBucket", message="gone")
    ep.disable(actor="key-1", reason="maintenance")
    ep.enable(actor="key-1")  # EndpointEnabled + EndpointValidationRequested
    ep.retire(actor="key-1")
    claim = EndpointName.first_claim(customer_id="acme", name="inbox", endpoint_id=str(ep.id))
    claim.release(str(ep.id))
    claim.claim(str(uid(2)), "inbox")
    aggregates += [ep, claim]

    # Jobs: succeeded (too late to cancel); retried, failed and redriven; cancelled at once.
    done = Job.request(
        job_id=uid(10),
        customer_id="acme",
        spec=SPEC,
        idempotency_key="k-10",
        request_hash="h" * 64,
        actor="key-1",
        route_id=str(uid(40)),
    )
    done.start(1, "exec-1")
    done.request_cancel("key-1", "oops")
    done.verify(10, "a" * 64, 0.5, 20.0)
    done.succeed()
    failed = Job.request(
        job_id=uid(11),
        customer_id="acme",
        spec=SPEC,
        idempotency_key="k-11",
        request_hash="h" * 64,
        actor="key-1",
    )
    failed.start(1, "exec-1")
    failed.attempt_failed(1, "TIMEOUT", "timed out", True, now + timedelta(seconds=3))
    failed.start(2, "exec-2")
    failed.attempt_failed(2, "TIMEOUT", "timed out", True, now + timedelta(seconds=9))
    failed.mark_redriven(str(uid(13)), "key-1")
    cancelled = Job.request(
        job_id=uid(12),
        customer_id="acme",
        spec=SPEC,
        idempotency_key="k-12",
        request_hash="h" * 64,
        actor="key-1",
        redrive_of=str(uid(11)),
    )
    cancelled.request_cancel("key-1", None)
    cancelled.cancel_now()
    aggregates += [done, failed, cancelled]

    # Transfer: both LeaseAcquired classes and every other executor event.
    tr = Transfer.open(
        job_id=str(uid(10)),
        customer_id="acme",
        owner_id="exec-1",
        region="us-east-1",
        attempt=1,
        lease_for=lease,
        now=now,
    )
    tr.renew(owner_id="exec-1", lease_for=lease, now=now)
    tr.start_leg(flow="S3_TO_SFTP", leg=1, legs=1, size=10, chunk_size=8, temp_path=".a.part")
    tr.commit_chunk(leg=1, offset=0, length=8, sha256="b" * 64)
    tr.fail_attempt(code="TIMEOUT", message="timed out", transient=True)
    tr.release(owner_id="exec-1", outcome="retry")
    tr.acquire(owner_id="exec-2", region="us-east-1", attempt=2, lease_for=lease, now=now)
    tr.commit_chunk(leg=1, offset=8, length=2, sha256="c" * 64)
    tr.verify(size=10, sha256="a" * 64, verify="digest", target_checksum=None, duration_seconds=1)
    tr.post_action(action="move", moved_to="archive/a.csv")
    tr.release(owner_id="exec-2", outcome="succeeded")
    aggregates.append(tr)

    # Route and RouteFile.
    route = Route.create(uid(40), "acme", {"name": "r", "enabled": True}, "key-1")
    route.update({"name": "r2"}, "key-1")
    route.disable("key-1")
    route.enable("key-1")
    route.scan_failed("NoSuchBucket")
    route.scan_succeeded()
    rf = RouteFile.discover(
        customer_id="acme",
        route_id=str(uid(40)),
        path="in/a.csv",
        size=10,
        modified_at=now,
        file_version="10:1",
        first_seen_at=now,
    )
    rf.skip("unstable", size=10, modified_at=now, file_version="10:1", detail=None)
    rf.dispatch(
        size=10,
        modified_at=now,
        file_version="10:1",
        job_ids=[str(uid(10))],
        target_paths=["out/a.csv"],
    )
    rf.delivery_failed("10:1", [str(uid(10))], "TIMEOUT", "timed out")
    rf.retried("10:1", {str(uid(10)): str(uid(14))}, "key-1")
    rf.delivered("10:1")
    rf.post_action_completed("10:1", "delete", None)
    aggregates += [route, rf]

    # EndpointCheck: the validator's verdict on the endpoint's first configuration.
    aggregates.append(
        EndpointCheck.complete(
            customer_id="acme",
            endpoint_id=str(uid(1)),
            checked_version=1,
            ok=True,
            checks=["head_bucket", "list_prefix"],
        )
    )
    app.save(*aggregates)
    out = []
    for agg in aggregates:
        for stored in app.recorder.select_events(agg.id):
            out.append(
                {
                    "originator_id": str(stored.originator_id),
                    "originator_version": stored.originator_version,
                    "topic": stored.topic,
                    "state": stored.state.decode("utf-8"),
                }
            )
    return out


def _load() -> list[StoredEvent]:
    return [
        StoredEvent(
            originator_id=UUID(item["originator_id"]),
            originator_version=item["originator_version"],
            topic=item["topic"],
            state=item["state"].encode("utf-8"),
        )
        for item in json.loads(FIXTURE.read_text())
    ]


STORED = _load() if FIXTURE.exists() else []

# Stored events of streams that are internal (never published): the endpoint-name claims.
INTERNAL_TOPICS = frozenset(
    {
        "services.endpoints.domain:EndpointName.Claimed",
        "services.endpoints.domain:EndpointName.Reclaimed",
        "services.endpoints.domain:EndpointName.Released",
        # issue 12: a delivery window's bookkeeping (RouteFileLate / RouteFileArrived publish)
        "services.routes.sla:DeliveryWindow.WindowOpened",
        "services.routes.sla:DeliveryWindow.FileCounted",
    }
)


def test_the_fixture_covers_every_aggregate() -> None:
    aggregates = {s.topic.split(":")[1].split(".")[0] for s in STORED}
    assert aggregates == {
        "Endpoint", "EndpointName", "Job", "Transfer", "Route", "RouteFile", "DeliveryWindow",
        "EndpointCheck",
    }  # fmt: skip
    assert len({s.topic for s in STORED}) == 50


@pytest.mark.parametrize("stored", STORED, ids=lambda s: f"{s.topic}@{s.originator_version}")
def test_every_stored_event_loads_through_the_mapper(stored: StoredEvent) -> None:
    app = FerryApplication(env=POPO)
    domain_event = app.mapper.to_domain_event(stored)
    assert domain_event.originator_version == stored.originator_version
    assert type(domain_event) is resolve_topic(stored.topic)


@pytest.mark.parametrize("stored", STORED, ids=lambda s: f"{s.topic}@{s.originator_version}")
def test_every_stored_event_translates_to_its_contract_model(stored: StoredEvent) -> None:
    published = to_integration(stored)
    if stored.topic in INTERNAL_TOPICS:
        assert published is None
        return
    assert isinstance(published, FerryEvent)
    assert published.detail_type() == stored.topic.rsplit(".", 1)[-1]
    assert published.stream_id == str(stored.originator_id)
    assert published.version == stored.originator_version
    assert published.customer_id == "acme"


def _get(app: FerryApplication, stream_id: Any) -> Any:
    return app.repository.get(stream_id)


def test_every_stored_stream_replays_into_its_aggregate() -> None:
    app = FerryApplication(env=POPO)
    app.recorder.insert_events(STORED)
    streams: dict[Any, int] = {}
    for stored in STORED:
        streams[stored.originator_id] = stored.originator_version
    for stream_id, version in streams.items():
        aggregate = _get(app, stream_id)
        assert aggregate.version == version
        assert aggregate.customer_id == "acme"


def test_replayed_state_is_what_the_commands_left() -> None:
    app = FerryApplication(env=POPO)
    app.recorder.insert_events(STORED)
    by_type = {s.topic.split(":")[1].split(".")[0]: s.originator_id for s in STORED}
    job_ids = {s.originator_id for s in STORED if s.topic.startswith("services.jobs.")}
    jobs = sorted((_get(app, i) for i in job_ids), key=lambda j: str(j.id))
    assert [j.status.value for j in jobs] == ["SUCCEEDED", "FAILED", "CANCELLED"]
    assert jobs[0].cancel_outcome == "too_late"
    assert jobs[1].redriven_to is not None
    endpoint = _get(app, by_type["Endpoint"])
    assert endpoint.status.value == "RETIRED"
    assert endpoint.config["prefix"] == "drop/"
    transfer = _get(app, by_type["Transfer"])
    assert transfer.finished and transfer.legs[1].next_offset == 10
    route = _get(app, by_type["Route"])
    assert route.enabled and route.scan_error is None
    assert route.definition["name"] == "r2"
    ledger = _get(app, by_type["RouteFile"])
    assert ledger.outcome("10:1") == "post_action_completed"


if __name__ == "__main__":  # pragma: no cover
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(_generate(), indent=1) + "\n")
