"""Cross-tenant S3 isolation with moto ENFORCING IAM (issue 8): real, not assumed.

A dedicated moto server process (its own, so that switching enforcement on does not affect the
session's shared server) is set up without authentication, then switched to IAM enforcement
(``POST /moto-api/reset-auth 0``: every later request is authenticated and authorized against
IAM policies). From then on Ferry runs with the credentials of an IAM user whose policy is the
one infra gives the executor/validator roles: DynamoDB/SQS/Secrets Manager, S3 on Ferry's
staging bucket only, ``sts:AssumeRole`` on customer roles — no S3 permission on customer buckets.

Customer A owns bucket ``a_src`` (and ``a_out``) and a role whose trust policy names Ferry with
``sts:ExternalId`` = A's endpoint's external id; customer B owns ``b_dst`` and its own role.

What moto 5.2.5 enforces here (read in ``moto/iam/access_control.py``): SigV4 signatures; identity
policies of IAM users and of assumed roles for S3, DynamoDB, SQS, STS; for ``sts:AssumeRole`` on a
role *in the caller's account* the trust policy's principal and its ``StringEquals``
``sts:ExternalId`` condition. Not enforced by moto: bucket policies / resource policies,
cross-account trust (roles are therefore in the same moto account), conditions other than
StringEquals, and a trust condition when the caller sends no ExternalId at all (moto then lets it
pass — Ferry always sends one). Ferry's own checks (reserved buckets, tag grants) add to that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from events.contract import EndpointConfig, EndpointType, Flow
from events.translate import stream_events
from services.endpoints.application import EndpointsApplication, Registration
from services.endpoints.settings import TenancySettings
from services.executor.endpoint_access import AccessDenied, S3Access, SecretsReader
from tests.integration.executor_harness import Stack
from tests.support.fakes.endpoints import InMemorySecretStore
from tests.support.moto_server import AWS_REGION, UNSET_VARIABLES, aws_environment, unique_name
from tests.support.sshd import free_port
from tests.support.validation import validation_loop

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"  # moto's default account: the users, roles and buckets all live here


def _role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def _s3_resources(*buckets: str) -> list[str]:
    return [r for b in buckets for r in (f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*")]


class EnforcingMoto:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"moto-iam-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90  # a loaded 2-core machine starts moto slowly
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/moto-api/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError("moto server did not start")

    def enforce(self) -> None:
        """From now on every request is authenticated and authorized against IAM."""
        response = requests.post(self.url + "/moto-api/reset-auth", data=b"0", timeout=5)
        response.raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)
        self.log.close()


def _client(service: str, keys: dict[str, str]) -> Any:
    return boto3.client(
        service,
        region_name=AWS_REGION,
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
    )


class World:
    """Everything the tests need, set up once (under no-auth), then enforcement on."""

    def __init__(self, moto: EnforcingMoto, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in UNSET_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in aws_environment(moto.url).items():
            monkeypatch.setenv(name, value)
        self.moto = moto
        self.stack = Stack(aws_environment(moto.url), None, None)  # tables, staging, queue
        s3 = boto3.client("s3")
        self.a_src = self.stack.src_bucket
        self.b_dst = self.stack.dst_bucket
        self.a_out = unique_name("a-out")
        s3.create_bucket(Bucket=self.a_out)
        for bucket, owner in (
            (self.a_src, "cust-a"),
            (self.a_out, "cust-a"),
            (self.b_dst, "cust-b"),
        ):
            s3.put_bucket_tagging(
                Bucket=bucket, Tagging={"TagSet": [{"Key": "ferry:customer", "Value": owner}]}
            )
        s3.put_object(Bucket=self.a_src, Key="in/secret.csv", Body=b"A's data\n" * 1000)

        # the endpoints service (in memory: no AWS call) generates the external ids
        self.app = EndpointsApplication(
            secrets=InMemorySecretStore(),
            env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
            is_reserved_bucket=TenancySettings(prefix=self.stack.prefix).is_reserved,
        )
        self.role_a, self.role_b = unique_name("customer-a"), unique_name("customer-b")
        self.ep: dict[str, str] = {}
        self.ep["a"] = self.register("cust-a", self.a_src, self.role_a)
        self.ep["a_out"] = self.register("cust-a", self.a_out, self.role_a)
        self.ep["b_own"] = self.register("cust-b", self.b_dst, self.role_b)
        self.ep["b_with_b_role"] = self.register("cust-b", self.a_src, self.role_b)
        self.ep["b_with_a_role"] = self.register("cust-b", self.a_src, self.role_a)
        self.ep["b_no_role"] = self.register("cust-b", self.a_src, None)

        iam = boto3.client("iam")
        ferry_user = unique_name("ferry-executor")
        iam.create_user(UserName=ferry_user)
        ferry_arn = iam.get_user(UserName=ferry_user)["User"]["Arn"]
        iam.put_user_policy(
            UserName=ferry_user,
            PolicyName="ferry-data-plane",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["dynamodb:*", "sqs:*", "secretsmanager:*"],
                            "Resource": "*",
                        },
                        {
                            "Effect": "Allow",
                            "Action": "s3:*",
                            "Resource": _s3_resources(self.stack.names.staging_bucket),
                        },
                        {
                            "Effect": "Allow",
                            "Action": "sts:AssumeRole",
                            "Resource": f"arn:aws:iam::{ACCOUNT}:role/*",
                        },
                    ],
                }
            ),
        )
        self.ferry_keys = iam.create_access_key(UserName=ferry_user)["AccessKey"]
        admin = unique_name("admin")
        iam.create_user(UserName=admin)
        iam.put_user_policy(
            UserName=admin,
            PolicyName="all",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        self.admin_keys = iam.create_access_key(UserName=admin)["AccessKey"]
        # the customers' roles: trust = Ferry's principal + their endpoint's external id
        for role, buckets, endpoint_ids in (
            (self.role_a, (self.a_src, self.a_out), (self.ep["a"], self.ep["a_out"])),
            (self.role_b, (self.b_dst,), (self.ep["b_own"], self.ep["b_with_b_role"])),
        ):
            external_ids = [self.external_id(e) for e in endpoint_ids]
            iam.create_role(
                RoleName=role,
                AssumeRolePolicyDocument=json.dumps(trust_policy(ferry_arn, external_ids)),
            )
            iam.put_role_policy(
                RoleName=role,
                PolicyName="bucket",
                PolicyDocument=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "s3:*",
                                "Resource": _s3_resources(*buckets),
                            }
                        ],
                    }
                ),
            )

        moto.enforce()
        # Ferry's processes from here on: the data-plane identity
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", self.ferry_keys["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", self.ferry_keys["SecretAccessKey"])
        # boto3's default session caches the credentials it resolved first: start a fresh one,
        # as a process started with this identity would have
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        self.admin_s3 = _client("s3", self.admin_keys)
        # the harness's own clients (the test's stand-ins for the projection and EventBridge)
        self.stack.ddb = _client("dynamodb", self.admin_keys)
        self.stack.sqs = _client("sqs", self.admin_keys)
        self.stack.s3 = self.admin_s3
        self.validator = validation_loop(
            self.app,
            SecretsReader(boto3.client("secretsmanager")),
            s3_client=S3Access(TenancySettings(prefix=self.stack.prefix)).client_for,
            transient_retries=0,
        )

    def register(self, customer: str, bucket: str, role: str | None) -> str:
        endpoint = self.app.register(
            customer_id=customer,
            actor="key",
            registration=Registration(
                name=unique_name("s3"),
                direction="BOTH",
                max_concurrency=2,
                config=EndpointConfig(
                    type=EndpointType.S3,
                    bucket=bucket,
                    region=AWS_REGION,
                    role_arn=_role_arn(role) if role else None,
                ),
            ),
        )
        return str(endpoint.id)

    def external_id(self, endpoint_id: str) -> str:
        return str(self.app.get(endpoint_id).config["external_id"])

    def validate(self, key: str) -> Any:
        self.validator.validate(self.ep[key])
        return stream_events(self.app.recorder, self.ep[key])[-1]

    def put_read_model(self, key: str) -> str:
        """The executor reads endpoints from the read model: write the item the projection
        would (ACTIVE: as if it had been validated before access was taken away)."""
        endpoint = self.app.get(self.ep[key])
        config = {k: v for k, v in endpoint.config.items() if k != "type"}
        self.stack.customer_id = endpoint.customer_id
        return self.stack._put_endpoint(
            self.ep[key], "s3", {"type": "s3", **config}, max_concurrency=2, secret_arn=None
        )

    def objects(self, bucket: str) -> list[str]:
        listed = self.admin_s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        return [o["Key"] for o in listed]

    def uploads(self, bucket: str) -> list[Any]:
        return list(self.admin_s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def trust_policy(ferry_principal: str, external_ids: list[str]) -> dict[str, Any]:
    """What a customer pastes (README / ``ferry endpoints add --help``), with Ferry's principal."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ferry_principal},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_ids}},
            }
        ],
    }


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    moto = EnforcingMoto()
    with pytest.MonkeyPatch.context() as monkeypatch:
        try:
            yield World(moto, monkeypatch)
        finally:
            moto.stop()


# --- enforcement is real -------------------------------------------------------------------------
def test_moto_enforces_iam_for_ferrys_own_identity(world: World) -> None:
    from botocore.exceptions import ClientError

    ferry_s3 = _client("s3", world.ferry_keys)
    ferry_s3.head_bucket(Bucket=world.stack.names.staging_bucket)  # its own bucket: allowed
    with pytest.raises(ClientError) as denied:
        ferry_s3.head_bucket(Bucket=world.a_src)  # a customer's bucket: no direct permission
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError):
        _client("s3", {"AccessKeyId": "testing", "SecretAccessKey": "testing"}).list_buckets()
    sts = _client("sts", world.ferry_keys)
    with pytest.raises(ClientError) as refused:
        sts.assume_role(
            RoleArn=_role_arn(world.role_a), RoleSessionName="probe", ExternalId="ferry-guess"
        )
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    sts.assume_role(
        RoleArn=_role_arn(world.role_a),
        RoleSessionName="probe",
        ExternalId=world.external_id(world.ep["a"]),
    )


# --- validation ------------------------------------------------------------------------------------
def test_a_customers_own_delegated_endpoints_validate(world: World) -> None:
    for key in ("a", "a_out", "b_own"):
        verdict = world.validate(key)
        assert verdict.detail_type() == "EndpointValidated", (key, verdict)


@pytest.mark.parametrize(
    "key",
    ["b_with_b_role", "b_with_a_role", "b_no_role"],
    ids=["B's role on A's bucket", "A's role with B's external id", "no role, A's bucket"],
)
def test_b_naming_a_bucket_fails_validation_with_access_denied(world: World, key: str) -> None:
    verdict = world.validate(key)
    assert verdict.detail_type() == "EndpointValidationFailed", verdict
    assert verdict.reason_code == "ACCESS_DENIED", verdict
    assert "cust-a" not in verdict.message
    assert world.app.get(world.ep[key]).status.value == "VALIDATION_FAILED"


def test_s3_access_refuses_ferrys_staging_bucket_even_with_a_role(world: World) -> None:
    access = S3Access(TenancySettings(prefix=world.stack.prefix))
    from services.executor.endpoint_access import EndpointView
    from tests.support.validation import ProjectedEndpoints

    item = ProjectedEndpoints(world.app).item(world.ep["a"])
    assert item is not None
    staging = EndpointView.from_item(item)
    staging = staging.__class__(
        **{
            **staging.__dict__,
            "config": staging.config.model_copy(
                update={"bucket": world.stack.names.staging_bucket}
            ),
        }
    )
    with pytest.raises(AccessDenied):
        access.client_for(staging)


# --- transfers ---------------------------------------------------------------------------------------
def test_bs_transfer_from_as_bucket_fails_and_moves_no_byte(world: World) -> None:
    source = world.put_read_model("b_with_b_role")  # B's role, A's bucket
    target = world.put_read_model("b_own")
    executor = world.stack.executor()
    job_id = world.stack.queue_job(Flow.S3_TO_S3, (source, "in/secret.csv"), (target, "stolen.csv"))
    world.stack.drain(executor, timeout=60)
    assert world.stack.released(job_id) == "failed"
    failed = [e for e in world.stack.events(job_id) if e.detail_type() == "TransferAttemptFailed"]
    assert failed and failed[-1].error_code == "PERMISSION_DENIED", failed  # S3 403 (moto IAM)
    assert not failed[-1].transient
    assert world.objects(world.b_dst) == []
    assert world.uploads(world.b_dst) == []
    assert world.objects(world.stack.names.staging_bucket) == []


def test_bs_transfer_through_an_untagged_grant_fails_before_any_s3_call(world: World) -> None:
    source = world.put_read_model("b_no_role")  # Ferry's own credentials, bucket tagged cust-a
    target = world.put_read_model("b_own")
    executor = world.stack.executor()
    job_id = world.stack.queue_job(Flow.S3_TO_S3, (source, "in/secret.csv"), (target, "x.csv"))
    world.stack.drain(executor, timeout=60)
    failed = [e for e in world.stack.events(job_id) if e.detail_type() == "TransferAttemptFailed"]
    assert failed and failed[-1].error_code == "ACCESS_DENIED", failed
    assert world.objects(world.b_dst) == []


def test_as_transfer_between_its_own_buckets_works_under_enforcement(world: World) -> None:
    source = world.put_read_model("a")
    target = world.put_read_model("a_out")
    executor = world.stack.executor()
    job_id = world.stack.queue_job(Flow.S3_TO_S3, (source, "in/secret.csv"), (target, "copy.csv"))
    world.stack.drain(executor, timeout=60)
    assert world.stack.released(job_id) == "succeeded", world.stack.types(job_id)
    body = world.admin_s3.get_object(Bucket=world.a_out, Key="copy.csv")["Body"].read()
    assert body == b"A's data\n" * 1000
    assert uuid.UUID(job_id)
