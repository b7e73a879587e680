"""No command of services/jobs or services/endpoints appends to two streams in one call.

The DynamoDB event store on MRSC global tables has no TransactWriteItems: one
``insert_events`` call appends one stream, and an ``Application.save(a, b)`` over two
aggregates raises ``ProgrammingError`` there (eventsourcing's POPO store accepts it). Every
flow below runs on the single-stream recorder (tests/support/single_stream.py), which refuses
such an append the same way, so any cross-aggregate save left in these services fails here."""

from __future__ import annotations

from dataclasses import replace
from uuid import uuid4

import pytest
from eventsourcing.persistence import ProgrammingError

from events.contract import Direction, EndpointConfig, EndpointStatus, EndpointType, JobStatus
from ferry.endpoint_directory import EndpointInfo
from services.endpoints.application import Credentials, EndpointsApplication, Registration
from services.jobs.application import JobsApplication, TransferRequest
from services.jobs.domain import Job
from tests.support.fakes.endpoints import InMemoryEndpointDirectory, InMemorySecretStore
from tests.support.fakes.jobs import InMemoryIdempotencyStore
from tests.support.single_stream import SINGLE_STREAM, SingleStreamRecorder

CUSTOMER = "cust-a"
SOURCE = EndpointInfo(
    endpoint_id=str(uuid4()),
    customer_id=CUSTOMER,
    type=EndpointType.S3,
    status=EndpointStatus.ACTIVE,
    direction=Direction.BOTH,
)
TARGET = replace(SOURCE, endpoint_id=str(uuid4()), type=EndpointType.SFTP)


def test_the_guard_refuses_a_save_over_two_aggregates() -> None:
    app = JobsApplication(
        endpoints=InMemoryEndpointDirectory(),
        idempotency=InMemoryIdempotencyStore(),
        env=SINGLE_STREAM,
    )
    assert isinstance(app.recorder, SingleStreamRecorder)
    jobs = [
        Job.request(
            job_id=uuid4(),
            customer_id=CUSTOMER,
            spec={},
            idempotency_key=f"k{n}",
            request_hash="h",
            actor="a",
        )
        for n in range(2)
    ]
    with pytest.raises(ProgrammingError):
        app.save(*jobs)


def _request(path: str) -> TransferRequest:
    return TransferRequest.model_validate(
        {
            "source": {"endpoint_id": SOURCE.endpoint_id, "path": path},
            "target": {"endpoint_id": TARGET.endpoint_id, "path": "out/" + path},
        }
    )


def test_every_jobs_flow_appends_one_stream_at_a_time() -> None:
    app = JobsApplication(
        endpoints=InMemoryEndpointDirectory([SOURCE, TARGET]),
        idempotency=InMemoryIdempotencyStore(),
        env=SINGLE_STREAM,
    )
    # submit (idempotency key, automatic dedupe, dedupe off), and a repeat
    keyed = app.submit(CUSTOMER, "k", _request("a.csv"), idempotency_key="key-1").job_id
    assert app.submit(CUSTOMER, "k", _request("a.csv"), idempotency_key="key-1").job_id == keyed
    deduped = app.submit(CUSTOMER, "k", _request("b.csv")).job_id
    app.submit(CUSTOMER, "k", _request("c.csv").model_copy(update={"dedupe": False}))
    # the process manager's commands: start, retry, fail
    app.job_started(CUSTOMER, keyed, 1, "exec-a")
    app.job_attempt_failed(CUSTOMER, keyed, 1, "E", "transient", True)
    app.job_started(CUSTOMER, keyed, 2, "exec-a")
    app.job_attempt_failed(CUSTOMER, keyed, 2, "E", "permanent", False)
    assert app.get_job(CUSTOMER, keyed).status == JobStatus.FAILED
    # ... verify and succeed
    app.job_started(CUSTOMER, deduped, 1, "exec-b")
    app.job_verified(CUSTOMER, deduped, 10, "0" * 64, 1.0, 10.0)
    app.job_released(CUSTOMER, deduped, "succeeded")
    assert app.get_job(CUSTOMER, deduped).status == JobStatus.SUCCEEDED
    # cancel, redrive (twice), and the redriven job's start (which checks the original)
    cancelled = app.submit(CUSTOMER, "k", _request("d.csv")).job_id
    app.cancel(CUSTOMER, "k", cancelled)
    for original in (keyed, cancelled):
        redriven = app.redrive(CUSTOMER, "k", original)
        assert app.redrive(CUSTOMER, "k", original) == redriven
        app.job_started(CUSTOMER, redriven.job_id, 1, "exec-c")
        app.job_released(CUSTOMER, redriven.job_id, "cancelled")


def _bucket_registration() -> Registration:
    return Registration(
        name="bucket",
        direction="BOTH",
        max_concurrency=1,
        config=EndpointConfig(type=EndpointType.S3, bucket="customer-bucket"),
    )


def test_every_endpoints_flow_appends_one_stream_at_a_time() -> None:
    secrets = InMemorySecretStore()
    app = EndpointsApplication(
        secrets=secrets, env=SINGLE_STREAM, is_reserved_bucket=lambda b: False
    )
    sftp = app.register(
        customer_id=CUSTOMER,
        actor="k",
        registration=Registration(
            name="partner",
            direction="BOTH",
            max_concurrency=2,
            config=EndpointConfig(
                type=EndpointType.SFTP,
                host="sftp.example.com",
                port=22,
                username="u",
                base_path="/in",
                host_key="SHA256:" + "A" * 43,
            ),
            credentials=Credentials(username="u", password="pw-1"),
        ),
    )
    s3 = app.register(
        customer_id=CUSTOMER,
        actor="k",
        registration=_bucket_registration(),
    )
    app.record_validation(sftp.id, 1, True, ["connect"])
    # rename (with settings and a rotation), rename within the same key, settings only
    app.update(
        customer_id=CUSTOMER,
        endpoint_id=sftp.id,
        actor="k",
        changes={"name": "partner 2", "port": 2222},
        credentials=Credentials(username="u", password="pw-2"),
    )
    app.update(customer_id=CUSTOMER, endpoint_id=sftp.id, actor="k", changes={"name": "PARTNER 2"})
    app.update(customer_id=CUSTOMER, endpoint_id=s3.id, actor="k", changes={"prefix": "p/"})
    app.disable(customer_id=CUSTOMER, endpoint_id=s3.id, actor="k", reason="maintenance")
    app.enable(customer_id=CUSTOMER, endpoint_id=s3.id, actor="k")
    app.request_validation(customer_id=CUSTOMER, endpoint_id=s3.id, actor="k")
    app.record_validation(s3.id, app.get(s3.id).version, False, reason_code="AUTH")
    # retire releases the name, which a new registration then claims
    app.retire(customer_id=CUSTOMER, endpoint_id=s3.id, actor="k")
    again = app.register(
        customer_id=CUSTOMER,
        actor="k",
        registration=_bucket_registration(),
    )
    assert app.get(again.id).name == "bucket"
