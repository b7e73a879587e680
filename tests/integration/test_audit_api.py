"""The audit routes and ``as_of`` through the query API's resolver, on the DynamoDB event store
(moto server over HTTP), and ``ferry audit verify|checkpoint|events``: customer-scoped by the
API key, bad input answered 4xx naming the field, a broken chain exits 1."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import boto3
import pytest

from events.dynamodb import DynamoDBAggregateRecorder, create_events_table
from ferry.api import DynamoKeyStore, issue_key
from ferry.apigw import rest_event
from services.projections.application import Projector, Queries
from services.projections.audit import Audit
from services.projections.audit_adapters import DynamoCustomerIndex, S3CheckpointStore
from services.projections.bootstrap import ProjectionsContext
from services.projections.handlers import build_app
from services.projections.samples import History, to_stored
from tests.support.fakes.projections import InMemoryReadModelStore
from tests.support.moto_server import unique_name

pytestmark = pytest.mark.usefixtures("aws_env")


class Api:
    def __init__(self) -> None:
        ddb, s3 = boto3.client("dynamodb"), boto3.client("s3")
        self.ddb, self.s3 = ddb, s3
        self.table, self.bucket = unique_name("events"), unique_name("audit")
        self.keys_table = unique_name("keys")
        create_events_table(ddb, self.table)
        s3.create_bucket(Bucket=self.bucket)
        DynamoKeyStore.create_table(ddb, self.keys_table)
        self.recorder = DynamoDBAggregateRecorder(ddb, self.table)
        h = History()
        self.src = h.endpoint("acme", endpoint_type="s3")
        self.dst = h.endpoint_lifecycle("acme")
        self.job = h.job("acme", self.src, self.dst)
        self.other = h.endpoint("globex")
        self.history = h
        for event in h.events:  # one append per event, as the history's commands wrote them
            self.recorder.insert_events([to_stored(event)])
        keys = DynamoKeyStore(self.keys_table, client=ddb)
        self.key, _ = issue_key(keys, "acme")
        self.other_key, _ = issue_key(keys, "globex")
        store = InMemoryReadModelStore()
        self.audit = Audit(
            self.recorder, DynamoCustomerIndex(ddb, self.table), S3CheckpointStore(s3, self.bucket)
        )
        self.app = build_app(
            ProjectionsContext(
                Projector(store, self.recorder), Queries(store, self.recorder), keys
            ),
            audit_factory=lambda: self.audit,
        )

    def call(
        self, method: str, path: str, query: dict[str, str] | None = None, key: str | None = None
    ) -> tuple[int, Any]:
        headers = {"x-api-key": key or self.key}
        event = rest_event(method, path, headers=headers, query=query)
        response = self.app.resolve(event, None)
        return response["statusCode"], json.loads(response["body"])


@pytest.fixture(scope="module")
def api(moto_server: str) -> Api:
    with pytest.MonkeyPatch.context() as patch:
        from tests.support.moto_server import aws_environment

        for name, value in aws_environment(moto_server).items():
            patch.setenv(name, value)
        return Api()


def _times(api: Api, stream_id: str) -> list[tuple[int, str]]:
    return [
        (e.version, e.occurred_at.isoformat().replace("+00:00", "Z"))
        for e in api.history.events
        if e.stream_id == stream_id
    ]


def test_endpoint_as_of_every_version_matches_the_history(api: Api) -> None:
    for version, at in _times(api, api.dst):
        status, body = api.call("GET", f"/endpoints/{api.dst}", {"as_of": at})
        assert status == 200, body
        assert body["version"] == version and body["as_of"].startswith(at[:19])
    status_then, then = api.call("GET", f"/endpoints/{api.dst}", {"as_of": "2026-11-23T00:00:00Z"})
    assert status_then == 200 and then["version"] == len(_times(api, api.dst))
    assert then["status"] == "ACTIVE"  # the lifecycle ends enabled


def test_job_as_of_and_the_errors_of_as_of(api: Api) -> None:
    times = _times(api, api.job)
    status, body = api.call("GET", f"/jobs/{api.job}", {"as_of": times[0][1]})
    assert status == 200 and body["job_version"] == 1 and body["status"] == "RECEIVED"
    status, body = api.call("GET", f"/jobs/{api.job}", {"as_of": "2026-11-23T00:00:00Z"})
    assert status == 200 and body["status"] == "SUCCEEDED"
    assert api.call("GET", f"/jobs/{api.job}", {"as_of": "2020-01-01T00:00:00Z"})[0] == 404
    assert api.call("GET", f"/jobs/{api.job}", {"as_of": "2030-01-01T00:00:00"})[0] == 400
    assert api.call("GET", f"/jobs/{api.job}", {"as_of": "soon"})[0] in (400, 422)
    other = api.call("GET", f"/endpoints/{api.other}", {"as_of": "2026-11-23T00:00:00Z"})
    assert other[0] == 404


def test_verify_is_scoped_to_the_callers_streams(api: Api) -> None:
    status, body = api.call("GET", "/audit/verify", {"stream_id": api.dst})
    assert status == 200 and body["ok"] and body["events"] == len(_times(api, api.dst))
    assert api.call("GET", "/audit/verify", {"stream_id": api.other})[0] == 404
    assert api.call("GET", "/audit/verify", {"stream_id": api.dst}, key=api.other_key)[0] == 404
    assert api.call("GET", "/audit/verify", {"stream_id": "a b"})[0] in (400, 422)


def test_audit_events_pages_never_show_another_customer(api: Api) -> None:
    seen: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        query = {"limit": "3", **({"next_token": token} if token else {})}
        status, body = api.call("GET", "/audit/events", query)
        assert status == 200, body
        seen.extend(body["events"])
        token = body["next_token"]
        if not token:
            break
    acme = [e for e in api.history.events if e.customer_id == "acme"]
    assert [e["event_id"] for e in seen] == [e.event_id for e in acme]
    status, body = api.call("GET", "/audit/events", {"type": "JobSucceeded"})
    assert [e["stream_id"] for e in body["events"]] == [api.job]
    assert api.call("GET", "/audit/events", {"next_token": "nonsense"})[0] == 400
    assert (
        api.call(
            "GET",
            "/audit/events",
            {"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"},
        )[0]
        == 400
    )
    status, body = api.call("GET", "/audit/events", key=api.other_key)
    assert {e["detail"]["customer_id"] for e in body["events"]} == {"globex"}


def test_checkpoint_on_demand_and_the_cli(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    status, body = api.call("POST", "/audit/checkpoint")
    assert status == 200 and body["written"] and body["checkpoint"]["seq"] == 1
    assert set(body["checkpoint"]["streams"]) >= {api.src, api.dst, api.job}
    from ferry.cli import main

    monkeypatch.setenv("FERRY_EVENTS_TABLE", api.table)
    monkeypatch.setenv("FERRY_AUDIT_BUCKET", api.bucket)
    monkeypatch.setenv("FERRY_API_KEYS_TABLE", api.keys_table)
    monkeypatch.setenv("FERRY_DATA_DIR", "/nonexistent-ferry-data")
    assert main(["audit", "verify", "--json"]) == 0
    # tamper: delete the tail of the job stream: the checkpoint catches it
    versions = [v for v, _ in _times(api, api.job)]
    api.ddb.delete_item(
        TableName=api.table,
        Key={"stream_id": {"S": str(UUID(api.job))}, "version": {"N": str(max(versions))}},
    )
    assert main(["audit", "verify", "--customer", "acme"]) == 1
    assert main(["audit", "verify", "--customer", "globex"]) == 0
