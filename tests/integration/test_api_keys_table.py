"""The API keys table over moto server: the admin CLI (``ferry keys create|list|revoke``) and the
store every API function reads — a revocation is seen by the next request (no cache)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from ferry import cli
from ferry.api import DynamoKeyStore, hash_key, issue_key, make_resolver
from ferry.apigw import rest_event
from ferry.names import ResourceNames
from tests.support.moto_server import unique_name


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    try:
        payload = json.loads(captured.out) if captured.out.strip() else None
    except ValueError:
        payload = captured.out
    return code, payload, captured.err


@pytest.fixture
def table(aws_env: dict[str, str]) -> DynamoKeyStore:
    client = boto3.client("dynamodb")
    DynamoKeyStore.create_table(client, ResourceNames().api_keys_table)
    return DynamoKeyStore(ResourceNames().api_keys_table, client=client)


def test_keys_create_list_revoke(
    table: DynamoKeyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    customer = unique_name("cust")
    base = ("--data-dir", str(tmp_path), "--json")
    code, created, _ = _run(
        capsys,
        "keys",
        "create",
        customer,
        "--name",
        "ci",
        "--expires-in",
        "90d",
        "--scope",
        "read",
        *base,
    )
    assert code == 0
    assert created["scope"] == "read" and created["name"] == "ci"
    assert created["api_key"].startswith("fk_") and created["expires_at"]
    record = table.lookup(hash_key(created["api_key"]))
    assert record is not None and record.principal.scope == "read"
    assert record.expires_at is not None and record.refusal(datetime.now(UTC)) is None

    code, listed, _ = _run(capsys, "keys", "list", "--customer", customer, *base)
    assert code == 0 and listed["count"] == 1
    row = listed["keys"][0]
    assert set(row) == {
        "key_id",
        "name",
        "customer_id",
        "scope",
        "created_at",
        "expires_at",
        "revoked_at",
    }
    assert row["revoked_at"] is None
    assert created["api_key"] not in json.dumps(listed)  # never a secret
    assert hash_key(created["api_key"]) not in json.dumps(listed)

    code, revoked, _ = _run(capsys, "keys", "revoke", created["key_id"], *base)
    assert code == 0 and revoked["revoked_at"]
    record = table.lookup(hash_key(created["api_key"]))
    assert record is not None and record.refusal(datetime.now(UTC)) == "API key revoked"
    assert "revoked_at" in (tmp_path / "keys.json").read_text()

    code, _, err = _run(capsys, "keys", "revoke", created["key_id"], *base)
    assert code == 1 and "already revoked" in err
    code, _, err = _run(capsys, "keys", "revoke", "key-000000000000", *base)
    assert code == 1 and "no API key" in err


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (("keys", "create", "acme", "--expires-in", "90 days"), "--expires-in"),
        (("keys", "create", "acme", "--expires-in", "0d"), "--expires-in"),
        (("keys", "create", "ac\nme"), "customer"),
        (("keys", "create", "acme", "--name", "x" * 129), "--name"),
        (("keys", "revoke", "nonsense"), "key_id"),
    ],
)
def test_bad_arguments_are_clear_errors_with_a_non_zero_exit(
    table: DynamoKeyStore,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    field: str,
) -> None:
    code, _, err = _run(capsys, *argv, "--data-dir", str(tmp_path), "--json")
    assert code == 2
    assert json.loads(err)["error"]["field"] == field


def test_a_bad_scope_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["keys", "create", "acme", "--scope", "admin"])
    assert exit_.value.code == 2


def test_revocation_is_seen_by_the_next_request_in_every_process(table: DynamoKeyStore) -> None:
    key, who = issue_key(table, unique_name("cust"), name="svc")
    # two "Lambda instances", each with its own store over the same table
    first = make_resolver(DynamoKeyStore(table._table, client=boto3.client("dynamodb")))
    second = make_resolver(DynamoKeyStore(table._table, client=boto3.client("dynamodb")))
    for app in (first, second):

        @app.get("/ping")
        def ping() -> dict[str, str]:
            return {"ok": "yes"}

    def status(app: Any) -> int:
        return int(
            app.resolve(rest_event("GET", "/ping", headers={"x-api-key": key}), None)["statusCode"]
        )

    assert (status(first), status(second)) == (200, 200)
    table.revoke(who.key_id, datetime.now(UTC))
    assert (status(first), status(second)) == (401, 401)


def test_items_without_scope_or_expiry_are_write_keys_that_never_expire(
    table: DynamoKeyStore,
) -> None:
    digest = hash_key("fk_" + unique_name("legacy"))
    boto3.client("dynamodb").put_item(
        TableName=table._table,
        Item={
            "key_hash": {"S": digest},
            "customer_id": {"S": "legacy"},
            "key_id": {"S": "key-legacy"},
            "created_at": {"S": "2025-01-01T00:00:00+00:00"},
        },
    )
    record = table.lookup(digest)
    assert record is not None
    assert (record.principal.scope, record.expires_at, record.revoked_at) == ("write", None, None)
