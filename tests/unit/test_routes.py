"""services/routes: the API (validation), the pull scanner (stable detection, dedupe, limits,
fan-out post-action), the push consumer (idempotency) and the ledger read model — in memory."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from events import contract as c
from events.translate import to_integration
from ferry.api import issue_key
from ferry.apigw import rest_event
from services.routes.application import RoutesApplication, idempotency_key
from services.routes.bootstrap import RoutesContext
from services.routes.definition import (
    check_template,
    cron_matches,
    parse_definition,
    render,
    template_values,
)
from services.routes.domain import file_stream_id
from services.routes.handlers import build_resolver
from services.routes.ports import EndpointInfo, ObjectInfo, RouteDirectory
from services.routes.push import PushConsumer
from services.routes.readmodel import RoutesProjector
from services.routes.scanner import Scanner, ScannerPolicy
from services.routes.settings import RoutesSettings
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.fakes.routes import (
    FakeJobs,
    FakeObjects,
    FakeSource,
    InMemoryEndpointDirectory,
    InMemoryRouteIndex,
    InMemoryRoutesReadModel,
    InMemoryScanStateStore,
)

CUSTOMER = "cust-a"
STAGING = "ferry-staging"


class AppRouteDirectory(RouteDirectory):
    """Enabled routes straight from the event store (what the read model would say)."""

    def __init__(self, app: RoutesApplication) -> None:
        self.app = app
        self.ids: list[str] = []

    def enabled_routes(self, trigger: str) -> list[tuple[str, str, dict[str, Any]]]:
        out = []
        for route_id in self.ids:
            route = self.app.get_route(CUSTOMER, route_id)
            if route.enabled and route.definition["trigger"]["type"] == trigger:
                out.append((route_id, CUSTOMER, route.definition))
        return out

    def settling_routes(self) -> list[str]:
        return list(self.ids)


def _endpoint(kind: c.EndpointType, **config: Any) -> EndpointInfo:
    status = config.pop("status", c.EndpointStatus.ACTIVE)
    customer = config.pop("customer", CUSTOMER)
    return EndpointInfo(
        endpoint_id=str(uuid4()),
        customer_id=customer,
        type=kind,
        status=status,
        config={"type": kind.value, **config},
    )


@dataclass
class World:
    app: RoutesApplication
    jobs: FakeJobs
    endpoints: InMemoryEndpointDirectory
    source: FakeSource
    state: InMemoryScanStateStore
    routes: AppRouteDirectory
    scanner: Scanner
    push: PushConsumer
    objects: FakeObjects
    read_model: InMemoryRoutesReadModel
    key: str
    other_key: str
    ep: dict[str, EndpointInfo] = field(default_factory=dict)

    def call(self, method: str, path: str, body: Any = None, *, key: str | None = None) -> Any:
        resolver = build_resolver(
            RoutesContext(self.app, self.read_model, self._keys, RoutesSettings())
        )
        payload = body if isinstance(body, str) or body is None else json.dumps(body)
        query = None
        if "?" in path:
            path, qs = path.split("?", 1)
            query = dict(p.split("=", 1) for p in qs.split("&"))
        response = resolver.resolve(
            rest_event(
                method, path, body=payload, headers={"x-api-key": key or self.key}, query=query
            ),
            None,
        )
        return response["statusCode"], json.loads(response["body"])

    _keys: Any = None

    def route(self, **overrides: Any) -> str:
        definition: dict[str, Any] = {
            "name": "invoices",
            "source": {
                "endpoint_id": self.ep["sftp"].endpoint_id,
                "path": "out",
                "pattern": "*.csv",
            },
            "targets": [
                {"endpoint_id": self.ep["s3"].endpoint_id, "path_template": "in/{filename}"}
            ],
            "trigger": {"type": "schedule", "every": "1m"},
        }
        definition.update(overrides)
        route = self.app.create(CUSTOMER, "key-1", definition)
        self.routes.ids.append(route.route_id)
        return route.route_id

    def project(self, route_id: str, paths: list[str]) -> None:
        projector = RoutesProjector(self.read_model, lambda s: [])
        for event in self.app.route_events(CUSTOMER, route_id):
            projector.handle(event)
        for path in paths:
            for event in self.app.file_events(route_id, path):
                projector.handle(event)


@pytest.fixture
def world() -> World:
    endpoints = InMemoryEndpointDirectory()
    jobs = FakeJobs()
    app = RoutesApplication(
        endpoints=endpoints, jobs=jobs, staging_bucket=STAGING, index=InMemoryRouteIndex()
    )
    source = FakeSource()
    state = InMemoryScanStateStore()
    routes = AppRouteDirectory(app)
    objects = FakeObjects()
    scanner = Scanner(
        app=app,
        routes=routes,
        endpoints=endpoints,
        sources=source,
        state=state,
        job_status=jobs,
        policy=ScannerPolicy(dispatch_limit=100),
    )
    push = PushConsumer(
        app=app,
        routes=routes,
        endpoints=endpoints,
        objects=objects,
        state=state,
        staging_bucket=STAGING,
    )
    keys = InMemoryKeyStore()
    key, _ = issue_key(keys, CUSTOMER)
    other_key, _ = issue_key(keys, "cust-b")
    w = World(
        app,
        jobs,
        endpoints,
        source,
        state,
        routes,
        scanner,
        push,
        objects,
        InMemoryRoutesReadModel(),
        key,
        other_key,
    )
    w._keys = keys
    w.ep = {
        "sftp": _endpoint(c.EndpointType.SFTP, host="h", base_path="/home/p"),
        "s3": _endpoint(c.EndpointType.S3, bucket="archive", prefix="arch"),
        "s3b": _endpoint(c.EndpointType.S3, bucket="outbox", prefix=""),
        "disabled": _endpoint(c.EndpointType.S3, bucket="x", status=c.EndpointStatus.DISABLED),
        "foreign": _endpoint(c.EndpointType.S3, bucket="y", customer="cust-b"),
        "staging": _endpoint(c.EndpointType.S3, bucket=STAGING),
    }
    for endpoint in w.ep.values():
        endpoints.put(endpoint)
    return w


def _body(w: World, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "r",
        "source": {"endpoint_id": w.ep["s3b"].endpoint_id, "path": "out"},
        "targets": [{"endpoint_id": w.ep["s3"].endpoint_id, "path_template": "{filename}"}],
        "trigger": {"type": "event"},
    }
    body.update(overrides)
    return body


# ---------------------------------------------------------------------------------------------
# API and validation
# ---------------------------------------------------------------------------------------------


def test_create_get_update_disable_enable_and_events(world: World) -> None:
    status, created = world.call("POST", "/routes", _body(world))
    assert status == 201, created
    route_id = created["route_id"]
    assert created["enabled"] is True and created["source"]["pattern"] == "*"

    status, patched = world.call("PATCH", f"/routes/{route_id}", {"once_per_name": True})
    assert status == 200 and patched["once_per_name"] is True
    assert world.call("POST", f"/routes/{route_id}/disable")[1]["enabled"] is False
    assert world.call("POST", f"/routes/{route_id}/enable")[1]["enabled"] is True

    status, events = world.call("GET", f"/routes/{route_id}/events")
    assert [e["detail-type"] for e in events["items"]] == [
        "RouteCreated",
        "RouteUpdated",
        "RouteDisabled",
        "RouteEnabled",
    ]
    assert events["items"][1]["detail"]["changed"] == {"once_per_name": True}

    world.project(route_id, [])
    status, listed = world.call("GET", "/routes")
    assert [r["route_id"] for r in listed["items"]] == [route_id]
    # another customer sees nothing
    assert world.call("GET", f"/routes/{route_id}", key=world.other_key)[0] == 404
    assert world.call("GET", "/routes", key=world.other_key)[1]["items"] == []


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"colour": "red"}, 422, "colour"),
        ({"source": {"endpoint_id": "E", "path": "out", "bogus": 1}}, 422, "source.bogus"),
        ({"source": {"endpoint_id": "E", "pattern": "[abc"}}, 422, "source.pattern"),
        ({"source": {"endpoint_id": "E", "pattern": "(x", "regex": True}}, 422, "source.pattern"),
        ({"source": {"endpoint_id": "E", "min_size": 9, "max_size": 1}}, 422, "source.max_size"),
        ({"source": {"endpoint_id": "E", "path": "../up"}}, 422, "source.path"),
        (
            {"targets": [{"endpoint_id": "T", "path_template": "{nope}/x"}]},
            422,
            "targets.0.path_template",
        ),
        (
            {"targets": [{"endpoint_id": "T", "path_template": "../{filename}"}]},
            422,
            "targets.0.path_template",
        ),
        (
            {"targets": [{"endpoint_id": "T", "path_template": "/abs/{filename}"}]},
            422,
            "targets.0.path_template",
        ),
        (
            {"targets": [{"endpoint_id": "T", "path_template": "a/{yyyy!r}"}]},
            422,
            "targets.0.path_template",
        ),
        ({"targets": []}, 422, "targets"),
        ({"trigger": {"type": "schedule"}}, 422, "trigger.every"),
        ({"trigger": {"type": "schedule", "cron": "61 * * * *"}}, 422, "trigger.cron"),
        ({"trigger": {"type": "schedule", "every": "5 minutes"}}, 422, "trigger.every"),
        ({"trigger": {"type": "sometimes"}}, 422, "trigger.type"),
        ({"post_action": "move"}, 422, "move_to"),
        ({"stable": {"done_marker": "{other}.ok"}}, 422, "stable.done_marker"),
    ],
)
def test_invalid_definitions_name_the_field(
    world: World, change: dict[str, Any], status: int, field: str
) -> None:
    body = _body(world, **change)
    if "source" in change:
        body["source"] = {**change["source"], "endpoint_id": world.ep["s3b"].endpoint_id}
    if change.get("targets"):
        body["targets"] = [{**change["targets"][0], "endpoint_id": world.ep["s3"].endpoint_id}]
    got, answer = world.call("POST", "/routes", body)
    assert (got, answer["error"].get("field")) == (status, field), answer


@pytest.mark.parametrize(
    ("which", "where", "status", "field"),
    [
        ("sftp", "source", 422, "trigger.type"),  # event trigger on an SFTP source
        ("disabled", "source", 422, "source.endpoint_id"),
        ("disabled", "target", 422, "targets.0.endpoint_id"),
        ("foreign", "source", 404, "source.endpoint_id"),
        ("foreign", "target", 404, "targets.0.endpoint_id"),
        ("staging", "source", 422, "source.endpoint_id"),
        ("unknown", "target", 404, "targets.0.endpoint_id"),
    ],
)
def test_endpoint_checks(world: World, which: str, where: str, status: int, field: str) -> None:
    endpoint_id = world.ep[which].endpoint_id if which in world.ep else str(uuid4())
    body = _body(world)
    if where == "source":
        body["source"] = {"endpoint_id": endpoint_id}
    else:
        body["targets"] = [{"endpoint_id": endpoint_id}]
    got, answer = world.call("POST", "/routes", body)
    assert (got, answer["error"].get("field")) == (status, field), answer


def test_bad_json_and_patch_of_unknown_or_enabled_fields(world: World) -> None:
    assert world.call("POST", "/routes", "{nope")[0] == 400
    route_id = world.call("POST", "/routes", _body(world))[1]["route_id"]
    got, answer = world.call("PATCH", f"/routes/{route_id}", {"enabled": False})
    assert (got, answer["error"]["field"]) == (422, "enabled")
    got, answer = world.call("PATCH", f"/routes/{route_id}", {"trigger": {"type": "nope"}})
    assert (got, answer["error"]["field"]) == (422, "trigger.type")
    assert world.call("PATCH", f"/routes/{uuid4()}", {"name": "x"})[0] == 404


def test_templates_render_and_cannot_escape() -> None:
    values = template_values(
        "sub/report.final.csv", customer="acme", route="daily", when=datetime(2026, 3, 4)
    )
    assert render("{customer}/{yyyy}/{mm}/", values) == "acme/2026/03/report.final.csv"
    assert render("x/{stem}-{dd}.{ext}", values) == "x/report.final-04.csv"
    assert render("{route}/{relpath}", values) == "daily/sub/report.final.csv"
    for bad in ("../{filename}", "{filename}/../..", "/etc/{filename}", "a//{filename}", "{x}"):
        with pytest.raises(ValueError):
            check_template(bad)


def test_cron_matcher() -> None:
    monday_0905 = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
    assert cron_matches("*/5 9-17 * * 1-5", monday_0905)
    assert not cron_matches("*/5 9-17 * * 0,6", monday_0905)
    assert not cron_matches("0 * * * *", monday_0905)


# ---------------------------------------------------------------------------------------------
# Pull: stable detection, dedupe, versions, once_per_name, limits
# ---------------------------------------------------------------------------------------------

T0 = 1_800_000_000.0


def test_a_growing_file_is_dispatched_only_after_it_stops_growing(world: World) -> None:
    route_id = world.route()
    for tick, size in enumerate([10, 20, 30]):
        world.source.put("out/slow.csv", size, T0 + tick)
        assert world.scanner.tick(T0 + 60 * tick).dispatched == 0
    # unchanged for stable.checks (2) observations → dispatched exactly once
    report = world.scanner.tick(T0 + 180)
    assert report.dispatched == 1
    assert world.scanner.tick(T0 + 240).dispatched == 0
    [job] = world.jobs.requests.values()
    assert job["source"] == {
        "endpoint_id": world.ep["sftp"].endpoint_id,
        "path": "out/slow.csv",
        "version": f"30:{int(T0 + 2)}",
    }
    assert job["target"]["path"] == "in/slow.csv"
    assert job["options"]["post_action"] == "none"
    reasons = [
        (e.detail_type(), getattr(e, "reason", None))
        for e in world.app.file_events(route_id, "out/slow.csv")
    ]
    assert reasons == [
        ("FileDiscovered", None),
        ("FileSkipped", "unstable"),
        ("FileSkipped", "unstable"),
        ("FileDispatched", None),
    ]


def test_min_age_and_done_marker(world: World) -> None:
    world.route(stable={"checks": 1, "min_age": "5m", "done_marker": "{name}.done"})
    world.source.put("out/a.csv", 5, T0)
    assert world.scanner.tick(T0 + 60).skipped.get("unstable") == 1  # too young
    assert world.scanner.tick(T0 + 400).skipped.get("not_done") == 1
    world.source.put("out/a.csv.done", 0, T0)
    report = world.scanner.tick(T0 + 500)
    assert report.dispatched == 1 and "pattern" not in report.skipped  # the marker is no file


def test_dedupe_new_version_and_once_per_name(world: World) -> None:
    plain = world.route(stable={"checks": 1})
    once = world.route(stable={"checks": 1}, once_per_name=True, name="once")
    world.source.put("out/a.csv", 5, T0)
    assert world.scanner.tick(T0).dispatched == 2
    assert world.scanner.tick(T0 + 60).dispatched == 0  # same version: nothing, no events
    events_before = len(world.app.file_events(plain, "out/a.csv"))
    assert world.scanner.tick(T0 + 120).dispatched == 0
    assert len(world.app.file_events(plain, "out/a.csv")) == events_before
    world.source.put("out/a.csv", 7, T0 + 100)  # a new version
    assert world.scanner.tick(T0 + 180).dispatched == 1  # only the plain route
    assert len(world.jobs.requests) == 3
    once_ledger = world.app.ledger(once, "out/a.csv")
    assert once_ledger is not None and once_ledger.last_skip == (f"7:{int(T0 + 100)}", "duplicate")


def test_per_tick_limit_is_backpressure(world: World) -> None:
    world.scanner.policy = ScannerPolicy(dispatch_limit=3)
    world.route(stable={"checks": 1})
    for i in range(8):
        world.source.put(f"out/f{i}.csv", i, T0)
    dispatched = [world.scanner.tick(T0 + 60 * t).dispatched for t in range(4)]
    assert dispatched == [3, 3, 2, 0]
    assert len(world.jobs.requests) == 8


def test_steady_directory_costs_no_writes(world: World) -> None:
    world.route(stable={"checks": 2})
    for i in range(50):
        world.source.put(f"out/f{i}.csv", i, T0)
    world.scanner.tick(T0)
    world.scanner.tick(T0 + 60)
    writes = world.state.writes
    world.scanner.tick(T0 + 120)
    assert world.state.writes == writes


# ---------------------------------------------------------------------------------------------
# Fan-out and post-action
# ---------------------------------------------------------------------------------------------


def _fan_out(world: World) -> str:
    return world.route(
        stable={"checks": 1},
        targets=[
            {"endpoint_id": world.ep["s3"].endpoint_id, "path_template": "{customer}/{yyyy}/"},
            {"endpoint_id": world.ep["s3b"].endpoint_id, "path_template": "bank/{filename}"},
        ],
        post_action="move",
        move_to="archive",
    )


def test_post_action_only_after_every_target_succeeded(world: World) -> None:
    route_id = _fan_out(world)
    world.source.put("out/pay.csv", 5, T0)
    world.scanner.tick(T0)
    first, second = sorted(world.jobs.requests)
    assert world.jobs.requests[first]["target"]["path"] == "cust-a/2027/pay.csv"
    world.jobs.finish(first, "SUCCEEDED")
    world.scanner.tick(T0 + 60)
    assert "out/pay.csv" in world.source.files  # one target still running
    world.jobs.finish(second, "SUCCEEDED")
    world.scanner.tick(T0 + 120)
    assert "archive/pay.csv" in world.source.files and "out/pay.csv" not in world.source.files
    last = world.app.file_events(route_id, "out/pay.csv")[-1]
    assert isinstance(last, c.FilePostActionCompleted) and last.moved_to == "archive/pay.csv"


def test_one_failed_target_leaves_the_source_and_shows_the_failure(world: World) -> None:
    route_id = _fan_out(world)
    world.source.put("out/pay.csv", 5, T0)
    world.scanner.tick(T0)
    first, second = sorted(world.jobs.requests)
    world.jobs.finish(first, "SUCCEEDED")
    world.jobs.finish(second, "FAILED", "PERMISSION_DENIED")
    world.scanner.tick(T0 + 60)
    world.scanner.tick(T0 + 120)
    assert "out/pay.csv" in world.source.files
    last = world.app.file_events(route_id, "out/pay.csv")[-1]
    assert isinstance(last, c.FileDeliveryFailed) and last.failed_job_ids == [second]
    world.project(route_id, ["out/pay.csv"])
    _status, route = world.call("GET", f"/routes/{route_id}")
    assert route["status"] == "FAILING" and route["failing_files"] == ["out/pay.csv"]


def test_retry_over_http_redrives_the_failed_target_and_recovers_the_route(world: World) -> None:
    route_id = _fan_out(world)
    world.source.put("out/pay.csv", 5, T0)
    world.scanner.tick(T0)
    first, second = sorted(world.jobs.requests)
    world.jobs.finish(first, "SUCCEEDED")
    world.jobs.finish(second, "FAILED", "TARGET_EXISTS")
    world.scanner.tick(T0 + 60)
    status, body = world.call(
        "POST", f"/routes/{route_id}/files/retry", {"path": "out/pay.csv"}, key=world.other_key
    )
    assert status == 404  # another customer's route

    status, body = world.call("POST", f"/routes/{route_id}/files/retry", {"path": "out/pay.csv"})

    assert status == 202, body
    assert body["job_ids"][0] == first and body["job_ids"][1] != second
    retried = body["job_ids"][1]
    assert world.jobs.get(second).redriven_to == retried  # type: ignore[union-attr]
    world.project(route_id, ["out/pay.csv"])
    assert world.call("GET", f"/routes/{route_id}")[1]["status"] == "ENABLED"
    status, again = world.call("POST", f"/routes/{route_id}/files/retry", {"path": "out/pay.csv"})
    assert (status, again["error"]["code"]) == (409, "nothing_to_retry")
    world.jobs.finish(retried, "SUCCEEDED")
    world.scanner.tick(T0 + 120)
    world.scanner.tick(T0 + 180)
    assert "archive/pay.csv" in world.source.files and "out/pay.csv" not in world.source.files
    events = [type(e).__name__ for e in world.app.file_events(route_id, "out/pay.csv")]
    assert events[-3:] == ["FileRetried", "FileDelivered", "FilePostActionCompleted"]
    assert events.count("FilePostActionCompleted") == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "path"), ({"path": ""}, "path"), ({"path": 7}, "path"), ({"path": "x", "y": 1}, "y")],
)
def test_retry_refuses_bad_bodies(world: World, body: dict[str, Any], field: str) -> None:
    route_id = world.route()
    status, answer = world.call("POST", f"/routes/{route_id}/files/retry", body)
    assert status in (400, 422) and answer["error"]["field"] == field, answer


def test_retry_of_an_unknown_file_is_404(world: World) -> None:
    route_id = world.route()
    status, answer = world.call("POST", f"/routes/{route_id}/files/retry", {"path": "out/x"})
    assert (status, answer["error"]["field"]) == (404, "path")


def test_route_names_are_unique_per_customer(world: World) -> None:
    assert world.call("POST", "/routes", _body(world, name="daily"))[0] == 201
    status, taken = world.call("POST", "/routes", _body(world, name="daily"))
    assert (status, taken["error"]["code"], taken["error"]["field"]) == (409, "name_taken", "name")
    _, other = world.call("POST", "/routes", _body(world, name="weekly"))
    status, renamed = world.call("PATCH", f"/routes/{other['route_id']}", {"name": "daily"})
    assert status == 409, renamed


def test_a_listing_failure_shows_as_failing_with_the_reason(world: World) -> None:
    class Broken(FakeSource):
        def iter_files(self, directory: str, recursive: bool) -> Any:
            raise PermissionError(13, "Permission denied")
            yield  # a generator

    route_id = world.route()
    world.scanner.sources = Broken()
    world.scanner.tick(T0)
    world.scanner.tick(T0 + 60)
    status, route = world.call("GET", f"/routes/{route_id}")
    assert status == 200 and route["status"] == "FAILING" and route["scan_error"] == "EACCES"
    items = world.call("GET", f"/routes/{route_id}/events")[1]["items"]
    types = [e["detail-type"] for e in items]
    assert types == ["RouteCreated", "RouteScanFailed"]
    world.scanner.sources = world.source
    world.scanner.tick(T0 + 120)
    status, route = world.call("GET", f"/routes/{route_id}")
    assert route["status"] == "ENABLED" and route["scan_error"] is None


def test_one_failing_file_is_skipped_with_a_reason_and_the_rest_goes_on(world: World) -> None:
    class OneBad(FakeSource):
        def exists(self, path: str) -> bool:
            if path.startswith("out/bad"):
                raise PermissionError(13, "Permission denied")
            return super().exists(path)

    source = OneBad()
    world.scanner.sources = source
    route_id = world.route(stable={"checks": 1, "done_marker": "{name}.done"})
    for name in ("bad.csv", "good.csv", "good.csv.done"):
        source.put(f"out/{name}", 5, T0)
    report = world.scanner.tick(T0 + 60)
    assert report.dispatched == 1 and report.skipped.get("error") == 1
    world.project(route_id, ["out/bad.csv"])
    [bad] = world.read_model.files(route_id, "bad.csv", 10)
    assert (bad["reason"], bad["detail"]) == ("error", "EACCES")


def test_unrouted_objects_over_http_only_for_the_bucket_owner(world: World) -> None:
    world.route(
        source={"endpoint_id": world.ep["s3b"].endpoint_id, "path": "out"},
        trigger={"type": "event"},
    )
    world.objects.objects[("outbox", "elsewhere/x.csv")] = ObjectInfo(5, "e1", None, T0, {})
    assert world.push.handle(_s3_event("outbox", "elsewhere/x.csv", "e1")) == ["no_route"]
    owner = world.ep["s3b"].endpoint_id
    status, answer = world.call("GET", f"/endpoints/{owner}/unrouted")
    assert status == 200 and [i["key"] for i in answer["items"]] == ["elsewhere/x.csv"]
    status, _ = world.call("GET", f"/endpoints/{owner}/unrouted", key=world.other_key)
    assert status == 404


# ---------------------------------------------------------------------------------------------
# The ledger answers "why wasn't X sent?"
# ---------------------------------------------------------------------------------------------


def test_ledger_answers_why_a_file_was_not_sent(world: World) -> None:
    route_id = world.route(once_per_name=True)
    world.source.put("out/growing.csv", 1, T0)
    world.source.put("out/notes.txt", 1, T0)
    world.source.put("out/again.csv", 1, T0)
    world.scanner.tick(T0)
    world.source.put("out/growing.csv", 2, T0 + 30)
    world.scanner.tick(T0 + 60)
    world.scanner.tick(T0 + 120)  # again.csv dispatched (stable)
    world.source.put("out/again.csv", 9, T0 + 130)  # new version, but once_per_name
    world.scanner.tick(T0 + 180)
    world.scanner.tick(T0 + 240)
    paths = ["out/growing.csv", "out/notes.txt", "out/again.csv"]
    world.project(route_id, paths)

    def why(name: str) -> dict[str, Any]:
        status, answer = world.call("GET", f"/routes/{route_id}/files?name={name}")
        assert status == 200
        [item] = answer["items"]
        return item

    assert why("notes.txt")["reason"] == "pattern"
    assert why("again.csv")["reason"] == "duplicate"
    growing = why("growing.csv")
    assert [h.get("reason") for h in growing["history"]][:2] == [None, "unstable"]
    assert growing["first_seen_at"].startswith("2027-01-15")
    assert world.call("GET", f"/routes/{route_id}/files?name=x", key=world.other_key)[0] == 404


# ---------------------------------------------------------------------------------------------
# Push
# ---------------------------------------------------------------------------------------------


def _s3_event(bucket: str, key: str, etag: str, size: int = 5) -> dict[str, Any]:
    return {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "time": "2026-11-22T10:00:00Z",
        "detail": {
            "bucket": {"name": bucket},
            "object": {"key": key, "size": size, "etag": etag, "sequencer": "01"},
        },
    }


def test_push_idempotency_new_versions_and_no_loops(world: World) -> None:
    route_id = world.route(
        source={"endpoint_id": world.ep["s3b"].endpoint_id, "path": "out", "pattern": "*.csv"},
        targets=[
            {"endpoint_id": world.ep["s3b"].endpoint_id, "path_template": "delivered/{filename}"},
            {"endpoint_id": world.ep["sftp"].endpoint_id, "path_template": "{filename}"},
        ],
        trigger={"type": "event"},
    )
    world.objects.objects[("outbox", "out/a.csv")] = ObjectInfo(5, "e1", None, T0, {})
    assert world.push.handle(_s3_event("outbox", "out/a.csv", "e1")) == ["dispatched"]
    assert world.push.handle(_s3_event("outbox", "out/a.csv", "e1")) == ["duplicate"]
    assert len(world.jobs.requests) == 2
    assert world.push.handle(_s3_event("outbox", "out/a.csv", "e2")) == ["dispatched"]
    assert len(world.jobs.requests) == 4
    # the target lands in the same bucket, outside the source prefix: no route matches (and
    # the bucket's owner can see that no route took it)
    assert world.push.handle(_s3_event("outbox", "delivered/a.csv", "e1")) == ["no_route"]
    [unrouted] = world.app.unrouted(CUSTOMER, world.ep["s3b"].endpoint_id)
    assert (unrouted["key"], unrouted["reason"]) == ("delivered/a.csv", "no_route")
    # an object Ferry wrote (metadata ferry-job-id) inside the source prefix is skipped
    world.objects.objects[("outbox", "out/b.csv")] = ObjectInfo(
        5, "e3", None, T0, {"ferry-job-id": "job-1"}
    )
    assert world.push.handle(_s3_event("outbox", "out/b.csv", "e3")) == ["ferry_written"]
    assert world.push.handle(_s3_event(STAGING, "out/a.csv", "e1")) == []
    world.objects.objects[("outbox", "out/c.txt")] = ObjectInfo(5, "e4", None, T0, {})
    assert world.push.handle(_s3_event("outbox", "out/c.txt", "e4")) == ["pattern"]
    assert len(world.jobs.requests) == 4
    assert set(world.jobs.route_of.values()) == {route_id}


def test_push_idempotency_key_is_deterministic() -> None:
    a = idempotency_key("r", 0, "t", "bucket", "key", "etag")
    assert a == idempotency_key("r", 0, "t", "bucket", "key", "etag")
    assert a != idempotency_key("r", 1, "t", "bucket", "key", "etag")
    assert a != idempotency_key("r", 0, "t", "bucket", "key", "etag2")
    assert len(a) < 255 and " " not in a


# ---------------------------------------------------------------------------------------------
# Read model order-safety and the contract
# ---------------------------------------------------------------------------------------------


def test_projection_is_idempotent_and_catches_up_out_of_order(world: World) -> None:
    route_id = world.route(stable={"checks": 1})
    world.source.put("out/a.csv", 1, T0)
    world.scanner.tick(T0)
    events = world.app.file_events(route_id, "out/a.csv")
    store = InMemoryRoutesReadModel()
    projector = RoutesProjector(store, lambda stream_id: events)
    assert projector.handle(events[-1]) == "caught_up"
    assert projector.handle(events[0]) == "duplicate"
    item = store.get(route_id, "file#out/a.csv")
    assert item is not None and item["status"] == "dispatched" and item["version"] == len(events)
    assert str(file_stream_id(route_id, "out/a.csv")) == events[0].stream_id


def test_every_emitted_domain_event_translates_to_the_contract(world: World) -> None:
    route_id = _fan_out(world)
    world.app.update(CUSTOMER, "k", route_id, {"name": "renamed"})
    world.app.disable(CUSTOMER, "k", route_id)
    world.app.enable(CUSTOMER, "k", route_id)
    world.source.put("out/a.csv", 1, T0)
    world.source.put("out/b.txt", 1, T0)
    world.scanner.tick(T0)
    for job_id in list(world.jobs.requests):
        world.jobs.finish(job_id, "SUCCEEDED")
    world.scanner.tick(T0 + 60)
    seen = set()
    for stream in (
        world.app.recorder.select_events(world.app.get_route(CUSTOMER, route_id).id),
        world.app.recorder.select_events(file_stream_id(route_id, "out/a.csv")),
        world.app.recorder.select_events(file_stream_id(route_id, "out/b.txt")),
    ):
        for stored in stream:
            event = to_integration(stored)
            assert event is not None
            seen.add(event.detail_type())
    assert {
        "RouteCreated",
        "RouteUpdated",
        "RouteDisabled",
        "RouteEnabled",
        "FileDiscovered",
        "FileSkipped",
        "FileDispatched",
        "FilePostActionCompleted",
    } <= seen


def test_parse_definition_defaults() -> None:
    definition = parse_definition(
        {
            "name": "n",
            "source": {"endpoint_id": "s"},
            "targets": [{"endpoint_id": "t"}],
            "trigger": {"type": "event"},
        }
    )
    assert definition.stable.checks == 2 and definition.targets[0].path_template == "{filename}"


# ---------------------------------------------------------------------------------------------
# Review fixes
# ---------------------------------------------------------------------------------------------


def test_review_regex_route_cannot_freeze_the_scanner(world: World) -> None:
    import time

    from services.routes.definition import SourceDef

    source = SourceDef(endpoint_id="e", pattern="^(a+)+$", regex=True)
    started = time.perf_counter()
    assert source.matches("in/" + "a" * 40 + "b") is False
    assert source.matches("a" * 5000) is False  # over the name bound: never fed to the engine
    assert time.perf_counter() - started < 0.5
    assert SourceDef(endpoint_id="e", pattern=r"^inv_\d+\.csv$", regex=True).matches("inv_1.csv")
    # RE2 has no backreferences: refused at validation, naming the field
    body = _body(world, source={"endpoint_id": world.ep["s3b"].endpoint_id, "pattern": r"(a)\1"})
    body["source"]["regex"] = True
    got, answer = world.call("POST", "/routes", body)
    assert (got, answer["error"].get("field")) == (422, "source.pattern"), answer


@pytest.mark.parametrize(
    ("source", "top", "field"),
    [
        ({"min_size": 10**40}, {}, "source.min_size"),
        ({"max_size": 5 * 1024**4 + 1}, {}, "source.max_size"),
        ({"min_size": True}, {}, "source.min_size"),
        ({"max_size": 1.5}, {}, "source.max_size"),
        ({}, {"max_attempts": True}, "max_attempts"),
        ({}, {"stable": {"checks": True}}, "stable.checks"),
        ({}, {"stable": {"min_age": "999999999999999999999d"}}, "stable.min_age"),
        ({}, {"trigger": {"type": "schedule", "every": "31d"}}, "trigger.every"),
    ],
)
def test_review_numeric_fields_are_bounded_strict_ints(
    world: World, source: dict[str, Any], top: dict[str, Any], field: str
) -> None:
    body = _body(world, **top)
    body["source"] = {**body["source"], **source}
    got, answer = world.call("POST", "/routes", body)
    assert (got, answer["error"].get("field")) == (422, field), answer


def test_review_sizes_accept_plain_integers(world: World) -> None:
    body = _body(world, max_attempts=3)
    body["source"] = {**body["source"], "min_size": 0, "max_size": 5 * 1024**4}
    got, answer = world.call("POST", "/routes", body)
    assert got == 201, answer
    assert answer["source"]["max_size"] == 5 * 1024**4


@pytest.mark.parametrize("limit", ["²", "٣", "0", "1001", "-1", "1e3", "99999999999"])
def test_review_files_limit_must_be_ascii_digits(world: World, limit: str) -> None:
    route_id = world.call("POST", "/routes", _body(world))[1]["route_id"]
    got, answer = world.call("GET", f"/routes/{route_id}/files?limit={limit}")
    assert (got, answer["error"].get("field")) == (422, "limit"), answer
    assert world.call("GET", f"/routes/{route_id}/files?limit=7")[0] == 200


def test_review_non_canonical_route_ids_are_404(world: World) -> None:
    route_id = world.call("POST", "/routes", _body(world))[1]["route_id"]
    assert world.call("GET", f"/routes/{route_id}")[0] == 200
    for variant in (route_id.upper(), route_id.replace("-", ""), "x" * 3000):
        assert world.call("GET", f"/routes/{variant}")[0] == 404
        assert world.call("GET", f"/routes/{variant}/events")[0] == 404


def test_review_lone_surrogates_in_a_route_body_are_422(world: World) -> None:
    raw = json.dumps(_body(world))[:-1] + ', "name": "bad \\udfff"}'
    got, answer = world.call("POST", "/routes", raw)
    assert (got, answer["error"].get("field")) == (422, "name"), answer


def test_a_push_failure_is_explained_in_the_ledger_and_the_message_is_redelivered(
    world: World,
) -> None:
    class Throttled(Exception):
        response = {"Error": {"Code": "SlowDown"}}  # the shape of a botocore ClientError

    class Flaky(FakeObjects):
        def head(self, bucket: str, key: str, endpoint: Any = None) -> ObjectInfo | None:
            raise Throttled("raw library text that is never shown")

    route_id = world.route(
        source={"endpoint_id": world.ep["s3b"].endpoint_id, "path": "out"},
        trigger={"type": "event"},
    )
    world.push.objects = Flaky()
    with pytest.raises(Throttled):
        world.push.handle(_s3_event("outbox", "out/a.csv", "e1"))
    world.project(route_id, ["out/a.csv"])
    [item] = world.read_model.files(route_id, "a.csv", 10)
    assert (item["reason"], item["detail"]) == ("error", "SlowDown")
    world.push.objects = world.objects  # redelivered once S3 answers again: dispatched
    world.objects.objects[("outbox", "out/a.csv")] = ObjectInfo(5, "e1", None, T0, {})
    assert world.push.handle(_s3_event("outbox", "out/a.csv", "e1")) == ["dispatched"]


def test_a_push_route_being_created_makes_the_message_wait(world: World) -> None:
    from services.routes.application import RetryLater

    # the index entry is written before the route's event: an event between the two waits
    world.app.index.add_bucket("outbox", str(uuid4()), CUSTOMER, world.app.clock())
    with pytest.raises(RetryLater):
        world.push.handle(_s3_event("outbox", "out/a.csv", "e1"))


def test_a_push_on_a_validating_source_waits_and_on_a_failed_one_is_unrouted(
    world: World,
) -> None:
    from dataclasses import replace

    from services.routes.application import RetryLater

    world.route(
        source={"endpoint_id": world.ep["s3b"].endpoint_id, "path": "out"},
        trigger={"type": "event"},
    )
    world.objects.objects[("outbox", "out/a.csv")] = ObjectInfo(5, "e1", None, T0, {})
    s3b = world.ep["s3b"]
    world.push.cache_seconds = 0
    world.endpoints.put(replace(s3b, status=c.EndpointStatus.PENDING_VALIDATION))
    with pytest.raises(RetryLater):
        world.push.handle(_s3_event("outbox", "out/a.csv", "e1"))
    world.endpoints.put(replace(s3b, status=c.EndpointStatus.VALIDATION_FAILED))
    assert world.push.handle(_s3_event("outbox", "out/a.csv", "e1")) == ["source_not_active"]
    assert world.jobs.requests == {}


def test_a_disabled_routes_dispatched_files_still_get_their_outcome(world: World) -> None:
    route_id = _fan_out(world)
    world.source.put("out/pay.csv", 5, T0)
    world.scanner.tick(T0)
    assert world.call("POST", f"/routes/{route_id}/disable")[0] == 200
    for job_id in world.jobs.requests:
        world.jobs.finish(job_id, "SUCCEEDED")
    world.scanner.tick(T0 + 60)
    last = world.app.file_events(route_id, "out/pay.csv")[-1]
    assert isinstance(last, c.FilePostActionCompleted)


def test_a_route_made_before_name_claims_still_holds_its_name(world: World) -> None:
    # a route from before claims existed: in the event store and the read model, no claim
    legacy = world.app.create(CUSTOMER, "key-1", _body(world, name="legacy"))
    world.app.index.release_name(CUSTOMER, "legacy", legacy.route_id)
    world.project(legacy.route_id, [])
    world.app.listed_names = lambda customer: [
        (i["route_id"], i["name"]) for i in world.read_model.routes_of(customer)
    ]
    status, body = world.call("POST", "/routes", _body(world, name="legacy"))
    assert (status, body["error"]["code"]) == (409, "name_taken")
    assert world.call("POST", "/routes", _body(world, name="fresh"))[0] == 201


def test_an_object_for_a_disabled_push_route_is_unrouted_with_that_reason(world: World) -> None:
    route_id = world.route(
        source={"endpoint_id": world.ep["s3b"].endpoint_id, "path": "out"},
        trigger={"type": "event"},
    )
    world.app.disable(CUSTOMER, "key-1", route_id)  # a moment ago: the read model may lag
    world.objects.objects[("outbox", "out/a.csv")] = ObjectInfo(5, "e1", None, T0, {})
    assert world.push.handle(_s3_event("outbox", "out/a.csv", "e1")) == ["route_disabled"]
    assert world.jobs.requests == {}
    [entry] = world.app.unrouted(CUSTOMER, world.ep["s3b"].endpoint_id)
    assert entry["reason"] == "route_disabled" and route_id in entry["detail"]


def test_a_push_from_a_bucket_no_longer_granted_is_unrouted_not_in_the_ledger(
    world: World,
) -> None:
    route_id = world.route(
        source={"endpoint_id": world.ep["s3b"].endpoint_id, "path": "out"},
        trigger={"type": "event"},
    )
    world.objects.objects[("outbox", "out/a.csv")] = ObjectInfo(5, "e1", None, T0, {})
    world.objects.refused[world.ep["s3b"].endpoint_id] = "bucket outbox is not granted"
    assert world.push.handle(_s3_event("outbox", "out/a.csv", "e1")) == ["source_not_active"]
    assert world.jobs.requests == {} and world.app.ledger(route_id, "out/a.csv") is None
