"""services/executor/endpoint_access.py (paths, views) and the validator's message handling with
fakes (the real checks run in tests/integration/test_validator.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from events.contract import (
    Direction,
    EndpointConfig,
    EndpointStatus,
    EndpointType,
)
from events.translate import stream_events, to_put_events_entry
from services.endpoints.application import Credentials, EndpointsApplication, Registration
from services.executor.endpoint_access import (
    CredentialsUnavailable,
    EndpointView,
    InvalidPath,
    SecretsReader,
    resolve_path,
)
from tests.support.fakes.endpoints import InMemorySecretStore
from tests.support.validation import validation_loop

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def _view(**config: Any) -> EndpointView:
    cfg = EndpointConfig.model_validate(config)
    return EndpointView(
        endpoint_id="e1",
        customer_id="c",
        name="n",
        type=cfg.type,
        status=EndpointStatus.ACTIVE,
        direction=Direction.BOTH,
        max_concurrency=2,
        config=cfg,
        secret_arn="arn:secret",
        version=3,
    )


SFTP = _view(type="sftp", host="h", port=22, username="u", base_path="/data/in", host_key="x")
S3 = _view(type="s3", bucket="b", prefix="incoming")
S3_NO_PREFIX = _view(type="s3", bucket="b", prefix="")


@pytest.mark.parametrize(
    ("view", "path", "expected"),
    [
        (SFTP, "a.txt", "/data/in/a.txt"),
        (SFTP, "sub/dir/a.txt", "/data/in/sub/dir/a.txt"),
        (SFTP, "./a.txt", "/data/in/a.txt"),
        (SFTP, "/data/in/x/a.txt", "/data/in/x/a.txt"),
        (SFTP, "", "/data/in"),
        (S3, "a.txt", "incoming/a.txt"),
        (S3, "x/y.bin", "incoming/x/y.bin"),
        (S3_NO_PREFIX, "x/y.bin", "x/y.bin"),
        (_view(type="s3", bucket="b", prefix="p/"), "k", "p/k"),
    ],
)
def test_resolve_path(view: EndpointView, path: str, expected: str) -> None:
    assert resolve_path(view, path) == expected


@pytest.mark.parametrize(
    ("view", "path"),
    [
        (SFTP, "../etc/passwd"),
        (SFTP, "a/../../b"),
        (SFTP, "/etc/passwd"),
        (SFTP, "/data/inx/a"),  # a sibling that shares the prefix
        (SFTP, "a\x00b"),
        (S3, "../x"),
        (S3, "/abs"),
        (S3, "a/./b"),
        (S3, "k" * 1100),
    ],
)
def test_resolve_path_refuses_escapes(view: EndpointView, path: str) -> None:
    with pytest.raises(InvalidPath) as raised:
        resolve_path(view, path)
    assert raised.value.code == "INVALID_PATH" and not raised.value.transient


def test_view_from_read_model_item() -> None:
    item = {
        "endpoint_id": "e1",
        "customer_id": "c",
        "name": "n",
        "type": "sftp",
        "direction": "INBOUND",
        "max_concurrency": Decimal(3),
        "status": "ACTIVE",
        "config": {"host": "h", "port": Decimal(2222), "base_path": "/x", "host_key": "k"},
        "secret_arn": "arn:s",
        "version": Decimal(7),
        "validation": "ok",
    }
    view = EndpointView.from_item(item)
    assert view.type is EndpointType.SFTP and view.config.port == 2222
    assert view.max_concurrency == 3 and view.version == 7 and view.status is EndpointStatus.ACTIVE


class FakeSecretsClient:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.calls = 0

    def get_secret_value(self, SecretId: str, VersionStage: str = "AWSCURRENT") -> dict[str, Any]:
        self.calls += 1
        if SecretId not in self.values:
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "x"}}, "GetSecretValue"
            )
        return {"SecretString": json.dumps(self.values[SecretId])}


def test_secrets_reader_caches_per_version_and_uses_the_configured_username() -> None:
    client = FakeSecretsClient({"arn:secret": {"username": "old", "password": "pw-XYZZY"}})
    reader = SecretsReader(client, ttl=60)
    creds = reader.sftp_credentials(SFTP)
    assert creds.username == "u" and creds.password == "pw-XYZZY" and creds.private_key is None
    assert "XYZZY" not in repr(creds)
    reader.sftp_credentials(SFTP)
    assert client.calls == 1
    reader.sftp_credentials(SFTP, fresh=True)
    assert client.calls == 2
    with pytest.raises(CredentialsUnavailable):
        reader.read("arn:missing")


# --- the validator with fakes -----------------------------------------------------------------
class FakeS3:
    def __init__(self, buckets: dict[str, str]) -> None:
        self.buckets = buckets  # name -> "ok" | "denied-list"

    def head_bucket(self, Bucket: str) -> dict[str, Any]:
        if Bucket not in self.buckets:
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadBucket")
        return {}

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        if self.buckets[kwargs["Bucket"]] == "denied-list":
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListObjectsV2")
        assert kwargs["MaxKeys"] == 1
        return {"KeyCount": 0}


def _app_with_s3(bucket: str) -> tuple[EndpointsApplication, str]:
    app = EndpointsApplication(secrets=InMemorySecretStore(), env=POPO)
    endpoint = app.register(
        customer_id="c",
        actor="k",
        registration=Registration(
            name="s3",
            direction="BOTH",
            max_concurrency=4,
            config=EndpointConfig(type="s3", bucket=bucket, prefix="p/"),
        ),
    )
    return app, str(endpoint.id)


def _message(app: EndpointsApplication, endpoint_id: str, index: int = 0) -> str:
    event = stream_events(app.recorder, endpoint_id)[index]
    entry = to_put_events_entry(event, "bus")
    return json.dumps(
        {
            "source": entry["Source"],
            "detail-type": entry["DetailType"],
            "detail": json.loads(entry["Detail"]),
        }
    )


@pytest.mark.parametrize(
    ("buckets", "status", "reason"),
    [
        ({"good-bucket": "ok"}, EndpointStatus.ACTIVE, None),
        ({}, EndpointStatus.VALIDATION_FAILED, "BUCKET_NOT_FOUND"),
        ({"good-bucket": "denied-list"}, EndpointStatus.VALIDATION_FAILED, "ACCESS_DENIED"),
    ],
)
def test_validator_s3_verdicts_and_redelivery(
    buckets: dict[str, str], status: EndpointStatus, reason: str | None
) -> None:
    app, eid = _app_with_s3("good-bucket")
    validator = validation_loop(
        app, SecretsReader(FakeSecretsClient({})), s3_client=lambda view: FakeS3(buckets)
    )
    body = _message(app, eid)
    assert validator.handle_message(body) is True
    assert validator.handle_message(body) is None  # redelivery: nothing new
    events = stream_events(app.recorder, eid)
    assert app.get(eid).status is status
    assert len(events) == 2
    if reason:
        assert events[-1].reason_code == reason  # type: ignore[attr-defined]
    else:
        assert events[-1].checks == ["head_bucket", "list_prefix"]  # type: ignore[attr-defined]


def test_validator_ignores_unknown_and_unrelated_messages() -> None:
    app, eid = _app_with_s3("good-bucket")
    validator = validation_loop(
        app, SecretsReader(FakeSecretsClient({})), s3_client=lambda view: FakeS3({})
    )
    validator.handle_message("not json")
    validator.handle_message(json.dumps({"detail-type": "Nope", "detail": {}}))
    app.disable(customer_id="c", endpoint_id=eid, actor="k")
    validator.handle_message(_message(app, eid, index=1))  # EndpointDisabled: not for us
    assert len(stream_events(app.recorder, eid)) == 2


@pytest.mark.parametrize(
    ("allow", "code", "message"),
    [
        ("", "EGRESS_DENIED", "127.0.0.1 is not reachable under Ferry's egress policy"),
        ("127.0.0.0/8", "CONNECTION_REFUSED", "127.0.0.1:1 refused the connection"),
    ],
)
def test_validator_sftp_unreachable_is_a_stable_code_with_a_fixed_message(
    monkeypatch: pytest.MonkeyPatch, allow: str, code: str, message: str
) -> None:
    monkeypatch.setenv("FERRY_EGRESS_ALLOW", allow)  # loopback is refused unless allow-listed
    app = EndpointsApplication(secrets=InMemorySecretStore(), env=POPO)
    endpoint = app.register(
        customer_id="c",
        actor="k",
        registration=Registration(
            name="sftp",
            direction="BOTH",
            max_concurrency=4,
            config=EndpointConfig(
                type="sftp",
                host="127.0.0.1",
                port=1,  # nothing listens there
                username="u",
                base_path="/",
                host_key="SHA256:" + "C" * 43,
            ),
            credentials=Credentials(username="u", password="pw"),
        ),
    )
    arn = endpoint.secret_arn
    assert arn
    reader = SecretsReader(FakeSecretsClient({arn: {"username": "u", "password": "pw"}}))
    validator = validation_loop(app, reader, sftp_timeout=3, retry_delay_seconds=0)
    assert validator.validate(str(endpoint.id)) is True
    failed = stream_events(app.recorder, endpoint.id)[-1]
    assert failed.reason_code == code  # type: ignore[attr-defined]
    assert failed.message == message  # type: ignore[attr-defined]


def test_validator_drops_a_verdict_made_stale_by_a_concurrent_update() -> None:
    app, eid = _app_with_s3("good-bucket")

    class ChangingS3(FakeS3):
        def head_bucket(self, Bucket: str) -> dict[str, Any]:
            # While the check runs, the customer points the endpoint at another bucket.
            if app.get(eid).config["bucket"] == "good-bucket":
                app.update(customer_id="c", endpoint_id=eid, actor="k", changes={"bucket": "b2-x"})
            return super().head_bucket(Bucket)

    validator = validation_loop(
        app,
        SecretsReader(FakeSecretsClient({})),
        s3_client=lambda view: ChangingS3({"good-bucket": "ok"}),
    )
    assert validator.validate(eid) is False  # checked version 1, config changed at version 2
    assert app.get(eid).status is EndpointStatus.PENDING_VALIDATION
    assert validator.validate(eid) is True  # the EndpointUpdated message: checks version 2
    failed = stream_events(app.recorder, eid)[-1]
    assert failed.reason_code == "BUCKET_NOT_FOUND"  # type: ignore[attr-defined]
    assert app.get(eid).status is EndpointStatus.VALIDATION_FAILED
