"""Contract test between producers and the projections: the real Endpoint aggregate's events,
through the real translation, fold to the status the aggregate itself reports."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from eventsourcing.popo import POPOAggregateRecorder

from events import contract as c
from events.aggregate import transfer_stream_id
from events.contract import Direction, EndpointConfig, EndpointStatus, EndpointType, FerryEvent
from events.translate import event_id_for, stream_events
from services.endpoints.application import Credentials, EndpointsApplication, Registration
from services.jobs.application import TransferRequest
from services.jobs.bootstrap import bootstrap
from services.jobs.ports import EndpointInfo
from services.jobs.process_manager import make_handler
from services.projections.application import Projector
from services.projections.readmodels import ENDPOINTS, JOBS
from services.projections.samples import to_stored
from tests.support.fakes.endpoints import InMemorySecretStore
from tests.support.fakes.jobs import InMemoryEndpointDirectory, InMemoryIdempotencyStore
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.fakes.projections import InMemoryReadModelStore

SECRET = "hunter2-very-secret"


def test_endpoint_read_model_mirrors_the_aggregate_through_its_whole_lifecycle() -> None:
    app = EndpointsApplication(
        secrets=InMemorySecretStore(),
        secret_name=lambda cust, ep: f"ferry/endpoints/{cust}/{ep}",
        env={},
    )
    store = InMemoryReadModelStore()
    projector = Projector(store, app.aggregate_recorder)
    endpoint = app.register(
        customer_id="acme",
        actor="key-1",
        registration=Registration(
            name="partner",
            direction="OUTBOUND",
            max_concurrency=2,
            config=EndpointConfig(
                type="sftp",
                host="sftp.example",
                port=22,
                username="ferry",
                base_path="/in",
                host_key="SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
            ),
            credentials=Credentials(username="ferry", password=SECRET),
        ),
    )
    endpoint_id = str(endpoint.id)
    seen = 0

    def check() -> None:
        nonlocal seen
        events = stream_events(app.aggregate_recorder, endpoint_id)
        for event in events[seen:]:
            projector.handle(event)
        seen = len(events)
        aggregate = app.get(endpoint_id)
        item = store.get(ENDPOINTS, endpoint_id)
        assert item is not None
        assert item["status"] == aggregate.status.value
        assert item["version"] == aggregate.version
        assert item["config"] == {
            k: v for k, v in aggregate.config.items() if k != "type" and v is not None
        }
        assert SECRET not in json.dumps(item)

    check()
    app.record_validation(endpoint_id, app.get(endpoint_id).version, ok=True, checks=["auth"])
    check()
    app.update(customer_id="acme", endpoint_id=endpoint_id, actor="key-1", changes={"port": 2222})
    check()
    app.disable(customer_id="acme", endpoint_id=endpoint_id, actor="key-1")
    check()
    app.record_validation(
        endpoint_id,
        app.get(endpoint_id).version,
        ok=False,
        reason_code="auth_failed",
        message="authentication failed",
    )
    check()
    app.enable(customer_id="acme", endpoint_id=endpoint_id, actor="key-1")
    check()
    # enabling an endpoint whose validation failed asks for validation again (issue 9)
    assert store.get(ENDPOINTS, endpoint_id)["status"] == "PENDING_VALIDATION"  # type: ignore[index]


# --------------------------------------------------------------------------- the job stream


def test_job_read_model_mirrors_the_job_aggregate_driven_by_the_process_manager() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    clock = [now]
    app = bootstrap(
        endpoints=InMemoryEndpointDirectory(
            [
                EndpointInfo(
                    endpoint_id="src",
                    customer_id="acme",
                    type=EndpointType.S3,
                    direction=Direction.BOTH,
                    status=EndpointStatus.ACTIVE,
                ),
                EndpointInfo(
                    endpoint_id="tgt",
                    customer_id="acme",
                    type=EndpointType.SFTP,
                    direction=Direction.BOTH,
                    status=EndpointStatus.ACTIVE,
                ),
            ]
        ),
        idempotency=InMemoryIdempotencyStore(),
        keys=InMemoryKeyStore(),
        clock=lambda: clock[0],
        rand=lambda: 0.5,
    ).app
    pm = make_handler(lambda: app)
    request = TransferRequest.model_validate(
        {
            "source": {"endpoint_id": "src", "path": "in/a.bin"},
            "target": {"endpoint_id": "tgt", "path": "out/a.bin"},
            "options": {"max_attempts": 3},
        }
    )
    job_id = app.submit("acme", "key-1", request).job_id
    stream = transfer_stream_id(job_id)
    transfer: list[FerryEvent] = []

    def emit(model: type[FerryEvent], **fields: Any) -> None:
        clock[0] += timedelta(seconds=1)
        version = len(transfer) + 1
        event = model.model_validate(
            {
                "event_id": event_id_for(stream, version),
                "stream_id": str(stream),
                "version": version,
                "occurred_at": clock[0],
                "customer_id": "acme",
                "correlation_id": job_id,
                "job_id": job_id,
                **fields,
            }
        )
        transfer.append(event)
        body = json.dumps(
            {
                "source": event.SOURCE,
                "detail-type": event.detail_type(),
                "detail": event.model_dump(mode="json"),
            }
        )
        record = {
            "messageId": str(uuid4()),
            "receiptHandle": "r",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:0:q",
            "awsRegion": "us-east-1",
        }
        assert pm({"Records": [record]}, None) == {"batchItemFailures": []}

    expires = (now + timedelta(hours=1)).isoformat()
    emit(c.LeaseAcquired, owner_id="e1", region="us-east-1", expires_at=expires, attempt=1)
    emit(c.TransferStarted, flow="S3_TO_SFTP", size=300, chunk_size=100, chunk_count=3)
    emit(c.ChunkCommitted, index=0, offset=0, length=100, sha256="0" * 64,
         bytes_committed=100, bytes_total=300)  # fmt: skip
    emit(c.TransferAttemptFailed, attempt=1, error_code="connection_reset",
         error_message="reset", transient=True, bytes_committed=100)  # fmt: skip
    emit(c.LeaseReleased, owner_id="e1", outcome="retry")
    emit(c.LeaseAcquired, owner_id="e2", region="us-east-1", expires_at=expires, attempt=2)
    emit(c.TransferStarted, flow="S3_TO_SFTP", size=300, chunk_size=100, chunk_count=3)
    for i in (1, 2):
        emit(c.ChunkCommitted, index=i, offset=i * 100, length=100, sha256="0" * 64,
             bytes_committed=(i + 1) * 100, bytes_total=300)  # fmt: skip
    emit(c.TransferVerified, size=300, sha256="a" * 64, verify="digest",
         duration_seconds=1.5, throughput_bytes_per_second=200.0)  # fmt: skip
    emit(c.PostActionCompleted, action="none")
    emit(c.LeaseReleased, owner_id="e2", outcome="succeeded")

    job_events = stream_events(app.aggregate_recorder, job_id)
    types = [e.detail_type() for e in job_events]
    assert types[0] == "JobRequested" and types[-1] == "JobSucceeded"
    recorder = POPOAggregateRecorder()
    recorder.insert_events([to_stored(e) for e in job_events + transfer])

    items = []
    for seed in range(3):
        deliveries = job_events + transfer + job_events[1:3]
        random.Random(seed).shuffle(deliveries)
        store = InMemoryReadModelStore()
        projector = Projector(store, recorder)
        for event in deliveries:
            projector.handle(event)
        items.append(store.get(JOBS, job_id))
    assert items[0] == items[1] == items[2]
    item = items[0]
    assert item is not None
    job = app.get_job("acme", job_id)
    assert item["status"] == job.status.value == "SUCCEEDED"
    assert item["attempt"] == job.attempt
    assert item["job_version"] == job.version and item["transfer_version"] == len(transfer)
    assert item["bytes_committed"] == item["bytes_total"] == 300
    assert item["chunks_committed"] == 3 and item["sha256"] == "a" * 64
    assert item["error_code"] == job.error_code
