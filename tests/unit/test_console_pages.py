"""The console and docs pages (ferry.console) as the queries function serves them, and the two
query routes the console needs (GET /me, GET /stats/hourly)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ferry.apigw import rest_event
from ferry.console import CONSOLE_CSP, STATIC
from services.projections import readmodels
from services.projections.readmodels import JOBS
from services.projections.stats import hourly_stats, stats_deltas
from tests.support.fakes.projections import InMemoryReadModelStore
from tests.unit.test_projections_api import Api


@pytest.fixture(scope="module")
def api() -> Api:
    return Api()


def page(api: Api, path: str, resource: str | None = None) -> dict[str, Any]:
    response = api.app.resolve(rest_event("GET", path, resource=resource), None)
    headers = dict(response.get("headers") or {})
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name] = values[-1]
    return {**response, "headers": headers}


def test_the_console_is_served_without_a_key_with_a_strict_policy(api: Api) -> None:
    response = page(api, "/console")
    assert response["statusCode"] == 200
    headers = response["headers"]
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"] == CONSOLE_CSP
    assert "'unsafe-inline'" not in CONSOLE_CSP and "script-src 'self'" in CONSOLE_CSP
    assert "Set-Cookie" not in headers and "set-cookie" not in json.dumps(response).lower()
    assert 'src="console/console.js"' in response["body"]
    js = page(api, "/console/console.js", "/console/{asset_name}")
    assert js["statusCode"] == 200 and js["headers"]["Content-Type"].startswith("text/javascript")
    assert "sessionStorage" in js["body"] and "x-api-key" in js["body"]


def test_root_redirects_to_the_console(api: Api) -> None:
    response = page(api, "/")
    assert response["statusCode"] == 302 and response["headers"]["Location"] == "console"


@pytest.mark.parametrize("name", ["nope.js", "..%2Fconsole.html", ".hidden", "__init__.py"])
def test_only_the_files_that_are_there(api: Api, name: str) -> None:
    response = page(api, f"/console/{name}", "/console/{asset_name}")
    assert response["statusCode"] == 404


def test_docs_is_vendored_swagger_ui(api: Api) -> None:
    for path in ("/docs", "/swagger"):
        response = page(api, path)
        assert response["statusCode"] == 200, path
        assert "docs/swagger-ui-bundle.js" in response["body"]
        assert "/openapi.json" in response["body"]
    bundle = page(api, "/docs/swagger-ui-bundle.js", "/docs/{asset_name}")
    assert bundle["statusCode"] == 200 and len(bundle["body"]) > 1_000_000


def test_no_asset_loads_anything_from_another_origin() -> None:
    for path in STATIC.rglob("*"):
        if path.suffix not in (".html", ".js", ".css") or "swagger-ui" in path.name:
            continue
        text = path.read_text()
        # src/href attributes and url(...) never name a host
        assert not re.search(r"""(src|href)=["']https?:""", text), path
        assert not re.search(r"url\(\s*['\"]?https?:", text), path
        assert not re.search(r"fetch\(\s*['\"]https?:", text), path


def test_me_names_the_caller(api: Api) -> None:
    status, body = api.get("/me")
    assert status == 200
    assert body["customer_id"] == "acme" and body["scope"] == "write" and body["key_id"]
    assert not any("fk_" in str(v) for v in body.values())  # never the key itself


def test_hourly_stats_are_the_callers_jobs_only(api: Api) -> None:
    status, body = api.get("/stats/hourly")
    assert status == 200
    assert len(body["hours"]) == 24 and "truncated" not in body
    status, other = api.get("/stats/hourly", key=api.other_key)
    assert status == 200
    assert body["total_jobs"] != other["total_jobs"] or body["total_jobs"] == 0
    status, bad = api.get("/stats/hourly", {"hours": "0"})
    assert status == 422 and bad["error"]["field"] == "hours"


def test_hourly_stats_buckets_by_hour_and_status() -> None:
    store = InMemoryReadModelStore()
    now = datetime(2026, 3, 4, 12, 30, tzinfo=UTC)

    def job(n: int, at: datetime, status: str, committed: int, customer: str = "acme") -> None:
        item = {
            "job_id": f"00000000-0000-0000-0000-{n:012d}",
            "customer_id": customer,
            "customer_status": readmodels.customer_status(customer, status),
            "created_at": readmodels.timestamp(at),
            "status": status,
            "bytes_committed": committed,
            "version": 1,
        }
        store.put(JOBS, item, None, stats_deltas(None, item))  # as the projector writes it

    job(1, now - timedelta(minutes=5), "SUCCEEDED", 100)
    job(2, now - timedelta(minutes=20), "FAILED", 10)
    job(3, now - timedelta(hours=2, minutes=1), "SUCCEEDED", 1000)
    job(4, now - timedelta(hours=30), "SUCCEEDED", 5)  # outside the window
    job(5, now - timedelta(minutes=1), "SUCCEEDED", 7, customer="globex")
    stats = hourly_stats(store, "acme", hours=24, now=now)
    assert stats.total_jobs == 3 and stats.failed_jobs == 1 and stats.bytes_moved == 1110
    last, two_ago = stats.hours[-1], stats.hours[-3]
    assert last.hour == "2026-03-04T12:00:00+00:00"
    assert last.by_status == {"SUCCEEDED": 1, "FAILED": 1} and last.bytes_moved == 110
    assert two_ago.by_status == {"SUCCEEDED": 1} and two_ago.bytes_moved == 1000
