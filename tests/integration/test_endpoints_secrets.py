"""The endpoints service on moto server: Secrets Manager adapter (create, rotate, revert, delete),
the event store on DynamoDB, and a scan of everything stored for secret values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from eventsourcing.persistence import OperationalError

from events.translate import stream_events
from ferry.api import issue_key
from ferry.apigw import rest_event
from services.endpoints.adapters import SecretsManagerStore
from services.endpoints.application import Credentials, EndpointsApplication
from services.endpoints.bootstrap import bootstrap
from services.endpoints.handlers import build_resolver as endpoints_resolver
from services.endpoints.settings import EndpointsSettings
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.moto_server import aws_environment, unique_name

PASSWORD = "int-Secret-Password-77"
PASSPHRASE = "int-Secret-Passphrase-88"
KEY = (
    ed25519.Ed25519PrivateKey.generate()
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )
    .decode()
)
HOST_KEY = (
    ed25519.Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    .decode()
)


@dataclass
class Service:
    app: EndpointsApplication
    resolver: Any
    key: str
    prefix: str
    events_table: str

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        response = self.resolver.resolve(
            rest_event(
                method,
                path,
                body=json.dumps(body) if body is not None else None,
                headers={"x-api-key": self.key},
            ),
            None,
        )
        return response["statusCode"], json.loads(response["body"])


@pytest.fixture(scope="module")
def service(moto_server: str) -> Iterator[Service]:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        for name, value in aws_environment(moto_server).items():
            patch.setenv(name, value)
        table = unique_name("events")
        env = {"PERSISTENCE_MODULE": "events.dynamodb", "FERRY_EVENTS_TABLE": table}
        prefix = unique_name("ferry")
        keys = InMemoryKeyStore()
        key, _ = issue_key(keys, "cust-s")
        context = bootstrap(keys=keys, env=env, settings=EndpointsSettings(prefix=prefix))
        app, resolver = context.app, endpoints_resolver(context)
        yield Service(app, resolver, key, prefix, table)


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": unique_name("s"),  # names are unique per customer
        "type": "sftp",
        "direction": "INBOUND",
        "host": "sftp.example.com",
        "username": "u1",
        "base_path": "/in",
        "host_key": HOST_KEY,
        "private_key": KEY,
        "passphrase": PASSPHRASE,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def test_register_writes_the_secret_under_the_endpoint_name(service: Service) -> None:
    status, body = service.call("POST", "/endpoints", _body())
    assert status == 201, body
    eid = body["endpoint_id"]
    arn = stream_events(service.app.recorder, eid)[0].secret_arn  # type: ignore[attr-defined]
    sm = boto3.client("secretsmanager")
    described = sm.describe_secret(SecretId=arn)
    assert described["Name"] == f"{service.prefix}/endpoints/cust-s/{eid}"
    value = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
    assert value == {
        "username": "u1",
        "private_key": KEY,
        "passphrase": PASSPHRASE,
        "password": None,
    }

    status, body = service.call("PATCH", f"/endpoints/{eid}", {"password": PASSWORD})
    assert status == 200, body
    value = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
    assert value == {
        "username": "u1",
        "private_key": None,
        "passphrase": None,
        "password": PASSWORD,
    }


def test_secrets_manager_revert_restores_the_previous_value(service: Service) -> None:
    store = SecretsManagerStore(boto3.client("secretsmanager"))
    arn = store.create(unique_name("t"), Credentials(username="a", password="one"), tags={})
    write = store.put(arn, Credentials(username="a", password="two"))
    store.revert(write)
    sm = boto3.client("secretsmanager")
    current = sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
    assert json.loads(current)["password"] == "one"
    store.delete(arn)
    with pytest.raises(ClientError):
        sm.get_secret_value(SecretId=arn)


def test_failed_append_leaves_no_orphaned_secret(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    sm = boto3.client("secretsmanager")

    def names() -> set[str]:
        found = sm.list_secrets(MaxResults=100).get("SecretList", [])
        return {s["Name"] for s in found if s["Name"].startswith(service.prefix)}

    before = names()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("event store unavailable")

    monkeypatch.setattr(service.app.recorder, "insert_events", broken)
    status, _ = service.call("POST", "/endpoints", _body())
    assert status == 500
    assert names() == before


def test_no_secret_value_in_the_event_table(service: Service) -> None:
    service.call("POST", "/endpoints", _body(private_key=None, passphrase=None, password=PASSWORD))
    status, body = service.call("POST", "/endpoints", _body())
    assert status == 201
    service.call("PATCH", f"/endpoints/{body['endpoint_id']}", {"password": PASSWORD + "x"})
    items = boto3.client("dynamodb").scan(TableName=service.events_table)["Items"]
    assert len(items) >= 3
    dump = repr(items)
    for secret in [PASSWORD, PASSPHRASE, *KEY.splitlines()[1:-1]]:
        assert secret not in dump


def test_lambda_entry_point_with_production_wiring(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``services/endpoints/handlers.py:handler`` builds everything from the environment: API
    keys table, event store (PERSISTENCE_MODULE), Secrets Manager."""
    from ferry.api import DynamoKeyStore
    from services.endpoints import handlers

    keys_table = unique_name("keys")
    DynamoKeyStore.create_table(boto3.client("dynamodb"), keys_table)
    api_key, _ = issue_key(DynamoKeyStore(keys_table, client=boto3.client("dynamodb")), "cust-l")
    monkeypatch.setenv("FERRY_API_KEYS_TABLE", keys_table)
    monkeypatch.setenv("FERRY_PREFIX", service.prefix)
    monkeypatch.setenv("PERSISTENCE_MODULE", "events.dynamodb")
    monkeypatch.setenv("FERRY_EVENTS_TABLE", service.events_table)
    monkeypatch.setattr(
        handlers,
        "handler",
        handlers.json_handler(lambda: handlers.build_resolver(handlers.bootstrap())),
    )
    event = rest_event(
        "POST", "/endpoints", body=json.dumps(_body()), headers={"x-api-key": api_key}
    )
    response = handlers.handler(event, None)
    assert response["statusCode"] == 201, response["body"]
    eid = json.loads(response["body"])["endpoint_id"]
    assert service.app.get(eid).customer_id == "cust-l"  # the same event table
    name = f"{service.prefix}/endpoints/cust-l/{eid}"
    assert boto3.client("secretsmanager").describe_secret(SecretId=name)["Name"] == name
