"""The endpoint validator against moto server (event store on DynamoDB, Secrets Manager, S3,
EventBridge → SQS) and a real OpenSSH sshd on 127.0.0.1.

Endpoints are registered through the real HTTP handler (bootstrap with the production Secrets
Manager adapter); the validator reads the endpoint as the projections fold it and stores its
verdict (EndpointCheckCompleted) on the same event table, as it would in the executor process;
the verdict reaches the endpoints application as its consumer hands it on
(``tests/support/validation.py``; the worker tests go through EventBridge → SQS → the consumer's
Lambda handler, and through the real endpoints read-model table).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from events.contract import EndpointStatus
from events.translate import stream_events, to_put_events_entry
from ferry.api import issue_key
from ferry.apigw import rest_event
from ferry.names import RULES, ResourceNames
from services.endpoints.application import EndpointsApplication
from services.endpoints.bootstrap import bootstrap, build_application
from services.endpoints.handlers import build_resolver as endpoints_resolver
from services.endpoints.settings import EndpointsSettings, TenancySettings
from services.executor.domain import endpoint_check_id
from services.executor.endpoint_access import S3Access, SecretsReader
from services.executor.validator import ValidatorWorker
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.moto_server import aws_environment, unique_name
from tests.support.sshd import TEST_PASSWORD, SshdServer
from tests.support.validation import ValidationLoop, validation_loop


def _other_host_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


@dataclass
class Stack:
    app: EndpointsApplication  # the API's application
    resolver: Any
    validator: ValidationLoop  # the data plane's, on the same event table
    key: str
    prefix: str
    env: dict[str, str]
    operator_key: str = ""  # the operator customer's key (may use untagged buckets)

    def register(self, body: dict[str, Any], *, key: str | None = None) -> str:
        response = self.resolver.resolve(
            rest_event(
                "POST", "/endpoints", body=json.dumps(body), headers={"x-api-key": key or self.key}
            ),
            None,
        )
        assert response["statusCode"] == 201, response["body"]
        return str(json.loads(response["body"])["endpoint_id"])

    def patch(self, endpoint_id: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.resolver.resolve(
            rest_event(
                "PATCH",
                f"/endpoints/{endpoint_id}",
                body=json.dumps(body),
                headers={"x-api-key": self.key},
            ),
            None,
        )
        assert response["statusCode"] == 200, response["body"]
        return dict(json.loads(response["body"]))

    def message(self, endpoint_id: str, index: int = -1) -> str:
        """The SQS body EventBridge would deliver for one of the endpoint's events."""
        event = stream_events(self.app.recorder, endpoint_id)[index]
        entry = to_put_events_entry(event, "bus")
        return json.dumps(
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "source": entry["Source"],
                "detail-type": entry["DetailType"],
                "detail": json.loads(entry["Detail"]),
            }
        )

    def validate(self, endpoint_id: str) -> Any:
        self.validator.handle_message(self.message(endpoint_id))
        return stream_events(self.app.recorder, endpoint_id)[-1]

    def status(self, endpoint_id: str) -> EndpointStatus:
        return self.app.get(endpoint_id).status


@pytest.fixture(scope="module")
def module_aws_env(moto_server: str) -> Iterator[dict[str, str]]:
    """aws_env for the whole module (building applications costs ~1 s of botocore loading, so
    the stack is built once; endpoints are separate streams, so tests don't interfere)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        variables = aws_environment(moto_server)
        for name, value in variables.items():
            patch.setenv(name, value)
        yield variables


@pytest.fixture(scope="module")
def stack(module_aws_env: dict[str, str]) -> Stack:
    env = {"PERSISTENCE_MODULE": "events.dynamodb", "FERRY_EVENTS_TABLE": unique_name("events")}
    prefix = unique_name("ferry")
    settings = EndpointsSettings(prefix=prefix)
    keys = InMemoryKeyStore()
    key, _ = issue_key(keys, "cust-int")
    operator_key, _ = issue_key(keys, OPERATOR)
    context = bootstrap(keys=keys, env=env, settings=settings)
    app, resolver = context.app, endpoints_resolver(context)
    tenancy = TenancySettings(
        prefix=prefix,
        operator_customer=OPERATOR,
        bucket_grants={"cust-int": [GRANTED_BUCKET]},
        tag_cache_seconds=0,  # so a tag removed between two validations is seen at once
    )
    validator = validation_loop(
        build_application(env=env, settings=settings),
        SecretsReader(boto3.client("secretsmanager")),
        env=env,
        sftp_timeout=5.0,
        retry_delay_seconds=0.1,
        s3_client=S3Access(tenancy).client_for,
    )
    return Stack(app, resolver, validator, key, prefix, env, operator_key)


OPERATOR = "cust-operator"
GRANTED_BUCKET = unique_name("granted")


def tag_bucket(bucket: str, value: str | None) -> None:
    """Create ``bucket`` if needed and set (or, with None, remove) its ferry:customer tag."""
    s3 = boto3.client("s3")
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    if value is None:
        s3.delete_bucket_tagging(Bucket=bucket)
    else:
        s3.put_bucket_tagging(
            Bucket=bucket, Tagging={"TagSet": [{"Key": "ferry:customer", "Value": value}]}
        )


def sftp_endpoint(server: SshdServer, base_path: Path | str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": unique_name("sshd"),  # names are unique per customer
        "type": "sftp",
        "direction": "BOTH",
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "base_path": str(base_path),
        "host_key": server.host_key_line,
        "private_key": server.private_key_text,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


# --- SFTP -----------------------------------------------------------------------------------
def test_good_sftp_endpoint_becomes_active(stack: Stack, sshd: SshdServer, sftp_dir: Path) -> None:
    eid = stack.register(sftp_endpoint(sshd, sftp_dir))
    assert stack.status(eid) is EndpointStatus.PENDING_VALIDATION
    validated = stack.validate(eid)
    assert validated.detail_type() == "EndpointValidated", validated
    assert validated.checks == ["connect", "host_key", "authenticate", "stat_base_path"]
    assert validated.host_key_fingerprint == sshd.host_key_fingerprint
    assert stack.status(eid) is EndpointStatus.ACTIVE
    # Redelivery of the same message: no second check, no second event.
    logins = sshd.accepted_logins()
    stack.validator.handle_message(stack.message(eid, 0))
    assert len(stream_events(stack.app.recorder, eid)) == 2
    assert sshd.accepted_logins() == logins


@pytest.mark.parametrize(
    "overrides",
    [
        {"private_key": None, "password": TEST_PASSWORD},
        {"host_key": "fingerprint"},
        {"private_key": "encrypted", "passphrase": "passphrase"},
        {"private_key": "rsa"},
    ],
    ids=["password", "sha256-pin", "encrypted-key", "rsa-pem"],
)
def test_sftp_auth_variants_become_active(
    stack: Stack, sshd: SshdServer, sftp_dir: Path, overrides: dict[str, Any]
) -> None:
    resolved = dict(overrides)
    if overrides.get("host_key") == "fingerprint":
        resolved["host_key"] = sshd.host_key_fingerprint
    if overrides.get("private_key") == "encrypted":
        resolved["private_key"] = sshd.encrypted_private_key_text
        resolved["passphrase"] = sshd.key_passphrase
    if overrides.get("private_key") == "rsa":
        resolved["private_key"] = sshd.rsa_private_key_text
    eid = stack.register(sftp_endpoint(sshd, sftp_dir, **resolved))
    event = stack.validate(eid)
    assert event.detail_type() == "EndpointValidated", event
    assert stack.status(eid) is EndpointStatus.ACTIVE


def test_wrong_host_key_fails_without_authenticating(
    stack: Stack, sshd: SshdServer, sftp_dir: Path
) -> None:
    logins = sshd.accepted_logins()
    eid = stack.register(sftp_endpoint(sshd, sftp_dir, host_key=_other_host_key()))
    failed = stack.validate(eid)
    assert failed.detail_type() == "EndpointValidationFailed"
    assert failed.reason_code == "HOST_KEY_MISMATCH"
    assert stack.status(eid) is EndpointStatus.VALIDATION_FAILED
    assert sshd.accepted_logins() == logins  # no credential was ever sent


def test_wrong_password_is_auth_failed_then_rotation_fixes_it(
    stack: Stack, sshd: SshdServer, sftp_dir: Path
) -> None:
    wrong = "not-the-password-42"
    eid = stack.register(sftp_endpoint(sshd, sftp_dir, private_key=None, password=wrong))
    failed = stack.validate(eid)
    assert failed.reason_code == "AUTH_FAILED", failed
    assert wrong not in failed.message and TEST_PASSWORD not in failed.message
    assert stack.status(eid) is EndpointStatus.VALIDATION_FAILED

    body = stack.patch(eid, {"password": TEST_PASSWORD})
    assert body["status"] == "PENDING_VALIDATION"
    validated = stack.validate(eid)  # fresh credentials: the rotated secret is read
    assert validated.detail_type() == "EndpointValidated", validated
    assert stack.status(eid) is EndpointStatus.ACTIVE


def test_untrusted_key_is_auth_failed(stack: Stack, sshd: SshdServer, sftp_dir: Path) -> None:
    eid = stack.register(sftp_endpoint(sshd, sftp_dir, private_key=sshd.untrusted_private_key_text))
    assert stack.validate(eid).reason_code == "AUTH_FAILED"


def test_missing_base_path(stack: Stack, sshd: SshdServer, sftp_dir: Path) -> None:
    eid = stack.register(sftp_endpoint(sshd, sftp_dir / "nope"))
    failed = stack.validate(eid)
    assert failed.reason_code == "BASE_PATH_MISSING"
    assert stack.status(eid) is EndpointStatus.VALIDATION_FAILED


def test_base_path_that_is_a_file(stack: Stack, sshd: SshdServer, sftp_dir: Path) -> None:
    (sftp_dir / "file.txt").write_text("x")
    eid = stack.register(sftp_endpoint(sshd, sftp_dir / "file.txt"))
    assert stack.validate(eid).reason_code == "BASE_PATH_NOT_A_DIRECTORY"


def test_sshd_down_is_connection_failed(stack: Stack, sshd: SshdServer, sftp_dir: Path) -> None:
    eid = stack.register(sftp_endpoint(sshd, sftp_dir))
    sshd.stop()
    try:
        failed = stack.validate(eid)
    finally:
        sshd.start()
    assert failed.reason_code == "CONNECTION_REFUSED"
    assert failed.message == f"127.0.0.1:{sshd.port} refused the connection"


# --- S3 -------------------------------------------------------------------------------------------
def s3_endpoint(bucket: str) -> dict[str, Any]:
    return {
        "name": unique_name("s3"),  # names are unique per customer
        "type": "s3",
        "direction": "BOTH",
        "bucket": bucket,
        "prefix": "in/",
    }


def test_s3_existing_bucket_becomes_active(stack: Stack) -> None:
    bucket = unique_name("bucket")
    tag_bucket(bucket, "cust-other cust-int")
    eid = stack.register(s3_endpoint(bucket))
    validated = stack.validate(eid)
    assert validated.detail_type() == "EndpointValidated", validated
    assert validated.checks == ["head_bucket", "list_prefix"]
    assert stack.status(eid) is EndpointStatus.ACTIVE


def test_s3_missing_bucket_fails(stack: Stack) -> None:
    eid = stack.register(s3_endpoint(unique_name("missing")), key=stack.operator_key)
    failed = stack.validate(eid)
    assert failed.reason_code == "BUCKET_NOT_FOUND", failed
    assert stack.status(eid) is EndpointStatus.VALIDATION_FAILED


# --- S3 tenancy: same-account buckets need an explicit grant (issue 8) ------------------------------
def test_s3_untagged_bucket_is_access_denied_for_a_non_operator_customer(stack: Stack) -> None:
    bucket = unique_name("untagged")
    boto3.client("s3").create_bucket(Bucket=bucket)
    eid = stack.register(s3_endpoint(bucket))
    failed = stack.validate(eid)
    assert failed.detail_type() == "EndpointValidationFailed", failed
    assert failed.reason_code == "ACCESS_DENIED"
    assert "ferry:customer=cust-int" in failed.message
    assert stack.status(eid) is EndpointStatus.VALIDATION_FAILED


def test_s3_bucket_tagged_for_another_customer_is_access_denied(stack: Stack) -> None:
    bucket = unique_name("theirs")
    tag_bucket(bucket, "cust-a cust-b")
    for key in (stack.key, stack.operator_key):  # the operator too: the tag says whose it is
        eid = stack.register(s3_endpoint(bucket), key=key)
        failed = stack.validate(eid)
        assert failed.reason_code == "ACCESS_DENIED", failed
        assert "cust-a" not in failed.message  # never names another customer


def test_s3_missing_bucket_is_access_denied_for_a_non_operator(stack: Stack) -> None:
    """A customer without a grant cannot even learn whether a bucket exists."""
    eid = stack.register(s3_endpoint(unique_name("missing")))
    assert stack.validate(eid).reason_code == "ACCESS_DENIED"


def test_s3_operator_customer_may_use_untagged_buckets(stack: Stack) -> None:
    bucket = unique_name("opbucket")
    boto3.client("s3").create_bucket(Bucket=bucket)
    eid = stack.register(s3_endpoint(bucket), key=stack.operator_key)
    assert stack.validate(eid).detail_type() == "EndpointValidated"


def test_s3_deployment_grant_setting_works_without_a_tag(stack: Stack) -> None:
    boto3.client("s3").create_bucket(Bucket=GRANTED_BUCKET)
    eid = stack.register(s3_endpoint(GRANTED_BUCKET))
    assert stack.validate(eid).detail_type() == "EndpointValidated"


def test_s3_removing_the_tag_later_stops_access(stack: Stack) -> None:
    bucket = unique_name("revoked")
    tag_bucket(bucket, "cust-int")
    eid = stack.register(s3_endpoint(bucket))
    assert stack.validate(eid).detail_type() == "EndpointValidated"
    tag_bucket(bucket, None)
    stack.app.request_validation(customer_id="cust-int", endpoint_id=eid, actor="k")
    failed = stack.validate(eid)
    assert failed.reason_code == "ACCESS_DENIED", failed
    assert stack.status(eid) is EndpointStatus.VALIDATION_FAILED
    # and the customer can re-validate once the bucket is tagged again
    tag_bucket(bucket, "cust-int")
    stack.app.request_validation(customer_id="cust-int", endpoint_id=eid, actor="k")
    assert stack.validate(eid).detail_type() == "EndpointValidated"
    assert stack.status(eid) is EndpointStatus.ACTIVE


# --- the worker: EventBridge rule → SQS → ValidatorWorker → verdict → SQS → endpoints consumer -------
def _rule_queue(stack: Stack, rule_attr: str) -> str:
    """The rule of ``ferry.names.RULES`` on the stack's bus, targeting a fresh queue."""
    names = ResourceNames(stack.prefix)
    events = boto3.client("events")
    sqs = boto3.client("sqs")
    pattern, queue_attr = RULES[rule_attr]
    queue_url = sqs.create_queue(QueueName=getattr(names, queue_attr))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    rule = getattr(names, rule_attr)
    events.put_rule(Name=rule, EventBusName=names.bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, EventBusName=names.bus, Targets=[{"Id": "q", "Arn": queue_arn}])
    return str(queue_url)


@pytest.fixture(scope="module")
def validator_queue(stack: Stack) -> str:
    boto3.client("events").create_event_bus(Name=ResourceNames(stack.prefix).bus)
    return _rule_queue(stack, "validator_rule")


@pytest.fixture(scope="module")
def checks_queue(stack: Stack, validator_queue: str) -> str:
    return _rule_queue(stack, "endpoint_checks_rule")


def _checked(stack: Stack, eid: str) -> bool:
    checks = stack.validator.validator.checks
    return any(checks.completed(eid, v) for v in range(1, stack.app.get(eid).version + 1))


def _publish_verdicts(stack: Stack, endpoint_ids: list[str]) -> None:
    """What the outbox publisher does with the validator's stored verdicts."""
    bus = ResourceNames(stack.prefix).bus
    entries: list[Any] = []
    for eid in endpoint_ids:
        for version in range(1, stack.app.get(eid).version + 1):
            for event in stream_events(stack.app.recorder, endpoint_check_id(eid, version)):
                entries.append(to_put_events_entry(event, bus))
    assert entries
    assert not boto3.client("events").put_events(Entries=entries)["FailedEntryCount"]


def _consume_verdicts(stack: Stack, checks_queue: str, expected: int) -> None:
    """The endpoints consumer's Lambda handler on what the checks queue holds (as its SQS
    event source would hand it over), deleting what it handled."""
    from services.endpoints.consumer import make_handler
    from tests.support.sqs import sqs_record

    handler = make_handler(lambda: stack.app)
    sqs = boto3.client("sqs")
    seen = 0
    for _ in range(20):
        messages = sqs.receive_message(
            QueueUrl=checks_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        if not messages:
            if seen >= expected:
                break
            continue
        records = [sqs_record(m["Body"], m["MessageId"], m["ReceiptHandle"]) for m in messages]
        assert handler({"Records": records}, None) == {"batchItemFailures": []}
        for m in messages:
            sqs.delete_message(QueueUrl=checks_queue, ReceiptHandle=m["ReceiptHandle"])
        seen += len(messages)
    assert seen == expected


def test_worker_validates_from_the_queue_and_deletes_messages(
    stack: Stack, sshd: SshdServer, sftp_dir: Path, validator_queue: str, checks_queue: str
) -> None:
    bucket = unique_name("bucket")
    tag_bucket(bucket, "cust-int")
    sftp_id = stack.register(sftp_endpoint(sshd, sftp_dir))
    s3_id = stack.register(s3_endpoint(bucket))
    stack.app.disable(customer_id="cust-int", endpoint_id=s3_id, actor="k")  # not routed to us
    bus = ResourceNames(stack.prefix).bus
    entries: list[Any] = [
        to_put_events_entry(e, bus)
        for eid in (sftp_id, s3_id)
        for e in stream_events(stack.app.recorder, eid)
    ]
    assert not boto3.client("events").put_events(Entries=entries)["FailedEntryCount"]

    sqs = boto3.client("sqs")
    worker = ValidatorWorker(stack.validator.validator, validator_queue, sqs=sqs, wait_seconds=1)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        for _ in range(60):
            checked = [e for e in (sftp_id, s3_id) if _checked(stack, e)]
            if len(checked) == 2:
                break
            stop.wait(0.5)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert stack.app.get(sftp_id).needs_validation  # a verdict is stored, not applied yet
    attributes = sqs.get_queue_attributes(
        QueueUrl=validator_queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }

    _publish_verdicts(stack, [sftp_id, s3_id])  # the outbox → the endpoint_checks rule
    _consume_verdicts(stack, checks_queue, expected=2)
    assert stack.status(sftp_id) is EndpointStatus.ACTIVE
    assert stack.status(s3_id) is EndpointStatus.DISABLED  # validated, still disabled
    assert stack.app.get(s3_id).validation_status is EndpointStatus.ACTIVE


def test_worker_from_env_uses_the_production_wiring(
    stack: Stack, validator_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``from_env``: the endpoints read model is the real DynamoDB table (projected by the
    projections' own projector), the verdict goes to the event table."""
    from services.projections.adapters import DynamoReadModelStore
    from services.projections.application import Projector
    from services.projections.tables import create_read_model_tables

    names = ResourceNames(stack.prefix)
    ddb = boto3.client("dynamodb")
    if names.endpoints_table not in ddb.list_tables()["TableNames"]:
        create_read_model_tables(ddb, names)
    bucket = unique_name("bucket")
    tag_bucket(bucket, "cust-int")
    eid = stack.register(s3_endpoint(bucket))
    projector = Projector(DynamoReadModelStore(ddb, names), None)
    assert projector.apply_stream(stream_events(stack.app.recorder, eid)) == 1
    monkeypatch.setenv("FERRY_VALIDATOR_QUEUE_URL", validator_queue)
    monkeypatch.setenv("FERRY_VALIDATOR_WAIT_SECONDS", "1")
    monkeypatch.setenv("FERRY_ENDPOINTS_TABLE", names.endpoints_table)
    for name, value in stack.env.items():  # PERSISTENCE_MODULE, FERRY_EVENTS_TABLE
        monkeypatch.setenv(name, value)
    worker = ValidatorWorker.from_env()
    boto3.client("sqs").send_message(QueueUrl=validator_queue, MessageBody=stack.message(eid, 0))
    handled = 0
    for _ in range(5):
        handled += worker.poll_once()
        if handled:
            break
    assert handled == 1
    (verdict,) = stream_events(stack.app.recorder, endpoint_check_id(eid, 1))
    assert stack.app.record_check(verdict)  # type: ignore[arg-type]
    assert stack.status(eid) is EndpointStatus.ACTIVE
