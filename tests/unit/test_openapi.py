"""The one route table (ferry.names.API_ROUTES) matches what the handlers really serve, and the
merged OpenAPI document documents every route."""

from __future__ import annotations

import json
import re

import pytest

from ferry.names import API_HANDLERS, API_ROUTES
from ferry.openapi import merged_openapi


@pytest.fixture(scope="module")
def document(monkeypatch_module: pytest.MonkeyPatch) -> dict:
    return merged_openapi(refresh=True)


@pytest.fixture(scope="module")
def monkeypatch_module() -> pytest.MonkeyPatch:
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    yield mp
    mp.undo()


def test_every_route_of_the_table_is_documented(document: dict) -> None:
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    for method, path, _ in API_ROUTES:
        if path == "/openapi.json":
            continue
        assert (method, path) in documented, f"{method} {path} is not served by its handler"


def test_every_documented_route_is_in_the_table(document: dict) -> None:
    table = {(method, path) for method, path, _ in API_ROUTES}
    for path, ops in document["paths"].items():
        for method in ops:
            assert (method.upper(), path) in table, f"{method} {path} missing from API_ROUTES"


def test_each_route_is_served_by_the_function_the_table_names() -> None:
    import importlib

    for method, path, function in API_ROUTES:
        if path == "/openapi.json":
            continue
        resolver = importlib.import_module(API_HANDLERS[function]).handler.resolver_factory()
        rule = re.sub(r"\{(\w+)\}", r"<\1>", path)
        served = {(r.method, r.rule) for r in _routes(resolver)}
        assert any(m == method and rule_of(p) == rule for m, p in served), (method, path)


def _routes(resolver):
    class R:
        def __init__(self, method: str, rule: str) -> None:
            self.method, self.rule = method, rule

    out = []
    for route in resolver._static_routes + resolver._dynamic_routes:
        for method in route.method.split("|") if isinstance(route.method, str) else route.method:
            out.append(R(method.upper(), route.openapi_path))
    return out


def rule_of(openapi_path: str) -> str:
    return re.sub(r"\{(\w+)\}", r"<\1>", openapi_path)


def test_the_document_is_json_with_the_api_key_scheme(document: dict) -> None:
    assert json.loads(json.dumps(document))["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }


# --- the document is the truth (issue 8) ---------------------------------------------------------

BODY_OPTIONAL = {("POST", "/endpoints/{endpoint_id}/disable")}
NO_BODY = re.compile(
    r"/(enable|cancel|redrive|validate|pause|resume|test|checkpoint)$|^/routes/\{route_id\}/disable$"
)


def test_every_post_and_patch_that_takes_a_body_declares_it(document: dict) -> None:
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if method not in ("post", "patch", "put") or NO_BODY.search(path):
                continue
            body = op.get("requestBody")
            assert body is not None, f"{method.upper()} {path} declares no request body"
            assert "schema" in body["content"]["application/json"]
            assert body["required"] is ((method.upper(), path) not in BODY_OPTIONAL)


def test_every_error_status_is_documented_with_the_envelope(document: dict) -> None:
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            wanted = {"401", "404", "422", "400"}
            if method != "get":
                wanted |= {"403", "409", "413", "415"}
            assert wanted <= set(op["responses"]), (method, path)
            for status in wanted:
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                assert schema == envelope, (method, path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_ids_dates_and_required_text_are_constrained(document: dict) -> None:
    for path, ops in document["paths"].items():
        for op in ops.values():
            for parameter in op.get("parameters", []):
                if parameter["in"] == "path":
                    assert parameter["schema"]["pattern"].startswith("^[0-9a-f]{8}-"), path
    schemas = document["components"]["schemas"]
    created = schemas["JobView"]["properties"]["created_at"]
    assert {"type": "string", "format": "date-time"} in created["anyOf"]
    assert schemas["SourceRequest"]["properties"]["path"]["minLength"] == 1
    assert schemas["S3Registration"]["properties"]["name"]["minLength"] == 1
    assert schemas["S3Registration"]["properties"]["name"]["maxLength"] == 128
