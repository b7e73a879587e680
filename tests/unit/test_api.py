"""The HTTP edge every handler shares: auth, the error envelope, payload limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from ferry.api import (
    MAX_BODY_BYTES,
    Conflict,
    FerryResolver,
    NotFound,
    hash_key,
    issue_key,
    make_resolver,
    principal,
)
from ferry.apigw import rest_event
from tests.support.fakes.keys import InMemoryKeyStore


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    size: int = Field(ge=1)


@pytest.fixture
def keys() -> InMemoryKeyStore:
    return InMemoryKeyStore()


@pytest.fixture
def api(keys: InMemoryKeyStore) -> FerryResolver:
    app = make_resolver(keys)

    @app.post("/things")
    def create(body: Thing) -> dict[str, Any]:
        return {"customer": principal(app).customer_id, "name": body.name}

    @app.get("/things/<thing_id>")
    def get(thing_id: str) -> dict[str, Any]:
        raise NotFound(f"no thing {thing_id}", field="thing_id")

    @app.post("/things/<thing_id>/lock")
    def lock(thing_id: str) -> dict[str, Any]:
        raise Conflict("already locked")

    @app.get("/boom")
    def boom() -> dict[str, Any]:
        raise RuntimeError("secret-internal-detail")

    return app


def call(
    api: FerryResolver, method: str, path: str, key: str | None, body: Any = None
) -> tuple[int, Any]:
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    headers = {"x-api-key": key} if key else {}
    response = api.resolve(rest_event(method, path, body=raw, headers=headers), None)
    return response["statusCode"], json.loads(response["body"])


def test_a_valid_key_maps_to_its_customer(api: FerryResolver, keys: InMemoryKeyStore) -> None:
    key, who = issue_key(keys, "acme")
    found = keys.lookup(hash_key(key))
    assert found is not None and found.principal == who
    assert call(api, "POST", "/things", key, {"name": "a", "size": 1}) == (
        200,
        {"customer": "acme", "name": "a"},
    )


@pytest.mark.parametrize("key", [None, "fk_not-a-real-key"])
def test_missing_or_unknown_key_is_401_before_validation(
    api: FerryResolver, key: str | None
) -> None:
    status, body = call(api, "POST", "/things", key, {"bogus": True})
    assert status == 401
    assert body["error"]["code"] == "unauthorized" and body["error"]["field"] == "x-api-key"


def test_errors_use_one_envelope_with_the_field(api: FerryResolver, keys: InMemoryKeyStore) -> None:
    key, _ = issue_key(keys, "acme")
    status, body = call(api, "POST", "/things", key, {"name": "a", "size": 0})
    assert status == 422 and body["error"]["field"] == "size"
    status, body = call(api, "POST", "/things", key, {"name": "a", "size": 1, "extra": 1})
    assert status == 422 and body["error"]["field"] == "extra"
    status, body = call(api, "POST", "/things", key, "{not json")
    assert status == 400 and body["error"]["code"] == "invalid_json"
    assert call(api, "GET", "/things/7", key)[1]["error"] == {
        "code": "not_found",
        "message": "no thing 7",
        "field": "thing_id",
    }
    assert call(api, "POST", "/things/7/lock", key)[0] == 409
    assert call(api, "GET", "/nowhere", key)[0] == 404


def test_bodies_over_256_kb_are_413(api: FerryResolver, keys: InMemoryKeyStore) -> None:
    key, _ = issue_key(keys, "acme")
    status, body = call(api, "POST", "/things", key, "x" * (MAX_BODY_BYTES + 1))
    assert status == 413 and body["error"]["code"] == "payload_too_large"


def test_unexpected_errors_are_500_without_details(
    api: FerryResolver, keys: InMemoryKeyStore
) -> None:
    key, _ = issue_key(keys, "acme")
    status, body = call(api, "GET", "/boom", key)
    assert status == 500 and "secret-internal-detail" not in json.dumps(body)
