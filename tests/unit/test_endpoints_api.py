"""The endpoints HTTP API, through the real Powertools resolver, on in-memory eventsourcing and a
fake Secrets Manager (services/endpoints)."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from eventsourcing.persistence import OperationalError

from events.translate import stream_events
from ferry.api import MAX_BODY_BYTES, issue_key
from ferry.apigw import rest_event
from services.endpoints.application import EndpointsApplication
from services.endpoints.bootstrap import bootstrap
from services.endpoints.handlers import build_resolver as endpoints_resolver
from services.endpoints.settings import EndpointsSettings
from tests.support.fakes.endpoints import InMemorySecretStore
from tests.support.fakes.keys import InMemoryKeyStore

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
PASSWORD = "pw-Very-Secret-0xC0FFEE"
PASSPHRASE = "pp-Very-Secret-0xBEEF"


# --- key material -------------------------------------------------------------------------------
def _openssh_private(key: Any, passphrase: str | None = None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
    ).decode()


def _public_line(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


ED_KEY = ed25519.Ed25519PrivateKey.generate()
PRIVATE_KEY = _openssh_private(ED_KEY)
ENCRYPTED_KEY = _openssh_private(ed25519.Ed25519PrivateKey.generate(), PASSPHRASE)
RSA_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    .decode()
)
HOST_KEY = _public_line(ed25519.Ed25519PrivateKey.generate()) + " host@example"
ECDSA_HOST_KEY = _public_line(ec.generate_private_key(ec.SECP256R1()))
FINGERPRINT = "SHA256:" + "A" * 43
SECRET_VALUES = [
    PASSWORD,
    PASSPHRASE,
    *PRIVATE_KEY.splitlines()[1:-1],
    *ENCRYPTED_KEY.splitlines()[1:-1],
]


# --- harness -------------------------------------------------------------------------------------
@dataclass
class Api:
    app: EndpointsApplication
    resolver: Any
    secrets: InMemorySecretStore
    key: str
    key_id: str
    other_key: str
    responses: list[str]

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = "default",
        raw: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        headers = {}
        if key is not None:
            headers["x-api-key"] = self.key if key == "default" else key
        text = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = self.resolver.resolve(rest_event(method, path, body=text, headers=headers), None)
        self.responses.append(response["body"])
        return response["statusCode"], json.loads(response["body"])

    def register(self, **overrides: Any) -> dict[str, Any]:
        status, body = self.call("POST", "/endpoints", sftp_body(**overrides))
        assert status == 201, body
        return body

    def events(self, endpoint_id: str) -> list[Any]:
        return stream_events(self.app.recorder, endpoint_id)


def sftp_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "partner sftp",
        "type": "sftp",
        "direction": "BOTH",
        "host": "sftp.example.com",
        "port": 2222,
        "username": "ferry",
        "base_path": "/data/in",
        "host_key": HOST_KEY,
        "password": PASSWORD,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def s3_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "landing",
        "type": "s3",
        "direction": "OUTBOUND",
        "bucket": "ferry-landing-1",
        "prefix": "incoming/",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def api() -> Api:
    keys = InMemoryKeyStore()
    key, principal = issue_key(keys, "cust-a")
    other_key, _ = issue_key(keys, "cust-b")
    secrets = InMemorySecretStore()
    context = bootstrap(
        secrets=secrets, keys=keys, env=POPO, settings=EndpointsSettings(prefix="test")
    )
    app, resolver = context.app, endpoints_resolver(context)
    return Api(app, resolver, secrets, key, principal.key_id, other_key, [])


def _error(body: dict[str, Any]) -> dict[str, Any]:
    assert "error" in body, body
    return body["error"]


# --- POST /endpoints -----------------------------------------------------------------------------
def test_register_sftp_returns_201_pending_and_hides_credentials(api: Api) -> None:
    body = api.register()
    assert body["status"] == "PENDING_VALIDATION"
    assert body["auth_method"] == "password"
    assert body["has_credentials"] is True
    assert body["host_key"] == " ".join(HOST_KEY.split()[:2])  # comment dropped
    assert body["port"] == 2222 and body["base_path"] == "/data/in"
    assert body["max_concurrency"] == 4
    assert body["created_at"] and body["updated_at"]
    for forbidden in ("password", "private_key", "passphrase", "secret_arn"):
        assert forbidden not in body

    [registered] = api.events(body["endpoint_id"])
    assert registered.detail_type() == "EndpointRegistered"
    assert registered.actor == api.key_id
    assert registered.customer_id == "cust-a"
    assert registered.correlation_id == body["endpoint_id"] == registered.endpoint_id
    assert registered.config.auth_method == "password"
    assert registered.secret_arn and registered.secret_arn.startswith("arn:aws:secretsmanager:")
    name = api.secrets.names[registered.secret_arn]
    assert name == f"test/endpoints/cust-a/{body['endpoint_id']}"
    assert api.secrets.value(registered.secret_arn) == {
        "username": "ferry",
        "private_key": None,
        "passphrase": None,
        "password": PASSWORD,
    }


def test_register_s3_defaults(api: Api) -> None:
    status, body = api.call("POST", "/endpoints", s3_body(prefix=None, region="eu-west-1"))
    assert status == 201, body
    assert body["type"] == "s3" and body["bucket"] == "ferry-landing-1"
    assert body["prefix"] == "" and body["region"] == "eu-west-1"
    assert body["has_credentials"] is False and body["auth_method"] is None
    [registered] = api.events(body["endpoint_id"])
    assert registered.secret_arn is None
    assert not api.secrets.names


@pytest.mark.parametrize(
    ("overrides", "auth"),
    [
        ({"password": None, "private_key": PRIVATE_KEY}, "private_key"),
        ({"password": None, "private_key": ENCRYPTED_KEY, "passphrase": PASSPHRASE}, "private_key"),
        ({"password": None, "private_key": RSA_PEM}, "private_key"),
        ({"host_key": ECDSA_HOST_KEY}, "password"),
        ({"host_key": FINGERPRINT}, "password"),
        ({"host": "10.0.0.7", "port": None}, "password"),
    ],
)
def test_register_sftp_variants(api: Api, overrides: dict[str, Any], auth: str) -> None:
    body = api.register(**overrides)
    assert body["auth_method"] == auth
    if "port" in overrides:
        assert body["port"] == 22


def test_base_path_is_normalised(api: Api) -> None:
    assert api.register(base_path="/data//in/./x/")["base_path"] == "/data/in/x"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (sftp_body(colour="red"), 422, "colour"),
        (sftp_body(bucket="some-bucket"), 422, "bucket"),
        (s3_body(host="example.com"), 422, "host"),
        (s3_body(password="x"), 422, "password"),
        (sftp_body(host_key="not a key"), 422, "host_key"),
        (sftp_body(host_key="ssh-ed25519 !!!notbase64"), 422, "host_key"),
        (sftp_body(host_key="ssh-rsa " + HOST_KEY.split()[1]), 422, "host_key"),  # type mismatch
        (sftp_body(host_key="ssh-foo AAAA"), 422, "host_key"),
        (sftp_body(host_key="SHA256:tooShort"), 422, "host_key"),
        (sftp_body(host_key="SHA256:" + "A" * 44), 422, "host_key"),
        (sftp_body(host_key=None), 422, "host_key"),
        (
            sftp_body(
                password=None,
                private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----",
            ),
            422,
            "private_key",
        ),
        (sftp_body(password=None, private_key="hello"), 422, "private_key"),
        (
            sftp_body(password=None, private_key=ENCRYPTED_KEY, passphrase="wrong-one"),
            422,
            "passphrase",
        ),
        (sftp_body(password=None, private_key=ENCRYPTED_KEY), 422, "passphrase"),
        (
            sftp_body(password=None, private_key=PRIVATE_KEY, passphrase="unneeded"),
            422,
            "passphrase",
        ),
        (sftp_body(private_key=PRIVATE_KEY), 422, "password"),  # both
        (sftp_body(password=None), 422, "private_key"),  # neither
        (sftp_body(passphrase="x"), 422, "passphrase"),  # passphrase with a password
        (s3_body(bucket="ab"), 422, "bucket"),
        (s3_body(bucket="Upper-Case"), 422, "bucket"),
        (s3_body(bucket="a..b-c"), 422, "bucket"),
        (s3_body(bucket="192.168.1.1"), 422, "bucket"),
        (s3_body(bucket="-leading"), 422, "bucket"),
        (s3_body(bucket="under_score"), 422, "bucket"),
        (s3_body(prefix="/abs"), 422, "prefix"),
        (s3_body(prefix="a/../b"), 422, "prefix"),
        (s3_body(region="Mars"), 422, "region"),
        (sftp_body(base_path="relative/dir"), 422, "base_path"),
        (sftp_body(base_path="/data/../etc"), 422, "base_path"),
        (sftp_body(base_path="/data\x00x"), 422, "base_path"),
        (sftp_body(host="bad host!"), 422, "host"),
        (sftp_body(port=70000), 422, "port"),
        (sftp_body(username="has space"), 422, "username"),
        (sftp_body(max_concurrency=0), 422, "max_concurrency"),
        (sftp_body(max_concurrency=65), 422, "max_concurrency"),
        (sftp_body(direction="SIDEWAYS"), 422, "direction"),
        (sftp_body(type="ftp"), 422, "type"),
        (sftp_body(name=""), 422, "name"),
        ({"name": "x"}, 422, "type"),
        ([1, 2], 400, "body"),
    ],
)
def test_register_rejects_bad_input_naming_the_field(
    api: Api, body: Any, status: int, field: str
) -> None:
    code, response = api.call("POST", "/endpoints", body)
    assert code == status, response
    assert _error(response)["field"] == field
    assert not api.secrets.names  # nothing written on a rejected request


def test_register_invalid_json_is_400(api: Api) -> None:
    status, body = api.call("POST", "/endpoints", raw="{not json")
    assert status == 400 and _error(body)["field"] == "body"
    status, body = api.call("POST", "/endpoints", raw="")
    assert status == 400 and _error(body)["field"] == "body"


def test_body_too_large_is_413(api: Api) -> None:
    status, body = api.call("POST", "/endpoints", sftp_body(name="x" * (MAX_BODY_BYTES + 1)))
    assert status == 413 and _error(body)["code"] == "payload_too_large"


@pytest.mark.parametrize("key", [None, "fk_unknown"])
def test_missing_or_unknown_api_key_is_401(api: Api, key: str | None) -> None:
    endpoint_id = api.register()["endpoint_id"]
    for method, path, body in [
        ("POST", "/endpoints", sftp_body()),
        ("PATCH", f"/endpoints/{endpoint_id}", {"name": "x"}),
        ("POST", f"/endpoints/{endpoint_id}/disable", None),
        ("POST", f"/endpoints/{endpoint_id}/enable", None),
    ]:
        status, response = api.call(method, path, body, key=key)
        assert status == 401, (method, path, response)
        assert _error(response)["field"] == "x-api-key"


def test_error_messages_never_echo_secrets(api: Api) -> None:
    api.call("POST", "/endpoints", sftp_body(private_key=ENCRYPTED_KEY, passphrase=PASSPHRASE))
    api.call(
        "POST",
        "/endpoints",
        sftp_body(password=None, private_key=ENCRYPTED_KEY, passphrase=PASSPHRASE + "x"),
    )
    api.call("POST", "/endpoints", sftp_body(password=PASSWORD * 100))
    for text in api.responses:
        for secret in SECRET_VALUES:
            assert secret not in text


# --- PATCH /endpoints/{id} -------------------------------------------------------------------
def test_patch_settings_records_what_changed_and_who(api: Api) -> None:
    endpoint_id = api.register()["endpoint_id"]
    status, body = api.call(
        "PATCH", f"/endpoints/{endpoint_id}", {"name": "renamed", "max_concurrency": 2, "port": 22}
    )
    assert status == 200, body
    assert body["name"] == "renamed" and body["max_concurrency"] == 2 and body["port"] == 22
    assert body["status"] == "PENDING_VALIDATION"
    updated = api.events(endpoint_id)[-1]
    assert updated.detail_type() == "EndpointUpdated"
    assert updated.changed == {"name": "renamed", "max_concurrency": 2, "port": 22}
    assert updated.credentials_rotated is False
    assert updated.actor == api.key_id


def test_patch_rotates_credentials_without_publishing_them(api: Api) -> None:
    endpoint_id = api.register()["endpoint_id"]
    arn = api.events(endpoint_id)[0].secret_arn
    status, body = api.call(
        "PATCH",
        f"/endpoints/{endpoint_id}",
        {"private_key": ENCRYPTED_KEY, "passphrase": PASSPHRASE, "username": "ferry2"},
    )
    assert status == 200, body
    assert body["auth_method"] == "private_key"
    assert "private_key" not in body and "passphrase" not in body
    updated = api.events(endpoint_id)[-1]
    assert updated.credentials_rotated is True
    assert updated.changed == {"auth_method": "private_key", "username": "ferry2"}
    assert updated.secret_arn == arn
    assert api.secrets.value(arn) == {
        "username": "ferry2",
        "private_key": ENCRYPTED_KEY,
        "passphrase": PASSPHRASE,
        "password": None,
    }


def test_patch_with_no_change_records_nothing(api: Api) -> None:
    endpoint_id = api.register()["endpoint_id"]
    status, body = api.call("PATCH", f"/endpoints/{endpoint_id}", {"port": 2222, "type": "sftp"})
    assert status == 200 and body["version"] == 1
    assert len(api.events(endpoint_id)) == 1


@pytest.mark.parametrize(
    ("patch", "status", "field"),
    [
        ({"type": "s3"}, 422, "type"),
        ({"bucket": "other-bucket"}, 422, "bucket"),
        ({"colour": "red"}, 422, "colour"),
        ({"name": None}, 422, "name"),
        ({"host_key": "nope"}, 422, "host_key"),
        ({"base_path": "../x"}, 422, "base_path"),
        ({"private_key": PRIVATE_KEY, "password": "x"}, 422, "password"),
        ({"passphrase": "x"}, 422, "passphrase"),
        ({"private_key": ENCRYPTED_KEY, "passphrase": "wrong"}, 422, "passphrase"),
    ],
)
def test_patch_rejects_bad_input(api: Api, patch: dict[str, Any], status: int, field: str) -> None:
    endpoint_id = api.register()["endpoint_id"]
    code, body = api.call("PATCH", f"/endpoints/{endpoint_id}", patch)
    assert code == status, body
    assert _error(body)["field"] == field
    assert len(api.events(endpoint_id)) == 1


def test_patch_s3_endpoint(api: Api) -> None:
    _, created = api.call("POST", "/endpoints", s3_body(region="eu-west-1"))
    endpoint_id = created["endpoint_id"]
    status, body = api.call("PATCH", f"/endpoints/{endpoint_id}", {"region": None, "prefix": "x/"})
    assert status == 200, body
    assert "region" not in body and body["prefix"] == "x/"
    status, body = api.call("PATCH", f"/endpoints/{endpoint_id}", {"password": "pw"})
    assert status == 422 and _error(body)["field"] == "password"
    status, body = api.call("PATCH", f"/endpoints/{endpoint_id}", {"host": "example.com"})
    assert status == 422 and _error(body)["field"] == "host"


# --- not found / isolation ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("PATCH", "", {"name": "x"}), ("POST", "/disable", None), ("POST", "/enable", None)],
)
def test_unknown_or_foreign_endpoint_is_404(api: Api, method: str, suffix: str, body: Any) -> None:
    endpoint_id = api.register()["endpoint_id"]
    for path_id, key in [
        (str(uuid.uuid4()), "default"),
        ("not-a-uuid", "default"),
        (endpoint_id, api.other_key),  # another customer's endpoint: 404, never 403
    ]:
        status, response = api.call(method, f"/endpoints/{path_id}{suffix}", body, key=key)
        assert status == 404, response
        assert _error(response)["code"] == "not_found"
    assert len(api.events(endpoint_id)) == 1


# --- disable / enable ---------------------------------------------------------------------------
def test_disable_and_enable_are_idempotent(api: Api) -> None:
    endpoint_id = api.register()["endpoint_id"]
    status, body = api.call("POST", f"/endpoints/{endpoint_id}/disable", {"reason": "maintenance"})
    assert status == 200 and body["status"] == "DISABLED"
    status, body = api.call("POST", f"/endpoints/{endpoint_id}/disable")
    assert status == 200 and body["status"] == "DISABLED"  # no-op, no second event
    status, body = api.call("POST", f"/endpoints/{endpoint_id}/enable")
    assert status == 200 and body["status"] == "PENDING_VALIDATION"  # never validated
    status, body = api.call("POST", f"/endpoints/{endpoint_id}/enable")
    assert status == 200 and body["status"] == "PENDING_VALIDATION"
    kinds = [e.detail_type() for e in api.events(endpoint_id)]
    assert kinds == ["EndpointRegistered", "EndpointDisabled", "EndpointEnabled"]
    disabled = api.events(endpoint_id)[1]
    assert disabled.actor == api.key_id and disabled.reason == "maintenance"


def test_disable_rejects_unknown_fields(api: Api) -> None:
    endpoint_id = api.register()["endpoint_id"]
    status, body = api.call("POST", f"/endpoints/{endpoint_id}/disable", {"why": "x"})
    assert status == 422 and _error(body)["field"] == "why"


# --- secrets: ordering and undo ---------------------------------------------------------------
def test_failed_append_deletes_the_new_secret(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    insert = api.app.recorder.insert_events
    calls: list[int] = []

    def broken_after_the_claim(stored_events: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # the name claim is appended first, then the endpoint's event
            raise OperationalError("event store unavailable")
        return insert(stored_events, **kwargs)

    monkeypatch.setattr(api.app.recorder, "insert_events", broken_after_the_claim)
    status, body = api.call("POST", "/endpoints", sftp_body())
    assert status == 500, body
    assert len(api.secrets.deleted) == 1
    assert not api.secrets.names  # no orphaned secret
    # the claim was released: the name is free at once
    assert api.call("POST", "/endpoints", sftp_body())[0] == 201


def test_failed_append_reverts_a_rotation(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint_id = api.register()["endpoint_id"]
    arn = api.events(endpoint_id)[0].secret_arn
    assert arn

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("event store unavailable")

    monkeypatch.setattr(api.app.recorder, "insert_events", broken)
    status, _ = api.call("PATCH", f"/endpoints/{endpoint_id}", {"password": "new-password-1"})
    assert status == 500
    assert api.secrets.value(arn)["password"] == PASSWORD


def test_secret_write_failure_appends_nothing(api: Api) -> None:
    api.secrets.fail_next.add("create")
    status, _ = api.call("POST", "/endpoints", sftp_body())
    assert status == 500
    assert not api.app.recorder.select_events(uuid.uuid4())  # sanity
    assert not api.secrets.names


# --- no secret anywhere ------------------------------------------------------------------------
def test_no_secret_in_events_responses_or_logs(
    api: Api, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    first = api.register(password=None, private_key=ENCRYPTED_KEY, passphrase=PASSPHRASE)
    second = api.register(name="partner sftp 2")
    api.call("PATCH", f"/endpoints/{first['endpoint_id']}", {"password": PASSWORD + "2"})
    api.call("PATCH", f"/endpoints/{second['endpoint_id']}", {"private_key": PRIVATE_KEY})
    api.call("PATCH", f"/endpoints/{second['endpoint_id']}", {"private_key": "bad", "name": "n"})
    api.call("POST", f"/endpoints/{first['endpoint_id']}/disable")
    api.app.record_validation(first["endpoint_id"], 3, True, checks=["connect"])

    stored = b"".join(
        s.state
        for e in (first, second)
        for s in api.app.recorder.select_events(uuid.UUID(e["endpoint_id"]))
    ).decode()
    published = json.dumps(
        [e.model_dump(mode="json") for x in (first, second) for e in api.events(x["endpoint_id"])]
    )
    logs = caplog.text + capsys.readouterr().out
    written = api.secrets.all_values()
    assert PASSWORD in written and PASSPHRASE in written  # the test can see them...
    for secret in [*SECRET_VALUES, PASSWORD + "2", *PRIVATE_KEY.splitlines()[1:-1]]:
        for where, text in [
            ("stored", stored),
            ("published", published),
            ("responses", "".join(api.responses)),
            ("logs", logs),
        ]:
            assert secret not in text, f"a secret leaked into {where}"


# --- review fixes -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"reason":"\\udfff"}', "reason"),
        ("[1,2,3]", "body"),
        ("1", "body"),
        ('"maintenance"', "body"),
        ('{"reason": 5}', "reason"),
        ('{"reason": "' + "x" * 501 + '"}', "reason"),
        ('{"why": "x"}', "why"),
    ],
)
def test_review_disable_body_is_validated(api: Api, raw: str, field: str) -> None:
    endpoint_id = api.register()["endpoint_id"]
    status, body = api.call("POST", f"/endpoints/{endpoint_id}/disable", raw=raw)
    assert (status, _error(body).get("field")) == (422, field), body
    assert [e.detail_type() for e in api.events(endpoint_id)] == ["EndpointRegistered"]


def test_review_disable_with_null_or_no_body_has_no_reason(api: Api) -> None:
    endpoint_id = api.register()["endpoint_id"]
    status, body = api.call("POST", f"/endpoints/{endpoint_id}/disable", raw="null")
    assert status == 200 and body["status"] == "DISABLED"
    assert api.events(endpoint_id)[1].reason is None


def test_review_lone_surrogates_are_422_naming_the_field(api: Api) -> None:
    raw = json.dumps(sftp_body())[:-1] + ', "name": "bad \\ud800 name"}'
    status, body = api.call("POST", "/endpoints", raw=raw)
    assert (status, _error(body).get("field")) == (422, "name"), body
    endpoint_id = api.register()["endpoint_id"]
    status, body = api.call("PATCH", f"/endpoints/{endpoint_id}", raw='{"name":"\\udfff"}')
    assert (status, _error(body).get("field")) == (422, "name"), body


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"port": True}, "port"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"port": 22.0}, "port"),
        ({"port": "22"}, "port"),
    ],
)
def test_review_ints_are_strict(api: Api, overrides: dict[str, Any], field: str) -> None:
    status, body = api.call("POST", "/endpoints", sftp_body(**overrides))
    assert (status, _error(body).get("field")) == (422, field), body
    endpoint_id = api.register()["endpoint_id"]
    status, body = api.call("PATCH", f"/endpoints/{endpoint_id}", overrides)
    assert (status, _error(body).get("field")) == (422, field), body
