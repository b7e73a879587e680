"""Reads are audited (issue 11 part 4), on moto server over HTTP: the query API's resolver with
the real access log (``ferry.access_log`` → the access-log table, the event store's recorder and
chain), GET /audit/access, ``ferry audit access`` and ``ferry audit verify`` over it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from events.dynamodb import DynamoDBAggregateRecorder, create_events_table, plain_item
from ferry.access_log import AccessLog, AccessRecorded
from ferry.api import DynamoKeyStore, issue_key
from ferry.apigw import rest_event
from services.projections.access_log import ACCESS_CHECKPOINT_PREFIX, access_page
from services.projections.application import Projector, Queries
from services.projections.audit import Audit
from services.projections.audit_adapters import DynamoCustomerIndex, S3CheckpointStore
from services.projections.bootstrap import ProjectionsContext
from services.projections.handlers import build_app
from services.projections.samples import History, to_stored
from tests.support.fakes.projections import InMemoryReadModelStore
from tests.support.moto_server import unique_name

pytestmark = pytest.mark.usefixtures("aws_env")

SECRET_TOKEN = "s3cr3t-Bearer-token-that-must-not-be-stored"


class Api:
    def __init__(self) -> None:
        ddb, s3 = boto3.client("dynamodb"), boto3.client("s3")
        self.ddb, self.s3 = ddb, s3
        self.table, self.access_table = unique_name("events"), unique_name("access")
        self.bucket, self.keys_table = unique_name("audit"), unique_name("keys")
        create_events_table(ddb, self.table)
        create_events_table(ddb, self.access_table, stream_view_type=None)
        s3.create_bucket(Bucket=self.bucket)
        DynamoKeyStore.create_table(ddb, self.keys_table)
        self.recorder = DynamoDBAggregateRecorder(ddb, self.table)
        h = History()
        self.src = h.endpoint("acme", endpoint_type="s3")
        self.job = h.job("acme", self.src, h.endpoint("acme"))
        self.other = h.endpoint("globex")
        by_stream: dict[str, list[Any]] = {}
        for event in h.events:
            by_stream.setdefault(event.stream_id, []).append(to_stored(event))
        for stored in by_stream.values():
            self.recorder.insert_events(stored)
        keys = DynamoKeyStore(self.keys_table, client=ddb)
        self.k1, self.k1_who = issue_key(keys, "acme", name="ops-reader", scope="read")
        self.other_key, self.other_who = issue_key(keys, "globex", name="globex-key")
        store = InMemoryReadModelStore()
        self.access_recorder = DynamoDBAggregateRecorder(ddb, self.access_table)
        self.access_audit = Audit(
            self.access_recorder,
            DynamoCustomerIndex(ddb, self.access_table),
            S3CheckpointStore(s3, self.bucket, ACCESS_CHECKPOINT_PREFIX),
        )
        events_audit = Audit(
            self.recorder, DynamoCustomerIndex(ddb, self.table), S3CheckpointStore(s3, self.bucket)
        )
        self.app = build_app(
            ProjectionsContext(
                Projector(store, self.recorder), Queries(store, self.recorder), keys
            ),
            audit_factory=lambda: events_audit,
            access_audit_factory=lambda: self.access_audit,
        )
        self.access_log = AccessLog(self.access_recorder)
        self.app.access_log = self.access_log

    def call(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        key: str | None = None,
        resource: str | None = None,
        path_parameters: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        event = rest_event(
            method,
            path,
            headers={"x-api-key": key or self.k1},
            query=query,
            resource=resource,
            path_parameters=path_parameters,
        )
        response = self.app.resolve(event, None)
        return response["statusCode"], json.loads(response["body"])

    def raw_items(self) -> list[dict[str, Any]]:
        return self.ddb.scan(TableName=self.access_table, ConsistentRead=True)["Items"]


@pytest.fixture(scope="module")
def api(moto_server: str) -> Api:
    with pytest.MonkeyPatch.context() as patch:
        from tests.support.moto_server import aws_environment

        for name, value in aws_environment(moto_server).items():
            patch.setenv(name, value)
        return Api()


def _entries(api: Api, customer: str) -> list[Any]:
    page = access_page(api.access_audit.index, customer, limit=500)
    return page.entries


def test_a_get_by_k1_is_recorded_with_k1s_id_and_name(api: Api) -> None:
    status, body = api.call(
        "GET",
        f"/jobs/{api.job}/events",
        resource="/jobs/{job_id}/events",
        path_parameters={"job_id": api.job},
    )
    assert status == 200 and body["events"]
    entry = _entries(api, "acme")[-1]
    assert (entry.key_id, entry.key_name, entry.customer_id) == (
        api.k1_who.key_id,
        "ops-reader",
        "acme",
    )
    assert (entry.method, entry.route, entry.status) == ("GET", "/jobs/{job_id}/events", 200)
    assert entry.resource_ids == {"job_id": api.job}
    assert entry.hash and entry.prev_hash and entry.stream_id.startswith("access:acme:")
    # a refused read is recorded too, with its status
    other_job = "00000000-0000-4000-8000-000000000000"
    status, _ = api.call(
        "GET",
        f"/jobs/{other_job}",
        resource="/jobs/{job_id}",
        path_parameters={"job_id": other_job},
    )
    assert status == 404
    assert (_entries(api, "acme")[-1].route, _entries(api, "acme")[-1].status) == (
        "/jobs/{job_id}",
        404,
    )


def test_the_customer_reads_its_own_access_log_and_never_anothers(api: Api) -> None:
    api.call("GET", "/endpoints", key=api.other_key)  # globex reads its own endpoints
    api.call("GET", "/jobs")
    status, body = api.call("GET", "/audit/access")
    assert status == 200, body
    assert body["entries"] and {e["customer_id"] for e in body["entries"]} == {"acme"}
    assert api.other_who.key_id not in {e["key_id"] for e in body["entries"]}
    status, body = api.call("GET", "/audit/access", key=api.other_key)
    assert status == 200
    assert {e["customer_id"] for e in body["entries"]} == {"globex"}
    assert {e["key_id"] for e in body["entries"]} == {api.other_who.key_id}
    assert (
        api.call("GET", "/audit/access", {"key": "ops-reader"}, key=api.other_key)[1]["entries"]
        == []
    )
    # pages: a token only names a position inside the caller's own partition
    # (with an ``until``: every page read is itself recorded, after its answer)
    until = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    seen, token = [], None
    for _ in range(50):
        query = {"limit": "1", "until": until, **({"next_token": token} if token else {})}
        status, page = api.call("GET", "/audit/access", query)
        assert status == 200, page
        seen.extend(page["entries"])
        token = page["next_token"]
        if not token:
            break
    assert {e["customer_id"] for e in seen} == {"acme"} and len(seen) >= 3
    assert api.call("GET", "/audit/access", {"next_token": "nonsense"})[0] == 400
    bad = api.call(
        "GET", "/audit/access", {"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"}
    )
    assert bad[0] == 400 and bad[1]["error"]["field"] == "since"


def test_no_secret_values_in_the_records(api: Api) -> None:
    status, _ = api.call("GET", "/audit/events", {"next_token": SECRET_TOKEN, "limit": "5"})
    assert status == 400  # not a token this API issued; still recorded
    entry = _entries(api, "acme")[-1]
    assert entry.route == "/audit/events" and entry.status == 400
    assert entry.query["limit"] == "5"
    assert entry.query["next_token"].startswith("sha256:")
    raw = json.dumps([plain_item(i) for i in api.raw_items()], default=repr)
    assert SECRET_TOKEN not in raw
    assert api.k1 not in raw and api.other_key not in raw  # the API keys themselves: never


def test_editing_a_recorded_access_entry_is_detected_by_verify(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):  # entries of its own (the other tests' may run elsewhere)
        api.call("GET", "/me")
    report = api.access_audit.verify_customer("acme")
    assert report.ok and report.events >= 3, report.as_dict()
    assert api.access_audit.checkpoint("acme") is not None  # anchors under access-checkpoints/
    from ferry.cli import main

    monkeypatch.setenv("FERRY_EVENTS_TABLE", api.table)
    monkeypatch.setenv("FERRY_ACCESS_LOG_TABLE", api.access_table)
    monkeypatch.setenv("FERRY_AUDIT_BUCKET", api.bucket)
    monkeypatch.setenv("FERRY_API_KEYS_TABLE", api.keys_table)
    monkeypatch.setenv("FERRY_DATA_DIR", "/nonexistent-ferry-data")
    assert main(["audit", "verify", "--customer", "acme", "--json"]) == 0
    # tamper: the auditor's own read becomes someone else's (the state bytes edited)
    victim = next(i for i in api.raw_items() if plain_item(i)["customer_id"] == "acme")
    item = plain_item(victim)
    state = json.loads(item["state"])
    state["key_name"] = "nobody"
    api.ddb.update_item(
        TableName=api.access_table,
        Key={"stream_id": {"S": item["stream_id"]}, "version": {"N": str(item["version"])}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": {"B": json.dumps(state).encode()}},
    )
    problems = api.access_audit.verify_customer("acme").problems
    assert [(p.stream_id, p.version, p.kind) for p in problems] == [
        (item["stream_id"], item["version"], "state_edited")
    ]
    assert main(["audit", "verify", "--customer", "acme"]) == 1
    assert main(["audit", "verify", "--customer", "globex"]) == 0


def test_ferry_audit_access_lists_the_calls(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api.call("GET", "/stats/hourly")
    from ferry.cli import main

    monkeypatch.setenv("FERRY_ACCESS_LOG_TABLE", api.access_table)
    monkeypatch.setenv("FERRY_AUDIT_BUCKET", api.bucket)
    monkeypatch.setenv("FERRY_API_KEYS_TABLE", api.keys_table)
    monkeypatch.setenv("FERRY_DATA_DIR", "/nonexistent-ferry-data")
    capsys.readouterr()
    args = ["audit", "access", "--since", "2000-01-01T00:00:00Z", "--customer", "acme"]
    assert main([*args, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["count"] >= 1 and {e["customer_id"] for e in listed["entries"]} == {"acme"}
    assert "/stats/hourly" in {e["route"] for e in listed["entries"]}
    assert main([*args, "--key", "globex-key", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 0
    from ferry import cli_audit_access

    monkeypatch.setattr(cli_audit_access.out, "width", 250)  # rich fixed it at import
    assert main(args) == 0
    assert "/stats/hourly" in capsys.readouterr().out
    assert main(["audit", "access", "--since", "yesterday"]) != 0
    assert "--since" in capsys.readouterr().err


def test_a_failed_write_never_fails_the_read(api: Api) -> None:
    failed: list[AccessRecorded] = []
    missing = DynamoDBAggregateRecorder(api.ddb, unique_name("no-such-table"))
    api.app.access_log = AccessLog(missing, on_failure=failed.append)
    try:
        status, body = api.call("GET", "/me")
    finally:
        api.app.access_log = api.access_log
    assert status == 200 and body["customer_id"] == "acme"
    assert [(e.route, e.key_id) for e in failed] == [("/me", api.k1_who.key_id)]


def test_without_the_access_log_table_the_route_is_404_never_5xx(api: Api) -> None:
    missing = Audit(
        DynamoDBAggregateRecorder(api.ddb, unique_name("no-access-table")),
        DynamoCustomerIndex(api.ddb, unique_name("no-access-table")),
        S3CheckpointStore(api.s3, api.bucket, ACCESS_CHECKPOINT_PREFIX),
    )
    store = InMemoryReadModelStore()
    keys = DynamoKeyStore(api.keys_table, client=api.ddb)
    app = build_app(
        ProjectionsContext(Projector(store, api.recorder), Queries(store, api.recorder), keys),
        access_audit_factory=lambda: missing,
    )
    event = rest_event("GET", "/audit/access", headers={"x-api-key": api.k1})
    response = app.resolve(event, None)
    assert response["statusCode"] == 404
    assert json.loads(response["body"])["error"]["code"] == "access_log_not_deployed"


def test_with_the_table_unset_nothing_is_asked_of_aws(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No FERRY_ACCESS_LOG_TABLE (a deployment without it): no client is made, so GET
    /audit/access cannot reach any endpoint (schemathesis once found real-AWS DescribeTable
    calls answered as 5xx here); the route is a 404 naming the reason, and reads go unrecorded."""
    from ferry.access_log import build_access_log
    from services.projections.access_log import build_access_audit

    monkeypatch.delenv("FERRY_ACCESS_LOG_TABLE", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # refused, were it asked
    assert build_access_audit() is None
    assert build_access_log() is None
    store = InMemoryReadModelStore()
    keys = DynamoKeyStore(api.keys_table, client=api.ddb)
    app = build_app(
        ProjectionsContext(Projector(store, api.recorder), Queries(store, api.recorder), keys)
    )
    event = rest_event("GET", "/audit/access", headers={"x-api-key": api.k1})
    response = app.resolve(event, None)
    assert response["statusCode"] == 404, response
    assert json.loads(response["body"])["error"]["code"] == "access_log_not_deployed"
