"""The validator's verdict as an event: the validator stores ``EndpointCheckCompleted`` and the
endpoints service's consumer applies it (services/endpoints/consumer.py).

Given an endpoint registered on in-memory persistence, when the validator checks it (with fake
S3 clients) and its verdict reaches the consumer's real Lambda handler as an SQS batch, then the
endpoint's stream gets EndpointValidated / EndpointValidationFailed — once, only for the
configuration that was checked, only for the endpoint's own customer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from events.contract import EndpointCheckCompleted, EndpointConfig, EndpointStatus, FerryEvent
from events.translate import stream_events
from services.endpoints.application import EndpointsApplication, Registration
from services.endpoints.consumer import make_handler
from services.executor.endpoint_access import SecretsReader
from services.executor.validator import (
    EndpointChecks,
    EndpointValidator,
    NotProjectedYet,
    ValidatorWorker,
)
from tests.support.fakes.endpoints import InMemorySecretStore
from tests.support.sqs import eventbridge_body, sqs_batch
from tests.support.validation import POPO, ProjectedEndpoints


class _Secrets:
    def get_secret_value(self, SecretId: str) -> dict[str, Any]:  # never asked for S3
        raise AssertionError("no secret for an S3 endpoint")


class _S3:
    def __init__(self, exists: bool = True) -> None:
        self.exists = exists
        self.calls = 0

    def head_bucket(self, Bucket: str) -> dict[str, Any]:
        self.calls += 1
        if not self.exists:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "404"}}, "HeadBucket")
        return {}

    def list_objects_v2(self, **kw: Any) -> dict[str, Any]:
        return {}


def _registered(customer: str = "c") -> tuple[EndpointsApplication, str]:
    app = EndpointsApplication(secrets=InMemorySecretStore(), env=POPO)
    endpoint = app.register(
        customer_id=customer,
        actor="k",
        registration=Registration(
            name="s3",
            direction="BOTH",
            max_concurrency=2,
            config=EndpointConfig(type="s3", bucket="b-1", prefix="p/"),
        ),
    )
    return app, str(endpoint.id)


def _validator(app: EndpointsApplication, s3: _S3, **kw: Any) -> EndpointValidator:
    kw.setdefault("endpoints", ProjectedEndpoints(app))
    return EndpointValidator(
        kw.pop("endpoints"),
        EndpointChecks(env=POPO),
        SecretsReader(_Secrets()),
        s3_client=lambda view: s3,
        **{"projection_wait_seconds": 0.0, **kw},
    )


def _consume(app: EndpointsApplication, *items: FerryEvent | str) -> list[str]:
    """Run the consumer's Lambda handler on one batch; the ids of the failed records."""
    response = make_handler(lambda: app)(sqs_batch(list(items)), None)
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def test_a_verdict_event_validates_the_endpoint_once() -> None:
    app, eid = _registered()
    verdict = _validator(app, _S3()).validate(eid)
    assert isinstance(verdict, EndpointCheckCompleted)
    assert (verdict.ok, verdict.checked_version, verdict.customer_id) == (True, 1, "c")
    assert verdict.correlation_id == eid and verdict.checks == ["head_bucket", "list_prefix"]
    assert app.get(eid).status is EndpointStatus.PENDING_VALIDATION  # nothing applied yet

    assert _consume(app, verdict, verdict) == []  # a duplicate in the same batch: a no-op
    assert _consume(app, verdict) == []  # redelivered later: a no-op
    events = stream_events(app.recorder, eid)
    assert [e.detail_type() for e in events] == ["EndpointRegistered", "EndpointValidated"]
    assert app.get(eid).status is EndpointStatus.ACTIVE


def test_a_failed_verdict_carries_its_reason() -> None:
    app, eid = _registered()
    verdict = _validator(app, _S3(exists=False)).validate(eid)
    assert verdict is not None and verdict.ok is False
    assert _consume(app, verdict) == []
    failed = stream_events(app.recorder, eid)[-1]
    assert failed.detail_type() == "EndpointValidationFailed"
    assert failed.reason_code == "BUCKET_NOT_FOUND"  # type: ignore[attr-defined]


def test_a_verdict_for_a_changed_configuration_is_dropped() -> None:
    app, eid = _registered()
    verdict = _validator(app, _S3()).validate(eid)
    app.update(customer_id="c", endpoint_id=eid, actor="k", changes={"bucket": "b-2"})
    assert verdict is not None and _consume(app, verdict) == []
    assert app.get(eid).status is EndpointStatus.PENDING_VALIDATION
    assert stream_events(app.recorder, eid)[-1].detail_type() == "EndpointUpdated"


def test_a_verdict_naming_another_customers_endpoint_is_dropped() -> None:
    app, eid = _registered(customer="victim")
    verdict = _validator(app, _S3()).validate(eid)
    assert verdict is not None
    forged = verdict.model_copy(update={"customer_id": "mallory"})
    unknown = verdict.model_copy(update={"endpoint_id": "00000000-0000-4000-8000-000000000000"})
    assert _consume(app, forged, unknown) == []  # dropped, not retried for ever
    assert app.get(eid).status is EndpointStatus.PENDING_VALIDATION


def test_other_events_are_ignored_and_a_poison_record_fails_alone() -> None:
    app, eid = _registered()
    registered = stream_events(app.recorder, eid)[0]
    verdict = _validator(app, _S3()).validate(eid)
    assert verdict is not None
    assert _consume(app, registered, "not json", verdict) == ["m1"]
    assert app.get(eid).status is EndpointStatus.ACTIVE


def test_a_configuration_is_checked_once_even_before_its_verdict_is_applied() -> None:
    app, eid = _registered()
    s3 = _S3()
    validator = _validator(app, s3)
    assert validator.validate(eid) is not None
    assert validator.validate(eid) is None  # verdict stored, not yet applied: no second check
    assert s3.calls == 1


def test_two_validators_racing_store_one_verdict() -> None:
    """Two validator processes on one event store check the same configuration at once: the
    verdict stream's first append wins, the other is dropped (never two verdicts)."""
    app, eid = _registered()
    checks = EndpointChecks(env=POPO)
    barrier = threading.Barrier(2)

    class _SlowS3(_S3):
        def head_bucket(self, Bucket: str) -> dict[str, Any]:
            barrier.wait(timeout=5)  # both have passed the "already checked?" look-up
            return super().head_bucket(Bucket)

    results: list[object] = []

    def run() -> None:
        validator = EndpointValidator(
            ProjectedEndpoints(app),
            checks,
            SecretsReader(_Secrets()),
            s3_client=lambda view: _SlowS3(),
            projection_wait_seconds=0.0,
        )
        results.append(validator.validate(eid))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    stored = [r for r in results if r is not None]
    assert len(results) == 2 and len(stored) == 1


class _Lagging:
    """A read model that shows the endpoint only after ``lag`` seconds."""

    def __init__(self, app: EndpointsApplication, lag: float) -> None:
        self.real = ProjectedEndpoints(app)
        self.ready_at = time.monotonic() + lag

    def item(self, endpoint_id: str) -> Mapping[str, Any] | None:
        return self.real.item(endpoint_id) if time.monotonic() >= self.ready_at else None


def test_a_registered_endpoint_is_checked_from_its_event_without_the_read_model() -> None:
    app, eid = _registered()
    registered = stream_events(app.recorder, eid)[0]
    validator = _validator(app, _S3(), endpoints=_Lagging(app, 60), projection_wait_seconds=5)
    started = time.monotonic()
    verdict = validator.handle_message(eventbridge_body(registered))
    assert time.monotonic() - started < 1
    assert verdict is not None and verdict.ok and verdict.checked_version == 1
    assert validator.handle_message(eventbridge_body(registered)) is None  # checked already


def test_the_validator_waits_for_the_read_model_to_catch_up() -> None:
    app, eid = _registered()
    validator = _validator(app, _S3(), endpoints=_Lagging(app, 0.3), projection_wait_seconds=5)
    started = time.monotonic()
    assert validator.validate(eid) is not None
    assert 0.3 <= time.monotonic() - started < 2


class _FakeSqs:
    def __init__(self, bodies: list[str]) -> None:
        self.messages = [{"Body": b, "ReceiptHandle": f"r{i}"} for i, b in enumerate(bodies)]
        self.deleted: list[str] = []
        self.visibility: dict[str, int] = {}

    def receive_message(self, **kw: Any) -> dict[str, Any]:
        return {"Messages": self.messages}

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:
        self.deleted.append(ReceiptHandle)

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str, **kw: int) -> None:
        self.visibility[ReceiptHandle] = kw["VisibilityTimeout"]


def test_a_message_ahead_of_the_read_model_is_postponed_not_dropped() -> None:
    app, eid = _registered()
    app.request_validation(customer_id="c", endpoint_id=eid, actor="k")  # version 2
    validator = _validator(app, _S3(), endpoints=_Lagging(app, 60), projection_wait_seconds=0.1)
    with pytest.raises(NotProjectedYet):
        validator.validate(eid)
    sqs = _FakeSqs([eventbridge_body(stream_events(app.recorder, eid)[1])])
    worker = ValidatorWorker(validator, "q", sqs=sqs, not_projected_delay_seconds=3)
    assert worker.poll_once() == 0
    assert sqs.deleted == [] and sqs.visibility == {"r0": 3}
