"""Endpoint status rules, stale validation results, and the published shape of every event."""

from __future__ import annotations

from uuid import uuid4

import pytest

from events.contract import EndpointConfig, EndpointStatus
from events.translate import stream_events, to_integration
from services.endpoints.application import Credentials, EndpointsApplication, Registration
from services.endpoints.domain import Endpoint, EndpointNotFound, InvalidChange
from tests.support.fakes.endpoints import InMemorySecretStore

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
ACTIVE, PENDING = EndpointStatus.ACTIVE, EndpointStatus.PENDING_VALIDATION
FAILED, DISABLED = EndpointStatus.VALIDATION_FAILED, EndpointStatus.DISABLED


@pytest.fixture
def app() -> EndpointsApplication:
    return EndpointsApplication(secrets=InMemorySecretStore(), env=POPO)


def _register(app: EndpointsApplication) -> str:
    endpoint = app.register(
        customer_id="cust",
        actor="key-1",
        registration=Registration(
            name="e",
            direction="BOTH",
            max_concurrency=4,
            config=EndpointConfig(
                type="sftp",
                host="h.example",
                port=22,
                username="u",
                base_path="/x",
                host_key="SHA256:" + "B" * 43,
            ),
            credentials=Credentials(username="u", password="pw"),
        ),
    )
    return str(endpoint.id)


def _status(app: EndpointsApplication, endpoint_id: str) -> EndpointStatus:
    return app.get(endpoint_id).status


def _version(app: EndpointsApplication, endpoint_id: str) -> int:
    return app.get(endpoint_id).version


def test_validation_makes_the_endpoint_active(app: EndpointsApplication) -> None:
    eid = _register(app)
    assert _status(app, eid) is PENDING
    assert app.record_validation(eid, 1, True, ["connect"], "SHA256:x") is True
    endpoint = app.get(eid)
    assert endpoint.status is ACTIVE and endpoint.host_key_fingerprint == "SHA256:x"
    assert endpoint.validated_at is not None


def test_failed_validation_and_revalidation_after_update(app: EndpointsApplication) -> None:
    eid = _register(app)
    assert app.record_validation(eid, 1, False, reason_code="AUTH_FAILED", message="denied")
    endpoint = app.get(eid)
    assert endpoint.status is FAILED and endpoint.status_reason == "AUTH_FAILED: denied"
    app.update(customer_id="cust", endpoint_id=eid, actor="k", changes={"port": 2222})
    assert _status(app, eid) is PENDING
    assert app.record_validation(eid, _version(app, eid), True)
    assert _status(app, eid) is ACTIVE


def test_credentials_rotation_requires_revalidation(app: EndpointsApplication) -> None:
    eid = _register(app)
    app.record_validation(eid, 1, True)
    app.update(
        customer_id="cust",
        endpoint_id=eid,
        actor="k",
        changes={},
        credentials=Credentials(username="", password="new"),
    )
    assert _status(app, eid) is PENDING


def test_non_connection_change_keeps_the_status(app: EndpointsApplication) -> None:
    eid = _register(app)
    app.record_validation(eid, 1, True)
    app.update(
        customer_id="cust",
        endpoint_id=eid,
        actor="k",
        changes={"name": "n2", "max_concurrency": 1, "direction": "INBOUND"},
    )
    endpoint = app.get(eid)
    assert endpoint.status is ACTIVE and not endpoint.needs_validation
    assert (endpoint.name, endpoint.max_concurrency, endpoint.direction) == ("n2", 1, "INBOUND")


def test_stale_validation_result_is_ignored(app: EndpointsApplication) -> None:
    eid = _register(app)
    checked = _version(app, eid)  # the validator loads version 1 ...
    app.update(customer_id="cust", endpoint_id=eid, actor="k", changes={"host": "other.example"})
    # ... and reports after the configuration changed: dropped, nothing recorded.
    assert app.record_validation(eid, checked, True) is False
    assert _status(app, eid) is PENDING
    assert [e.detail_type() for e in stream_events(app.recorder, eid)] == [
        "EndpointRegistered",
        "EndpointUpdated",
    ]
    # A result for the current configuration counts.
    assert app.record_validation(eid, _version(app, eid), False, reason_code="X", message="m")
    assert _status(app, eid) is FAILED


def test_result_after_unrelated_changes_still_counts(app: EndpointsApplication) -> None:
    eid = _register(app)
    app.update(customer_id="cust", endpoint_id=eid, actor="k", changes={"name": "renamed"})
    assert app.record_validation(eid, 1, True) is True  # name changes don't invalidate it
    assert _status(app, eid) is ACTIVE


def test_duplicate_results_are_recorded_once(app: EndpointsApplication) -> None:
    eid = _register(app)
    assert app.record_validation(eid, 1, True) is True
    assert app.record_validation(eid, 1, True) is False
    assert app.record_validation(eid, 2, False, reason_code="X", message="m") is False
    assert _status(app, eid) is ACTIVE
    assert len(stream_events(app.recorder, eid)) == 2


def test_checked_version_must_exist(app: EndpointsApplication) -> None:
    eid = _register(app)
    with pytest.raises(InvalidChange):
        app.record_validation(eid, 5, True)


def test_disable_from_any_status_and_enable_restores_last_validation(
    app: EndpointsApplication,
) -> None:
    eid = _register(app)
    app.disable(customer_id="cust", endpoint_id=eid, actor="k")
    assert _status(app, eid) is DISABLED
    # The validator still reports while disabled: recorded, status stays DISABLED.
    assert app.record_validation(eid, _version(app, eid), True) is True
    assert _status(app, eid) is DISABLED
    app.enable(customer_id="cust", endpoint_id=eid, actor="k")
    assert _status(app, eid) is ACTIVE

    app.update(customer_id="cust", endpoint_id=eid, actor="k", changes={"base_path": "/y"})
    app.record_validation(
        eid, _version(app, eid), False, reason_code="BASE_PATH_MISSING", message="m"
    )
    app.disable(customer_id="cust", endpoint_id=eid, actor="k")
    app.enable(customer_id="cust", endpoint_id=eid, actor="k")
    # issue 9: enabling a VALIDATION_FAILED endpoint re-runs validation (never a silent no-op)
    assert _status(app, eid) is PENDING
    app.record_validation(
        eid, _version(app, eid), False, reason_code="BASE_PATH_MISSING", message="m"
    )
    assert _status(app, eid) is FAILED

    # An update while disabled needs a new validation before enable gives ACTIVE again.
    app.disable(customer_id="cust", endpoint_id=eid, actor="k")
    app.update(customer_id="cust", endpoint_id=eid, actor="k", changes={"base_path": "/z"})
    assert _status(app, eid) is DISABLED
    app.enable(customer_id="cust", endpoint_id=eid, actor="k")
    assert _status(app, eid) is PENDING


def test_type_cannot_change(app: EndpointsApplication) -> None:
    eid = _register(app)
    endpoint = app.get(eid)
    with pytest.raises(InvalidChange) as raised:
        endpoint.update({"type": "s3"}, actor="k")
    assert raised.value.field == "type"
    assert endpoint.update({"type": "sftp"}, actor="k") is False


def test_get_refuses_other_aggregates_and_customers(app: EndpointsApplication) -> None:
    eid = _register(app)
    with pytest.raises(EndpointNotFound):
        app.get_for_customer("someone-else", eid)
    with pytest.raises(EndpointNotFound):
        app.get(uuid4())
    with pytest.raises(EndpointNotFound):
        app.get("nope")


def test_every_event_matches_the_published_contract(app: EndpointsApplication) -> None:
    eid = _register(app)
    app.update(
        customer_id="cust",
        endpoint_id=eid,
        actor="k",
        changes={"port": 2200},
        credentials=Credentials(username="", private_key=None, password="p2"),
    )
    app.record_validation(eid, 2, False, reason_code="AUTH_FAILED", message="m")
    app.update(customer_id="cust", endpoint_id=eid, actor="k", changes={"port": 22})
    app.record_validation(eid, 4, True, ["connect"], "SHA256:x")
    app.disable(customer_id="cust", endpoint_id=eid, actor="k", reason="r")
    app.enable(customer_id="cust", endpoint_id=eid, actor="k")
    published = [to_integration(s) for s in app.recorder.select_events(app.get(eid).id)]
    assert [type(e).__name__ for e in published] == [
        "EndpointRegistered",
        "EndpointUpdated",
        "EndpointValidationFailed",
        "EndpointUpdated",
        "EndpointValidated",
        "EndpointDisabled",
        "EndpointEnabled",
    ]
    for event in published:
        assert event is not None
        assert event.customer_id == "cust"
        assert event.correlation_id == eid == event.stream_id  # type: ignore[attr-defined]
        assert event.endpoint_id == eid  # type: ignore[attr-defined]


def test_aggregate_holds_no_credentials(app: EndpointsApplication) -> None:
    eid = _register(app)
    endpoint = app.get(eid)
    assert "pw" not in repr(vars(endpoint))
    assert isinstance(endpoint, Endpoint) and endpoint.secret_arn
