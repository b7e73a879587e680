"""One wiring pattern and one endpoint directory (issue 13 parts 3-5), checked on the real code.

* every service's ``bootstrap`` module imports none of its entry points (handlers, push, scanner,
  consumer, ``__main__``) — the entry points import it;
* production modules define no in-memory fakes (they live in ``tests/support/fakes``), except
  the ones named below with their reason;
* nothing outside ``ferry.local`` and the CLI imports ``ferry.local``;
* jobs, routes and the executor read endpoints through ``ferry.endpoint_directory`` (one port,
  one DynamoDB adapter), and its item parsing is the one rule for all three.
"""

from __future__ import annotations

import ast
import pathlib

import grimp
import pytest

from events.contract import Direction, EndpointStatus, EndpointType
from ferry.endpoint_directory import DynamoEndpointDirectory, EndpointDirectory, EndpointInfo

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVICES = ("endpoints", "executor", "jobs", "notifications", "projections", "routes")
ENTRY_POINTS = ("handlers", "push", "scanner", "consumer", "ticker", "process_manager", "__main__")
FAKES_ALLOWED: set[tuple[str, str]] = set()
"""(module, class) of in-memory fakes still in production modules: none (issue 13)."""


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("events", "services", "ferry", "infra")


@pytest.mark.parametrize("service", SERVICES)
def test_bootstrap_imports_no_entry_point(graph: grimp.ImportGraph, service: str) -> None:
    bootstrap = f"services.{service}.bootstrap"
    imported = graph.find_modules_directly_imported_by(bootstrap)
    entry = {f"services.{service}.{name}" for name in ENTRY_POINTS}
    assert not imported & entry, f"{bootstrap} imports its entry point(s) {imported & entry}"


def test_only_local_and_the_cli_import_ferry_local(graph: grimp.ImportGraph) -> None:
    offenders = []
    for module in sorted(graph.modules):
        if module.startswith(("ferry.local", "ferry.cli")):
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            if imported == "ferry.local" or imported.startswith("ferry.local."):
                offenders.append(f"{module} -> {imported}")
    assert not offenders


def _fake_classes(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name.startswith(("InMemory", "Fake"))
    ]


def test_production_modules_hold_no_fakes() -> None:
    found = {
        (str(path.relative_to(ROOT)), name)
        for package in ("events", "services", "ferry")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "/local/" not in str(path)  # the local stack is all stand-ins by design
        for name in _fake_classes(path)
    }
    assert found - FAKES_ALLOWED == set(), "fakes belong in tests/support/fakes"


def test_one_endpoint_directory_port_for_jobs_and_routes() -> None:
    from services.jobs import ports as jobs_ports
    from services.routes import ports as routes_ports

    assert jobs_ports.EndpointDirectory is routes_ports.EndpointDirectory is EndpointDirectory
    assert jobs_ports.EndpointInfo is routes_ports.EndpointInfo is EndpointInfo


def test_no_service_defines_its_own_dynamodb_endpoint_reader() -> None:
    """The three DynamoDB readers of the endpoints read model were one each in jobs, routes and
    the executor; the executor's typed view now reads through the shared adapter."""
    readers = []
    for path in sorted((ROOT / "services").rglob("*.py")):
        text = path.read_text()
        if 'Key={"endpoint_id": {"S": endpoint_id}}, ConsistentRead=True' in text:
            readers.append(str(path.relative_to(ROOT)))
    assert readers == []


ITEM = {
    "endpoint_id": "e1",
    "customer_id": "c1",
    "type": "s3",
    "status": "ACTIVE",
    "direction": "INBOUND",
    "config": {"type": "s3", "bucket": "b", "prefix": "in"},
}


def test_a_read_model_item_is_parsed_once_for_everyone() -> None:
    info = EndpointInfo.from_item(ITEM)
    assert info == EndpointInfo(
        endpoint_id="e1",
        customer_id="c1",
        type=EndpointType.S3,
        status=EndpointStatus.ACTIVE,
        direction=Direction.INBOUND,
        config={"type": "s3", "bucket": "b", "prefix": "in"},
    )
    assert (info.bucket, info.prefix) == ("b", "in/")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"type": None}, EndpointType.S3),  # the type is also in the config
        ({"direction": None}, Direction.BOTH),
    ],
)
def test_defaults_of_an_item(change: dict[str, object], expected: object) -> None:
    item = {**ITEM, **change}
    info = EndpointInfo.from_item(item)
    assert info is not None
    assert expected in (info.type, info.direction)


@pytest.mark.parametrize(
    "change",
    [{"status": None}, {"status": "SOMETHING"}, {"customer_id": None}, {"type": "ftp"}],
)
def test_an_item_the_projection_has_not_completed_is_no_endpoint(change: dict) -> None:
    item = {k: v for k, v in {**ITEM, **change}.items() if v is not None}
    assert EndpointInfo.from_item(item) is None


class _Client:
    """Answers get_item like DynamoDB's low-level client (what the adapter calls)."""

    def __init__(self, items: dict[str, dict]) -> None:
        self.items, self.calls = items, []

    def get_item(self, **kwargs: object) -> dict:
        self.calls.append(kwargs)
        key = kwargs["Key"]["endpoint_id"]["S"]  # type: ignore[index]
        found = self.items.get(key)
        return {"Item": found} if found else {}


def test_the_adapter_reads_strongly_consistent_and_deserialises() -> None:
    from events.dynamodb_values import serialize

    client = _Client({"e1": serialize({**ITEM, "max_concurrency": 4})})
    directory = DynamoEndpointDirectory("t-endpoints", client)
    assert directory.get("e1") == EndpointInfo.from_item(ITEM)
    assert directory.item("e1")["max_concurrency"] == 4  # plain int, not Decimal
    assert directory.get("nope") is None
    assert all(
        c["ConsistentRead"] is True and c["TableName"] == "t-endpoints" for c in client.calls
    )


def test_the_executor_view_reads_through_the_shared_adapter() -> None:
    from events.dynamodb_values import serialize
    from services.executor.endpoint_access import DynamoEndpointDirectory as Views

    client = _Client({"e1": serialize({**ITEM, "name": "in", "version": 3})})
    view = Views("t-endpoints", client).get("e1")
    assert view is not None
    assert (view.endpoint_id, view.config.bucket, view.version) == ("e1", "b", 3)
    assert Views("t-endpoints", client).get("missing") is None


# --- the one cold-start helper ------------------------------------------------------------------
def test_once_builds_on_first_use_only_even_under_a_race() -> None:
    import threading
    import time

    from ferry.coldstart import once

    builds: list[int] = []

    def build() -> object:
        builds.append(1)
        time.sleep(0.05)  # a slow cold start: the other threads arrive meanwhile
        return object()

    value = once(build)
    assert builds == [] and not value.built
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(value())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and len({id(r) for r in results}) == 1
    value.reset()
    assert value() is not results[0] and len(builds) == 2


def test_entry_points_build_nothing_at_import_and_share_the_helper() -> None:
    """Every Lambda entry point is built on its first invocation by ``ferry.coldstart``.

    Checked in a fresh interpreter: other tests in this session may already have invoked a
    handler (and so built it), which says nothing about what importing it does."""
    import subprocess
    import sys

    script = """
import importlib
from ferry.coldstart import Once
for module in (
    "services.endpoints.handlers",
    "services.jobs.handlers",
    "services.routes.handlers",
    "services.projections.handlers",
    "services.projections.consumer",
    "services.routes.push",
    "services.routes.consumer",
):
    handler = importlib.import_module(module).handler
    assert isinstance(getattr(handler, "built", None), Once), module
    assert not handler.built.built, f"{module} built its service at import"
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


# --- one wiring pattern -------------------------------------------------------------------------
CONTEXTS = {
    "endpoints": ("EndpointsContext", {"app", "keys", "settings"}),
    "jobs": ("JobsContext", {"app", "keys", "settings"}),
    "routes": ("RoutesContext", {"app", "read_model", "keys", "settings"}),
    "projections": ("ProjectionsContext", {"projector", "queries", "keys", "settings"}),
    "executor": (
        "ExecutorContext",
        {"app", "endpoints", "semaphore", "job_status", "queue", "settings"},
    ),
}


@pytest.mark.parametrize("service", sorted(CONTEXTS))
def test_every_bootstrap_returns_its_frozen_context(service: str) -> None:
    import dataclasses
    import importlib
    import inspect
    import typing

    module = importlib.import_module(f"services.{service}.bootstrap")
    name, fields = CONTEXTS[service]
    context = getattr(module, name)
    assert dataclasses.is_dataclass(context) and context.__dataclass_params__.frozen
    assert {f.name for f in dataclasses.fields(context)} == fields
    assert typing.get_type_hints(module.bootstrap)["return"] is context
    params = inspect.signature(module.bootstrap).parameters.values()
    # every adapter is a keyword argument with a production default built inside
    assert all(p.default is not inspect.Parameter.empty for p in params)
