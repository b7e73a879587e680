"""The application metrics the alarms and dashboard use (ferry.names.APP_METRICS) are really
emitted: Powertools Metrics writes EMF lines to stdout, captured here with capsys (as the
Powertools docs show). Real handlers, real applications (in-memory persistence), no mocks."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest

from ferry import names
from ferry.api import issue_key
from ferry.apigw import rest_event
from services.executor.domain import Transfer
from services.executor.engine import Stats
from services.executor.worker import emit_attempt_metrics
from services.jobs.handlers import build_resolver
from services.jobs.handlers import make_handler as make_api_handler
from services.jobs.settings import JobsSettings
from tests.support.fakes.keys import InMemoryKeyStore
from tests.unit.test_jobs_pm import Executor, World


def emf(out: str) -> list[dict[str, Any]]:
    """Every EMF document printed (one JSON object per line with an ``_aws`` key)."""
    docs = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


def emitted(out: str) -> dict[str, list[float]]:
    """metric name -> values, checking namespace, the ``service`` dimension and the unit."""
    found: dict[str, list[float]] = {}
    for doc in emf(out):
        [directive] = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == names.METRICS_NAMESPACE
        assert ["service"] in directive["Dimensions"]
        for metric in directive["Metrics"]:
            name = metric["Name"]
            assert doc["service"] == names.APP_METRICS[name], (name, doc["service"])
            expected_unit = {
                names.METRIC_BYTES_TRANSFERRED: "Bytes",
                names.METRIC_JOB_DURATION_SECONDS: "Seconds",
            }.get(name, "Count")
            assert metric["Unit"] == expected_unit, name
            values = doc[name] if isinstance(doc[name], list) else [doc[name]]
            found.setdefault(name, []).extend(float(v) for v in values)
    return found


# --- jobs API ----------------------------------------------------------------------------------


@pytest.fixture
def api() -> Any:
    from events.contract import Direction, EndpointStatus, EndpointType
    from services.jobs import handlers
    from services.jobs.bootstrap import bootstrap
    from services.jobs.ports import EndpointInfo
    from tests.support.fakes.jobs import InMemoryEndpointDirectory, InMemoryIdempotencyStore

    # other tests drive build_resolver() without the flushing Lambda handler: start clean
    handlers.metrics.clear_metrics()
    keys = InMemoryKeyStore()
    key, _ = issue_key(keys, "cust-a")
    src, tgt = (
        EndpointInfo(
            endpoint_id=str(uuid4()),
            customer_id="cust-a",
            type=t,
            direction=Direction.BOTH,
            status=EndpointStatus.ACTIVE,
        )
        for t in (EndpointType.S3, EndpointType.SFTP)
    )
    service = bootstrap(
        settings=JobsSettings(),
        endpoints=InMemoryEndpointDirectory([src, tgt]),
        idempotency=InMemoryIdempotencyStore(),
        keys=keys,
    )
    handler = make_api_handler(lambda: build_resolver(service))
    body = {
        "source": {"endpoint_id": src.endpoint_id, "path": "in/a.csv"},
        "target": {"endpoint_id": tgt.endpoint_id, "path": "out/a.csv"},
    }

    def call(method: str, path: str, payload: Any = None, **headers: str) -> dict[str, Any]:
        event = rest_event(
            method,
            path,
            body=None if payload is None else json.dumps(payload),
            headers={"x-api-key": key, **headers},
        )
        response = handler(event, None)
        return {**json.loads(response["body"]), "http": response["statusCode"]}

    return call, body


def test_submit_emits_job_queued_once_per_new_job(
    api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    call, body = api
    capsys.readouterr()
    first = call("POST", "/transfers", body, **{"Idempotency-Key": "k-1"})
    assert first["http"] == 202
    assert emitted(capsys.readouterr().out) == {names.METRIC_JOB_QUEUED: [1.0]}
    again = call("POST", "/transfers", body, **{"Idempotency-Key": "k-1"})  # replay: same job
    assert again["job_id"] == first["job_id"]
    assert names.METRIC_JOB_QUEUED not in emitted(capsys.readouterr().out)


def test_cancel_emits_job_cancelled_and_a_rejected_cancel_emits_nothing(
    api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    call, body = api
    job_id = call("POST", "/transfers", body)["job_id"]
    capsys.readouterr()
    assert call("POST", f"/jobs/{job_id}/cancel")["http"] == 202
    assert emitted(capsys.readouterr().out) == {names.METRIC_JOB_CANCELLED: [1.0]}
    assert call("POST", f"/jobs/{job_id}/cancel")["http"] == 409
    assert emitted(capsys.readouterr().out) == {}


# --- jobs process manager -----------------------------------------------------------------------


def test_process_manager_emits_started_succeeded(capsys: pytest.CaptureFixture[str]) -> None:
    world = World()
    ex = Executor(world.submit())
    capsys.readouterr()
    world.feed(ex.lease(), *ex.progress(), ex.verified(), ex.post_action(), ex.released())
    assert emitted(capsys.readouterr().out) == {
        names.METRIC_JOB_STARTED: [1.0],
        names.METRIC_JOB_SUCCEEDED: [1.0],
    }
    # redelivery records nothing, so counts nothing
    ex2 = Executor(ex.job_id)
    world.feed(ex2.lease())
    assert emitted(capsys.readouterr().out) == {}


def test_process_manager_emits_retry_then_failed(capsys: pytest.CaptureFixture[str]) -> None:
    world = World(max_attempts=2)
    ex = Executor(world.submit())
    capsys.readouterr()
    world.feed(ex.lease(1), ex.failed(1, transient=True))
    assert emitted(capsys.readouterr().out) == {
        names.METRIC_JOB_STARTED: [1.0],
        names.METRIC_JOB_RETRY_SCHEDULED: [1.0],
    }
    world.feed(ex.lease(2), ex.failed(2, transient=True))
    assert emitted(capsys.readouterr().out) == {
        names.METRIC_JOB_STARTED: [1.0],
        names.METRIC_JOB_FAILED: [1.0],
    }


# --- executor ---------------------------------------------------------------------------------


def _transfer() -> Transfer:
    from datetime import timedelta

    return Transfer.open(
        job_id=str(uuid4()),
        customer_id="cust-a",
        owner_id="exec-1",
        region="us-gov-west-1",
        attempt=1,
        lease_for=timedelta(minutes=5),
    )


def test_executor_emits_bytes_and_duration_per_finished_attempt(
    capsys: pytest.CaptureFixture[str],
) -> None:
    t = _transfer()
    t.verified = {"size": 300, "sha256": "a" * 64, "duration_seconds": 2.5}
    capsys.readouterr()
    emit_attempt_metrics(t, "succeeded", Stats(source_bytes=300, chunks_committed=3))
    docs = emf(capsys.readouterr().out)
    assert len(docs) == 1  # one flush per attempt
    assert emitted(json.dumps(docs[0])) == {
        names.METRIC_BYTES_TRANSFERRED: [300.0],
        names.METRIC_JOB_DURATION_SECONDS: [2.5],
    }


def test_executor_failed_attempt_emits_bytes_only(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    emit_attempt_metrics(_transfer(), "retry", Stats(source_bytes=100))
    assert emitted(capsys.readouterr().out) == {names.METRIC_BYTES_TRANSFERRED: [100.0]}


def test_infra_alarms_use_the_names_the_services_emit() -> None:
    pytest.importorskip("aws_cdk")
    from infra.constructs import monitoring

    assert monitoring.APP_METRICS is names.APP_METRICS
    assert monitoring.METRICS_NAMESPACE == names.METRICS_NAMESPACE


def test_a_failed_access_log_write_emits_access_log_write_failed(capsys: Any) -> None:
    """ferry/access_log.py: the read is answered; the entry goes to the log and the metric."""
    from datetime import UTC, datetime

    from ferry.access_log import AccessLog, AccessRecorded

    class Down:
        def insert_events(self, stored_events: Any, **kwargs: Any) -> Any:
            raise ConnectionError("the access-log table is unreachable")

        def select_events(self, originator_id: Any, **kwargs: Any) -> Any:
            return []

    entry = AccessRecorded(
        timestamp=datetime(2026, 3, 3, tzinfo=UTC).isoformat(),
        customer_id="acme",
        key_id="k1",
        method="GET",
        route="/jobs",
        status=200,
    )
    assert AccessLog(Down()).record(entry) is False
    assert emitted(capsys.readouterr().out) == {names.METRIC_ACCESS_LOG_WRITE_FAILED: [1.0]}
