"""POST /audit/exports as a job, on moto server over HTTP: the query API's resolver (as API
Gateway invokes it) records and queues an export of the caller's customer; the exporter runs it
from its SQS queue through the local stack's own poller (``ferry.local.sqs_poller``); GET
/audit/exports/{id} answers SUCCEEDED with presigned URLs, every file is downloaded over HTTP and
the download verifies offline (an edited line does not). Another customer's key gets 404 and its
export never holds the first customer's events; bad bodies are 4xx naming the field; a missing
bucket is FAILED with a reason; each call is in the access log."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from events.dynamodb import DynamoDBAggregateRecorder, create_events_table
from ferry.access_log import AccessLog, stream_id_for
from ferry.api import DynamoKeyStore, issue_key
from ferry.apigw import rest_event
from ferry.local.sqs_poller import SqsPoller
from services.projections.application import Projector, Queries
from services.projections.audit_adapters import DynamoCustomerIndex
from services.projections.audit_export import DirectorySink, verify_export
from services.projections.audit_exporter import make_handler
from services.projections.audit_exports import AuditExports
from services.projections.audit_exports_adapters import (
    DynamoExportStore,
    S3ExportFiles,
    SqsExportQueue,
    create_audit_exports_table,
)
from services.projections.bootstrap import ProjectionsContext
from services.projections.handlers import build_app
from services.projections.samples import History
from tests.support.fakes.projections import InMemoryReadModelStore
from tests.support.history_store import build_on_moto, published, seed_event_store
from tests.support.moto_server import unique_name

pytestmark = pytest.mark.usefixtures("aws_env")

SINCE, UNTIL = "2026-11-01T00:00:00Z", "2026-12-31T23:59:59Z"


class World:
    """acme: two endpoints, three jobs; globex: one job — in a fresh event store; an exports
    table, an audit bucket and the exporter's queue; the query API with the access log on."""

    def __init__(self, env: dict[str, str]) -> None:
        self.ddb = boto3.client("dynamodb")
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        h = History()
        src, dst = h.endpoint("acme", endpoint_type="s3"), h.endpoint("acme")
        for outcome in ("succeeded", "failed", "succeeded"):
            h.job("acme", src, dst, outcome=outcome)
        h.job("globex", h.endpoint("globex"), h.endpoint("globex"))
        self.history = h
        self.table, keys_table = seed_event_store(h, ["acme", "globex"])
        keys = DynamoKeyStore(keys_table, client=self.ddb)
        self.key, _ = issue_key(keys, "acme")
        self.other_key, _ = issue_key(keys, "globex")
        self.exports_table = unique_name("exports")
        create_audit_exports_table(self.ddb, self.exports_table)
        self.bucket = unique_name("audit")
        self.s3.create_bucket(Bucket=self.bucket)
        self.queue_url = self.sqs.create_queue(QueueName=unique_name("exports"))["QueueUrl"]
        self.index = DynamoCustomerIndex(self.ddb, self.table)
        self.exports = self.build_exports(self.bucket)
        access_table = unique_name("access")
        create_events_table(self.ddb, access_table, stream_view_type=None)
        self.access = DynamoDBAggregateRecorder(self.ddb, access_table)
        store = InMemoryReadModelStore()
        recorder = DynamoDBAggregateRecorder(self.ddb, self.table)
        self.app = build_app(
            ProjectionsContext(Projector(store, recorder), Queries(store, recorder), keys),
            exports_factory=lambda: self.exports,
        )
        self.app.access_log = AccessLog(self.access, writer="test")
        self.poller = SqsPoller(
            self.sqs,
            self.queue_url,
            make_handler(self.exports, self.index),
            function_name="audit-exporter",
            region="us-east-1",
        )

    def build_exports(self, bucket: str) -> AuditExports:
        return AuditExports(
            DynamoExportStore(self.ddb, self.exports_table),
            SqsExportQueue(self.sqs, self.queue_url),
            S3ExportFiles(self.s3, bucket),
        )

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        raw: str | None = None,
    ) -> tuple[int, Any]:
        resource, params = path, None
        if path.startswith("/audit/exports/"):
            resource = "/audit/exports/{export_id}"
            params = {"export_id": path.rsplit("/", 1)[1]}
        event = rest_event(
            method,
            path,
            body=raw if raw is not None else (json.dumps(body) if body is not None else None),
            headers={"x-api-key": key or self.key, **(headers or {})},
            resource=resource,
            path_parameters=params,
        )
        response = self.app.resolve(event, None)
        return response["statusCode"], json.loads(response["body"])

    def start(self, key: str | None = None, **headers: str) -> dict[str, Any]:
        status, body = self.call(
            "POST", "/audit/exports", {"since": SINCE, "until": UNTIL}, key=key, headers=headers
        )
        assert status == 202, body
        return dict(body)

    def run_queue(self) -> None:
        while self.poller.poll_once():
            pass

    def published(self, customer: str) -> int:
        return published(self.history, customer)


@pytest.fixture(scope="module")
def world(moto_server: str) -> World:
    return build_on_moto(moto_server, World)


def _download(view: dict[str, Any], target: Path) -> Path:
    target.mkdir()
    for file in view["files"]:
        assert file["url"].startswith("http://127.0.0.1"), file["url"]
        with urllib.request.urlopen(file["url"], timeout=30) as response:
            (target / file["name"]).write_bytes(response.read())
    return target


def test_an_export_started_through_the_api_downloads_and_verifies_offline(
    world: World, tmp_path: Path
) -> None:
    started = world.start()
    assert started["status"] == "PENDING"
    assert (started["since"], started["until"]) == (
        "2026-11-01T00:00:00.000000Z",
        UNTIL[:-1] + ".000000Z",
    )
    world.run_queue()
    status, view = world.call("GET", f"/audit/exports/{started['export_id']}")
    assert status == 200, view
    assert view["status"] == "SUCCEEDED", view
    assert view["count"] == world.published("acme") > 0
    names = [f["name"] for f in view["files"]]
    assert names[-1] == "manifest.json" and all(n.startswith("events-") for n in names[:-1])
    folder = _download(view, tmp_path / "export")
    assert verify_export(DirectorySink(folder)) == []
    import hashlib

    manifest = (folder / "manifest.json").read_bytes()
    assert hashlib.sha256(manifest).hexdigest() == view["manifest_sha256"]
    assert json.loads(manifest)["customer_id"] == "acme"
    lines = [json.loads(x) for n in names[:-1] for x in (folder / n).read_text().splitlines()]
    assert {line["detail"]["customer_id"] for line in lines} == {"acme"}  # never globex's
    listing = world.s3.list_objects_v2(Bucket=world.bucket, Prefix="exports/acme/")
    keys = {o["Key"] for o in listing["Contents"]}
    assert f"exports/acme/{started['export_id']}/manifest.json" in keys
    # an edited line no longer verifies
    first = folder / names[0]
    text = first.read_text().splitlines(keepends=True)
    edited = json.loads(text[0])
    edited["detail-type"] = "JobFailed" if edited["detail-type"] != "JobFailed" else "JobQueued"
    text[0] = json.dumps(edited) + "\n"
    first.write_text("".join(text))
    problems = verify_export(DirectorySink(folder))
    assert problems and problems[0].file == names[0] and problems[0].line == 1


def test_another_customers_export_is_a_404_and_holds_only_its_own_events(world: World) -> None:
    mine = world.start()
    theirs = world.start(key=world.other_key)
    world.run_queue()
    status, body = world.call("GET", f"/audit/exports/{mine['export_id']}", key=world.other_key)
    assert status == 404 and body["error"]["field"] == "export_id", body
    status, listed = world.call("GET", "/audit/exports", key=world.other_key)
    assert status == 200
    assert mine["export_id"] not in {e["export_id"] for e in listed["exports"]}
    assert listed["exports"][0]["export_id"] == theirs["export_id"]  # newest first
    status, view = world.call("GET", f"/audit/exports/{theirs['export_id']}", key=world.other_key)
    assert view["status"] == "SUCCEEDED", view
    assert view["count"] == world.published("globex")
    for file in view["files"][:-1]:
        with urllib.request.urlopen(file["url"], timeout=30) as response:
            for line in response.read().splitlines():
                assert json.loads(line)["detail"]["customer_id"] == "globex"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"until": UNTIL}, 422, "since"),
        ({"since": SINCE}, 422, "until"),
        ({"since": "2026-11-01T00:00:00", "until": UNTIL}, 422, "since"),
        ({"since": SINCE, "until": "yesterday"}, 422, "until"),
        ({"since": 0.5, "until": UNTIL}, 422, "since"),
        ({"since": UNTIL, "until": SINCE}, 422, "since"),
        ({"since": SINCE, "until": SINCE}, 422, "until"),
        ({"since": "2024-01-01T00:00:00Z", "until": "2025-06-01T00:00:00Z"}, 422, "until"),
        ({"since": "0001-01-01T00:00:00+01:00", "until": UNTIL}, 422, "since"),
        ({"since": SINCE, "until": UNTIL, "customer": "globex"}, 422, "customer"),
        ([], 422, "body"),
    ],
)
def test_bad_bodies_are_4xx_naming_the_field(
    world: World, body: Any, status: int, field: str
) -> None:
    got, answer = world.call("POST", "/audit/exports", body)
    assert got == status, answer
    assert answer["error"]["field"] == field, answer


def test_an_unreadable_body_is_a_400(world: World) -> None:
    status, answer = world.call("POST", "/audit/exports", raw="{not json")
    assert status == 400 and answer["error"]["field"] == "body"


def test_the_same_idempotency_key_returns_the_same_export(world: World) -> None:
    first = world.start(**{"Idempotency-Key": "audit-2026-q4"})
    again = world.start(**{"Idempotency-Key": "audit-2026-q4"})
    assert again["export_id"] == first["export_id"] and again["deduplicated"] is True
    status, body = world.call(
        "POST",
        "/audit/exports",
        {"since": SINCE, "until": "2026-12-01T00:00:00Z"},
        headers={"Idempotency-Key": "audit-2026-q4"},
    )
    assert status == 422 and body["error"]["field"] == "Idempotency-Key", body
    status, body = world.call(
        "POST",
        "/audit/exports",
        {"since": SINCE, "until": UNTIL},
        headers={"Idempotency-Key": "has space"},
    )
    assert status == 422 and body["error"]["field"] == "Idempotency-Key", body
    world.run_queue()


def test_an_export_whose_bucket_is_missing_is_failed_with_a_reason(world: World) -> None:
    broken = world.build_exports(unique_name("nosuchbucket"))
    view = broken.start("acme", _request())
    # the message is on the shared queue: run it with the broken files
    poller = SqsPoller(
        world.sqs,
        world.queue_url,
        make_handler(broken, world.index),
        function_name="audit-exporter",
        region="us-east-1",
    )
    while poller.poll_once():
        pass
    status, got = world.call("GET", f"/audit/exports/{view.export_id}")
    assert status == 200
    assert got["status"] == "FAILED", got
    assert got["error"]["code"] == "bucket_unavailable"
    assert "Traceback" not in got["error"]["message"]
    assert got["files"] == []


def test_export_calls_are_in_the_access_log(world: World) -> None:
    started = world.start()
    world.call("GET", f"/audit/exports/{started['export_id']}")
    day = started["created_at"][:10]
    entries = [
        json.loads(e.state) for e in world.access.select_events(stream_id_for("acme", day, "test"))
    ]
    routes = {(e["method"], e["route"], e["status"]) for e in entries}
    assert ("POST", "/audit/exports", 202) in routes
    assert ("GET", "/audit/exports/{export_id}", 200) in routes
    world.run_queue()


def _request() -> Any:
    from services.projections.audit_exports import ExportRequest

    return ExportRequest.model_validate({"since": SINCE, "until": UNTIL})


def test_the_cli_starts_follows_and_downloads_an_export_through_the_local_api_server(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The real local API server (``ferry.local.apiserver``) in front of the query API, the
    exporter polling its queue meanwhile (as ``ferry up`` runs it), and ``ferry audit exports``
    over HTTP: start --wait --download, then the offline check of the download."""
    import threading

    from ferry.cli import main
    from tests.support.edge import Edge, serve

    edge = Edge(keys=None, resolvers={"queries": world.app}, key=world.key)  # type: ignore[arg-type]
    stop = threading.Event()
    exporter = threading.Thread(target=world.poller.run, args=(stop,), daemon=True)
    with serve(edge) as url:
        monkeypatch.setenv("FERRY_API_URL", url)
        monkeypatch.setenv("FERRY_API_KEY", world.key)
        monkeypatch.setenv("FERRY_DATA_DIR", str(tmp_path / "data"))
        exporter.start()
        try:
            target = tmp_path / "download"
            capsys.readouterr()
            argv = ["audit", "exports", "start", "--since", SINCE, "--until", UNTIL]
            assert main([*argv, "--wait", "--download", str(target), "--json"]) == 0
            view = json.loads(capsys.readouterr().out)
            assert view["status"] == "SUCCEEDED"
            assert sorted(p.name for p in target.iterdir()) == sorted(
                f["name"] for f in view["files"]
            )
            assert main(["audit", "verify", "--export", str(target)]) == 0
            assert "verifies" in capsys.readouterr().out
            assert main(["audit", "exports", "show", view["export_id"], "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["export_id"] == view["export_id"]
            assert main(["audit", "exports", "list", "--json"]) == 0
            listed = json.loads(capsys.readouterr().out)["exports"]
            assert view["export_id"] in {e["export_id"] for e in listed}
            # the API's refusal, named: until before since
            assert main(["audit", "exports", "start", "--since", UNTIL, "--until", SINCE]) != 0
        finally:
            stop.set()
            exporter.join(timeout=10)
