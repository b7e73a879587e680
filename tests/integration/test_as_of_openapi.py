"""``?as_of=`` on GET /endpoints/{id}, /routes/{id} and /jobs/{id} (issue 11): documented in the
merged OpenAPI document (the query parameter: a date-time, with a description; the answer's
``as_of`` and version fields), and bad values — not a timestamp, no time zone, in the future,
before the resource existed — answered 4xx naming ``as_of`` on all three, while another
customer's resource stays a 404 naming its id (an ``as_of`` tells nothing about it).

Endpoints and jobs: the query API's resolver on the DynamoDB event store (moto server), as in
tests/integration/test_audit_api.py; routes: the routes resolver on the unit tests' in-memory
world (tests/unit/test_routes.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ferry.openapi import merged_openapi
from tests.integration.test_audit_api import Api
from tests.support.moto_server import aws_environment
from tests.unit.test_routes import World, world

__all__ = ["world"]

PATHS = ("/endpoints/{endpoint_id}", "/routes/{route_id}", "/jobs/{job_id}")

Call = Callable[[str], tuple[int, Any]]


@pytest.fixture(scope="module")
def api(moto_server: str) -> Api:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in aws_environment(moto_server).items():
            patch.setenv(name, value)
        return Api()


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        resolved: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return resolved
    return schema


def _response_properties(document: dict[str, Any], path: str) -> dict[str, Any]:
    """The properties of every shape the 200 answer may take, merged."""
    schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    shapes = [_resolve(s, document) for s in schema["schema"].get("anyOf", [schema["schema"]])]
    merged: dict[str, Any] = {}
    for shape in shapes:
        merged.update(shape.get("properties") or {})
    return merged


def _date_time(schema: dict[str, Any]) -> bool:
    return any(
        branch.get("type") == "string" and branch.get("format") == "date-time"
        for branch in [schema, *schema.get("anyOf", [])]
    )


@pytest.mark.parametrize("path", PATHS)
def test_openapi_documents_as_of_and_the_answers_version(path: str) -> None:
    document = merged_openapi(refresh=True)
    parameters = document["paths"][path]["get"]["parameters"]
    [as_of] = [p for p in parameters if p["name"] == "as_of"]
    assert as_of["in"] == "query" and as_of["required"] is False
    assert _date_time(as_of["schema"])
    assert "time zone" in as_of["description"] and "future" in as_of["description"]
    properties = _response_properties(document, path)
    assert _date_time(properties["as_of"])
    versions = ("job_version", "transfer_version") if path == "/jobs/{job_id}" else ("version",)
    for name in versions:
        assert properties[name]["type"] == "integer"


def _bad_as_of_values() -> list[tuple[str, int]]:
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        ("yesterday", 400),  # not a timestamp (the query API: 422, as any bad query value)
        ("1700000000", 400),  # a Unix time is not an ISO 8601 date-time
        ("2026-11-23T00:00:00", 400),  # no time zone
        (future, 400),
        ("2000-01-01T00:00:00Z", 404),  # before the resource existed
    ]


def _calls(api: Api, world: World) -> dict[str, tuple[Call, Call]]:
    """Per resource: (the owner's GET with ?as_of=, another customer's)."""
    route_id = world.route()

    def query_api(path: str, key: str) -> Call:
        return lambda at: api.call("GET", path, {"as_of": at}, key=key)

    def routes(key: str) -> Call:
        return lambda at: world.call("GET", f"/routes/{route_id}?as_of={at}", key=key)

    return {
        "endpoint_id": (
            query_api(f"/endpoints/{api.dst}", api.key),
            query_api(f"/endpoints/{api.dst}", api.other_key),
        ),
        "job_id": (
            query_api(f"/jobs/{api.job}", api.key),
            query_api(f"/jobs/{api.job}", api.other_key),
        ),
        "route_id": (routes(world.key), routes(world.other_key)),
    }


def test_a_bad_as_of_is_a_4xx_naming_as_of_on_all_three(api: Api, world: World) -> None:
    calls = _calls(api, world)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")  # after the route's creation
    for id_field, (owner, other) in calls.items():
        status, body = owner(now)
        assert status == 200, (id_field, body)
        assert body["as_of"].startswith(now[:19]) and body.get("job_version", body.get("version"))
        for value, expected in _bad_as_of_values():
            status, body = owner(value)
            assert 400 <= status < 500, (id_field, value, status, body)
            assert status == expected or (status == 422 and expected == 400), (id_field, value)
            assert body["error"]["field"] == "as_of", (id_field, value, body)
        # another customer's resource: the same 404 as an unknown id, whatever the as_of
        for value in (now, "2000-01-01T00:00:00Z"):
            status, body = other(value)
            assert status == 404 and body["error"]["field"] == id_field, (id_field, value, body)
