"""API keys have a lifecycle (issue 8, part 6): names, scopes, expiry and revocation, checked on
every request; the actor of every event records the key id and its name."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from events.translate import stream_events
from ferry.api import ApiKey, KeyAlreadyRevoked, Principal, hash_key, issue_key, parse_duration
from ferry.apigw import rest_event
from ferry.local.keys import FileBackedKeyStore, load_keys_into, read_keys
from tests.support.edge import CUSTOMER, Edge, build_edge, mutating_routes
from tests.support.fakes.keys import InMemoryKeyStore


@pytest.fixture
def edge() -> Edge:
    return build_edge()


def _get(edge: Edge, key: str) -> int:
    return edge.call("GET", "/endpoints", key=key)[0]


def test_a_revoked_key_is_401_on_the_very_next_request(edge: Edge) -> None:
    key, who = issue_key(edge.keys, CUSTOMER, name="laptop")
    assert _get(edge, key) == 200
    edge.keys.revoke(who.key_id, datetime.now(UTC))
    status, body = edge.call("GET", "/endpoints", key=key)
    assert (status, body["error"]["message"], body["error"]["field"]) == (
        401,
        "API key revoked",
        "x-api-key",
    )
    assert edge.call("POST", "/transfers", "{}", key=key)[0] == 401
    with pytest.raises(KeyAlreadyRevoked):
        edge.keys.revoke(who.key_id, datetime.now(UTC))


def test_an_expired_key_is_401_from_its_expiry_on(edge: Edge) -> None:
    now = datetime.now(UTC)
    soon, _ = issue_key(edge.keys, CUSTOMER, expires_in=timedelta(hours=1), now=now)
    gone, _ = issue_key(
        edge.keys, CUSTOMER, expires_in=timedelta(hours=1), now=now - timedelta(hours=2)
    )
    assert _get(edge, soon) == 200
    status, body = edge.call("GET", "/endpoints", key=gone)
    assert (status, body["error"]["message"]) == (401, "API key expired")


def test_expiry_is_checked_against_the_clock_of_each_request() -> None:
    from ferry.api import make_resolver

    keys = InMemoryKeyStore()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    key, _ = issue_key(keys, CUSTOMER, expires_in=parse_duration("90d"), now=start)
    clock = {"now": start}
    app = make_resolver(keys, clock=lambda: clock["now"])

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    def status() -> int:
        event = rest_event("GET", "/ping", headers={"x-api-key": key})
        return int(app.resolve(event, None)["statusCode"])

    clock["now"] = start + timedelta(days=90) - timedelta(seconds=1)
    assert status() == 200
    clock["now"] = start + timedelta(days=90)
    assert status() == 401


@pytest.mark.parametrize(("method", "template"), mutating_routes())
def test_a_read_scoped_key_is_403_on_every_mutating_route(
    edge: Edge, method: str, template: str
) -> None:
    reader, _ = issue_key(edge.keys, CUSTOMER, name="dashboard", scope="read")
    status, body = edge.call(method, template, "{}", key=reader)
    assert (status, body["error"]["code"], body["error"]["field"]) == (
        403,
        "forbidden",
        "x-api-key",
    )


def test_a_read_scoped_key_reads(edge: Edge) -> None:
    reader, _ = issue_key(edge.keys, CUSTOMER, scope="read")
    for template in ("/endpoints", "/jobs", "/routes"):
        assert edge.call("GET", template, key=reader)[0] == 200, template
    assert edge.call("GET", "/jobs/{job_id}", key=reader)[0] == 404
    # DELETE is mutating too (refused before routing, body or not)
    delete = rest_event("DELETE", f"/endpoints/{uuid4()}", headers={"x-api-key": reader})
    status = edge.resolvers["endpoints"].resolve(delete, None)["statusCode"]
    assert status == 403


def test_every_event_records_the_key_id_and_name_as_actor() -> None:
    from services.endpoints.bootstrap import bootstrap
    from services.endpoints.handlers import build_resolver as endpoints_resolver
    from services.endpoints.settings import EndpointsSettings
    from tests.support.fakes.endpoints import InMemorySecretStore

    keys = InMemoryKeyStore()
    key, who = issue_key(keys, CUSTOMER, name="deploy-bot")
    context = bootstrap(
        secrets=InMemorySecretStore(),
        keys=keys,
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        settings=EndpointsSettings(prefix="t"),
    )
    app, resolver = context.app, endpoints_resolver(context)
    body = {"name": "in", "type": "s3", "direction": "BOTH", "bucket": "landing-3"}
    event = rest_event("POST", "/endpoints", body=json.dumps(body), headers={"x-api-key": key})
    response = resolver.resolve(event, None)
    assert response["statusCode"] == 201, response["body"]
    endpoint_id = json.loads(response["body"])["endpoint_id"]
    disable = rest_event("POST", f"/endpoints/{endpoint_id}/disable", headers={"x-api-key": key})
    assert resolver.resolve(disable, None)["statusCode"] == 200
    actors = [getattr(e, "actor", None) for e in stream_events(app.recorder, endpoint_id)]
    assert actors[0] == actors[-1] == f"{who.key_id} (deploy-bot)"
    assert who.actor == f"{who.key_id} (deploy-bot)"
    assert Principal(CUSTOMER, "key-1").actor == "key-1"  # an unnamed key: its id alone


def test_durations() -> None:
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("2w") == timedelta(weeks=2)
    for bad in ("", "0d", "90", "d", "-1d", "1y", "99999d", "1.5d"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_keys_json_keeps_scope_expiry_and_revocation_and_reloads_them(tmp_path: Path) -> None:
    table = InMemoryKeyStore()
    store = FileBackedKeyStore(tmp_path, table)
    key, who = issue_key(store, CUSTOMER, name="ci", scope="read", expires_in=timedelta(days=1))
    store.revoke(who.key_id, datetime.now(UTC))
    text = (tmp_path / "keys.json").read_text()
    assert key not in text and "revoked_at" in text and '"scope": "read"' in text
    fresh = InMemoryKeyStore()  # a fresh moto server's table after `ferry up`
    assert load_keys_into(fresh, tmp_path) == 1
    record = fresh.lookup(hash_key(key))
    assert record is not None and record.principal == who
    assert record.refusal(datetime.now(UTC)) == "API key revoked"
    assert [k["key_id"] for k in read_keys(tmp_path)] == [who.key_id]


def test_records_written_before_scopes_are_write_keys_that_never_expire(tmp_path: Path) -> None:
    old = {"key_hash": hash_key("fk_old"), "customer_id": CUSTOMER, "key_id": "key-old"}
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [old]}))
    record = FileBackedKeyStore(tmp_path).lookup(hash_key("fk_old"))
    assert isinstance(record, ApiKey)
    assert record.principal.scope == "write" and record.expires_at is None
    assert record.refusal(datetime(9999, 1, 1, tzinfo=UTC)) is None
