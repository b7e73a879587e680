"""The query API (services/projections/handlers.py) over an in-memory read-model store."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from eventsourcing.popo import POPOAggregateRecorder

from ferry.api import issue_key
from ferry.apigw import rest_event
from services.projections.application import Projector, Queries
from services.projections.bootstrap import ProjectionsContext
from services.projections.handlers import build_app
from services.projections.samples import History, to_stored
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.fakes.projections import InMemoryReadModelStore


class Api:
    def __init__(self) -> None:
        self.history = History()
        h = self.history
        self.src = h.endpoint("acme", endpoint_type="s3")
        self.dst = h.endpoint_lifecycle("acme")
        self.jobs = [
            h.job("acme", self.src, self.dst),
            h.job("acme", self.src, self.dst, outcome="failed"),
            h.job("acme", self.src, self.dst, outcome="cancelled"),
            h.job("acme", self.src, self.dst, outcome="queued"),
            h.job("acme", self.src, self.dst, outcome="failed"),
        ]
        self.other_endpoint = h.endpoint("globex")
        self.other_job = h.job("globex", self.other_endpoint, self.other_endpoint)
        recorder = POPOAggregateRecorder()
        recorder.insert_events([to_stored(e) for e in h.events])
        store = InMemoryReadModelStore()
        projector = Projector(store, recorder)
        for event in h.events:
            projector.handle(event)
        keys = InMemoryKeyStore()
        self.key, _ = issue_key(keys, "acme")
        self.other_key, _ = issue_key(keys, "globex")
        self.app = build_app(ProjectionsContext(projector, Queries(store, recorder), keys))

    def get(
        self, path: str, query: dict[str, str] | None = None, key: str | None = None
    ) -> tuple[int, Any]:
        headers = {"x-api-key": key or self.key}
        response = self.app.resolve(rest_event("GET", path, headers=headers, query=query), None)
        return response["statusCode"], json.loads(response["body"])


@pytest.fixture(scope="module")
def api() -> Api:
    return Api()


def test_get_job_returns_the_read_model(api: Api) -> None:
    status, body = api.get(f"/jobs/{api.jobs[0]}")
    assert status == 200
    assert body["status"] == "SUCCEEDED" and body["progress_percent"] == 100.0
    assert body["flow"] == "SFTP_TO_SFTP" and body["source"]["endpoint_id"] == api.src
    assert body["bytes_committed"] == body["bytes_total"] and body["sha256"] == "a" * 64
    assert body["created_at"] and body["started_at"] and body["finished_at"]
    status, body = api.get(f"/jobs/{api.jobs[1]}")
    assert body["status"] == "FAILED" and body["error_code"] == "connection_reset"


def test_another_customers_job_and_endpoint_are_404(api: Api) -> None:
    for path in (
        f"/jobs/{api.other_job}",
        f"/jobs/{api.other_job}/events",
        f"/endpoints/{api.other_endpoint}",
        f"/endpoints/{api.other_endpoint}/events",
        "/jobs/not-a-uuid",
        "/jobs/not-a-uuid/events",
    ):
        status, body = api.get(path)
        assert status == 404, path
        assert body["error"]["code"] == "not_found"
    status, _ = api.get(f"/jobs/{api.other_job}", key=api.other_key)
    assert status == 200


def test_list_jobs_newest_first_paginated_and_only_this_customers(api: Api) -> None:
    seen: list[str] = []
    token = None
    while True:
        query = {"limit": "2", **({"next_token": token} if token else {})}
        status, body = api.get("/jobs", query)
        assert status == 200
        assert len(body["jobs"]) <= 2
        seen += [j["job_id"] for j in body["jobs"]]
        token = body.get("next_token")
        if not token:
            break
    assert seen == list(reversed(api.jobs))


def test_list_jobs_by_status_and_time(api: Api) -> None:
    status, body = api.get("/jobs", {"status": "FAILED"})
    assert status == 200
    assert [j["job_id"] for j in body["jobs"]] == [api.jobs[4], api.jobs[1]]
    created = {j["job_id"]: j["created_at"] for j in api.get("/jobs")[1]["jobs"]}
    since, until = created[api.jobs[1]], created[api.jobs[3]]
    status, body = api.get("/jobs", {"since": since, "until": until})
    assert [j["job_id"] for j in body["jobs"]] == [api.jobs[3], api.jobs[2], api.jobs[1]]
    status, body = api.get("/jobs", {"since": "2099-01-01"})  # naive = UTC
    assert status == 200 and body["jobs"] == []


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ({"status": "DONE"}, "status", 422),
        ({"since": "yesterday"}, "since", 422),
        ({"until": "2026-13-01T00:00:00Z"}, "until", 422),
        ({"since": "2026-11-23T00:00:00Z", "until": "2026-11-22T00:00:00Z"}, "since", 400),
        ({"limit": "0"}, "limit", 422),
        ({"limit": "101"}, "limit", 422),
        ({"limit": "ten"}, "limit", 422),
        ({"route_id": "r1"}, "route_id", 422),
        ({"route_id": "x" * 65}, "route_id", 422),
        ({"route_id": "0" * 64}, "route_id", 422),  # schemathesis: not a UUID, by the schema
        ({"route_id": "00000000-0000-4000-8000-0000000000AA"}, "route_id", 422),
        ({"endpoint_id": "e1"}, "endpoint_id", 422),
        ({"endpoint_id": "x" * 65}, "endpoint_id", 422),
        ({"endpoint_id": "0" * 64}, "endpoint_id", 422),
        ({"endpoint_id": "00000000-0000-4000-8000-0000000000AA"}, "endpoint_id", 422),
        (
            {
                "endpoint_id": "00000000-0000-4000-8000-0000000000aa",
                "route_id": "00000000-0000-4000-8000-0000000000bb",
            },
            "endpoint_id",
            400,
        ),
        ({"next_token": "%%%not-base64"}, "next_token", 400),
        ({"next_token": "eyJhIjoxfQ"}, "next_token", 400),
    ],
)
def test_list_jobs_rejects_bad_parameters(
    api: Api, query: dict[str, str], field: str, code: int
) -> None:
    status, body = api.get("/jobs", query)
    assert status == code, body
    assert body["error"]["field"] == field


def test_list_jobs_by_endpoint_pages_this_customers_jobs_on_either_side(api: Api) -> None:
    for endpoint in (api.src, api.dst):
        seen: list[str] = []
        token = None
        while True:
            query = {
                "endpoint_id": endpoint,
                "limit": "2",
                **({"next_token": token} if token else {}),
            }
            status, body = api.get("/jobs", query)
            assert status == 200, body
            seen += [j["job_id"] for j in body["jobs"]]
            token = body.get("next_token")
            if not token:
                break
        assert seen == list(reversed(api.jobs))
    status, body = api.get("/jobs", {"endpoint_id": api.src, "status": "FAILED"})
    assert [j["job_id"] for j in body["jobs"]] == [api.jobs[4], api.jobs[1]]
    status, body = api.get("/jobs", {"endpoint_id": api.other_endpoint})
    assert status == 200 and body == {"jobs": [], "next_token": None}
    status, body = api.get("/jobs", {"endpoint_id": api.other_endpoint}, key=api.other_key)
    assert [j["job_id"] for j in body["jobs"]] == [api.other_job]  # source and target: once


def test_the_endpoint_filter_is_in_the_openapi_document(api: Api) -> None:
    status, doc = api.get("/openapi.json")
    assert status == 200
    [param] = [p for p in doc["paths"]["/jobs"]["get"]["parameters"] if p["name"] == "endpoint_id"]
    assert param["in"] == "query" and param["schema"]["anyOf"][0]["pattern"]


def _token(key: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def test_a_tampered_next_token_cannot_page_into_another_customer(api: Api) -> None:
    _, page = api.get("/jobs", {"limit": "1"})
    padded = page["next_token"] + "=" * (-len(page["next_token"]) % 4)
    key = json.loads(base64.urlsafe_b64decode(padded))
    assert key["customer_id"] == "acme"
    forged = _token({**key, "customer_id": "globex"})
    status, body = api.get("/jobs", {"next_token": forged})
    assert status == 400 and body["error"]["field"] == "next_token"
    # another customer replaying acme's token
    status, body = api.get("/jobs", {"next_token": page["next_token"]}, key=api.other_key)
    assert status == 400
    # a token of the unfiltered index used with a status filter
    status, body = api.get("/jobs", {"next_token": page["next_token"], "status": "FAILED"})
    assert status == 400


def test_job_events_are_the_merged_audit_trail(api: Api) -> None:
    status, body = api.get(f"/jobs/{api.jobs[0]}/events")
    assert status == 200
    events = body["events"]
    types = [e["detail-type"] for e in events]
    assert types[:3] == ["JobRequested", "JobQueued", "LeaseAcquired"]
    assert types[-1] == "JobSucceeded" and "ChunkCommitted" in types
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times)
    first = events[0]
    assert set(first) >= {"event_id", "detail-type", "stream_id", "version", "occurred_at"}
    assert first["detail"]["job_id"] == api.jobs[0]
    assert len({e["event_id"] for e in events}) == len(events)


def test_endpoints_list_show_and_events(api: Api) -> None:
    status, body = api.get("/endpoints")
    assert status == 200
    assert [e["endpoint_id"] for e in body["endpoints"]] == [api.dst, api.src]
    status, body = api.get(f"/endpoints/{api.dst}")
    assert status == 200 and body["status"] == "ACTIVE" and body["config"]["port"] == 22
    status, body = api.get(f"/endpoints/{api.dst}/events")
    assert [e["detail-type"] for e in body["events"]][:2] == [
        "EndpointRegistered",
        "EndpointValidated",
    ]
    status, body = api.get("/endpoints", {"limit": "1"})
    assert len(body["endpoints"]) == 1 and body["next_token"]
    status, body = api.get("/endpoints", {"next_token": body["next_token"]}, key=api.other_key)
    assert status == 400


def test_auth_is_required_but_openapi_is_public(api: Api) -> None:
    response = api.app.resolve(rest_event("GET", "/jobs"), None)
    assert response["statusCode"] == 401
    response = api.app.resolve(rest_event("GET", "/openapi.json"), None)
    assert response["statusCode"] == 200
    document = json.loads(response["body"])
    assert "/jobs/{job_id}" in document["paths"] and "/endpoints" in document["paths"]
    response = api.app.resolve(rest_event("GET", "/swagger"), None)
    assert response["statusCode"] == 200


# --------------------------------------------------------------------------- review fixes


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
        ({"until": "9999-12-31T23:59:59-01:00"}, "until"),
    ],
)
def test_review_times_without_a_utc_equivalent_are_422(
    api: Api, query: dict[str, str], field: str
) -> None:
    status, body = api.get("/jobs", query)
    assert (status, body["error"]["field"]) == (422, field), body


def test_review_extreme_but_valid_times_are_fine(api: Api) -> None:
    status, body = api.get(
        "/jobs", {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"}
    )
    assert status == 200 and len(body["jobs"]) == len(api.jobs)


def test_review_events_routes_serve_only_their_own_stream_type(api: Api) -> None:
    job, endpoint = api.jobs[0], api.src
    assert api.get(f"/endpoints/{job}/events")[0] == 404
    assert api.get(f"/jobs/{endpoint}/events")[0] == 404
    assert api.get(f"/jobs/{job}/events")[0] == 200
    assert api.get(f"/endpoints/{endpoint}/events")[0] == 200


@pytest.mark.parametrize(
    "variant",
    [str.upper, lambda i: "{" + i + "}", lambda i: i.replace("-", ""), lambda i: "x" * 3000],
)
def test_review_non_canonical_ids_are_404(api: Api, variant: Any) -> None:
    job, endpoint = api.jobs[0], api.src
    for path in (f"/jobs/{variant(job)}", f"/jobs/{variant(job)}/events"):
        status, body = api.get(path)
        assert (status, body["error"]["code"]) == (404, "not_found"), path
    for path in (f"/endpoints/{variant(endpoint)}", f"/endpoints/{variant(endpoint)}/events"):
        status, body = api.get(path)
        assert (status, body["error"]["code"]) == (404, "not_found"), path
