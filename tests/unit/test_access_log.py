"""The access log writer (ferry.access_log) on the in-memory recorder: what is audited, what a
record holds (secrets digested), versions per writer stream, and a failure never raising."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError
from eventsourcing.popo import POPOAggregateRecorder

from ferry.access_log import AccessLog, AccessRecorded, audited, safe_value, stream_id_for
from ferry.api_keys import Principal
from ferry.apigw import rest_event

WHO = Principal(customer_id="acme", key_id="k1", key_name="ops", scope="read")
NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


def _event(**query: str) -> dict[str, Any]:
    return rest_event(
        "GET",
        "/jobs/00000000-0000-4000-8000-000000000001",
        headers={"x-api-key": "fk_secret_key"},
        query=query or None,
        resource="/jobs/{job_id}",
        path_parameters={"job_id": "00000000-0000-4000-8000-000000000001"},
    )


def test_reads_and_exports_are_audited_changes_are_not() -> None:
    assert audited("GET", "/jobs/{job_id}") and audited("POST", "/audit/exports")
    assert not audited("POST", "/transfers") and not audited("PATCH", "/endpoints/{endpoint_id}")


def test_unknown_or_token_parameters_are_digested() -> None:
    assert safe_value("limit", "5") == "5"
    assert safe_value("next_token", "abc").startswith("sha256:")
    assert safe_value("password", "hunter2").startswith("sha256:")
    assert safe_value("since", "x" * 300).startswith("sha256:")  # long: digested too


def test_a_record_names_who_what_when_and_the_status() -> None:
    entry = AccessRecorded.of_request(
        _event(limit="5", token="t0ps3cret"), WHO, 200, at=NOW, duration_ms=1.5
    )
    assert (entry.customer_id, entry.key_id, entry.key_name, entry.status) == (
        "acme",
        "k1",
        "ops",
        200,
    )
    assert entry.route == "/jobs/{job_id}" and entry.timestamp == "2026-03-03T10:00:00.000000Z"
    text = entry.model_dump_json()
    assert "t0ps3cret" not in text and "fk_secret_key" not in text


def test_one_writer_appends_its_own_stream_in_order() -> None:
    recorder = POPOAggregateRecorder()
    log = AccessLog(recorder, clock=lambda: NOW, writer="w1")
    for _ in range(3):
        assert log.after(_event(), WHO, {"statusCode": 200}, 0.0) is not None
    stream = stream_id_for("acme", "2026-03-03", "w1")
    stored = recorder.select_events(stream)  # type: ignore[arg-type]
    assert [e.originator_version for e in stored] == [1, 2, 3]
    assert json.loads(stored[0].state)["key_id"] == "k1"
    assert log.after({**_event(), "httpMethod": "POST"}, WHO, {"statusCode": 202}, 0.0) is None


class _Failing(POPOAggregateRecorder):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def insert_events(self, stored_events: Any, **kwargs: Any) -> Any:
        raise self.error


def test_a_failed_write_is_reported_never_raised() -> None:
    failed: list[AccessRecorded] = []
    for error in (IntegrityError("taken"), OSError("network down")):
        log = AccessLog(_Failing(error), clock=lambda: NOW, on_failure=failed.append)
        assert log.after(_event(), WHO, {"statusCode": 200}, 0.0) is not None
        assert log.failures == 1
    assert [e.key_id for e in failed] == ["k1", "k1"]
