"""The key IAM boundaries, read from the synthesized policies (Allow minus explicit Deny)."""

from __future__ import annotations

from typing import Any

import pytest

import ferry.names as n
from tests.infra.conftest import Synth
from tests.infra.iam import can, can_on_text, function_role, logical_id, role_statements, text

NAMES = n.ResourceNames("ferry")
WRITE = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)
READ = ("dynamodb:GetItem", "dynamodb:Query")
API_HANDLERS = (
    "services.endpoints.handlers.handler",
    "services.jobs.handlers.handler",
    "services.projections.handlers.handler",
)
ALL_LAMBDAS = (
    *API_HANDLERS,
    "services.jobs.process_manager.handler",
    "services.projections.consumer.handler",
    "events.publisher.handler",
    "services.routes.handlers.handler",
    "services.routes.push.handler",
    "services.routes.consumer.handler",
    "services.notifications.handlers.handler",
    "services.notifications.consumer.handler",
    "services.notifications.deliver.handler",
)


@pytest.fixture(scope="module")
def t(synth: Synth) -> dict[str, Any]:
    return synth.template_json()


def table_id(t: dict[str, Any], name: str) -> str:
    return logical_id(t, "AWS::DynamoDB::GlobalTable", TableName=name)


def executor_role(t: dict[str, Any], command: str = "services.executor") -> str:
    """The task role of the task definition running ``python -m <command>``."""
    [task] = [
        r
        for r in t["Resources"].values()
        if r["Type"] == "AWS::ECS::TaskDefinition"
        and r["Properties"]["ContainerDefinitions"][0]["Command"] == ["python", "-m", command]
    ]
    return task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]


@pytest.mark.parametrize(
    "handler", ["services.projections.handlers.handler", "services.projections.consumer.handler"]
)
def test_projections_cannot_write_the_event_store(t: dict[str, Any], handler: str) -> None:
    role, events = function_role(t, handler), table_id(t, NAMES.events_table)
    assert all(can(t, role, a, events) for a in READ)
    assert not any(can(t, role, a, events) for a in WRITE)


def test_only_the_consumer_writes_read_models(t: dict[str, Any]) -> None:
    consumer = function_role(t, "services.projections.consumer.handler")
    for rm in (NAMES.endpoints_table, NAMES.jobs_table):
        assert can(t, consumer, "dynamodb:PutItem", table_id(t, rm))
        for h in (*API_HANDLERS, "services.jobs.process_manager.handler"):
            assert not can(t, function_role(t, h), "dynamodb:PutItem", table_id(t, rm)), h


@pytest.mark.parametrize("handler", ALL_LAMBDAS)
def test_no_lambda_can_read_endpoint_secrets(t: dict[str, Any], handler: str) -> None:
    role = function_role(t, handler)
    assert not can_on_text(t, role, "secretsmanager:GetSecretValue", NAMES.secrets_prefix)
    readers = [
        s
        for s in role_statements(t, role)
        if s.effect == "Allow" and s.allows("secretsmanager:GetSecretValue")
    ]
    if handler == "services.notifications.deliver.handler":  # webhook signing secrets only
        prefix = NAMES.subscription_secrets_prefix
        assert readers and all(prefix in text(r) for s in readers for r in s.resources)
    else:
        assert not readers


def test_only_the_endpoints_api_writes_secrets(t: dict[str, Any]) -> None:
    endpoints = function_role(t, "services.endpoints.handlers.handler")
    for action in ("secretsmanager:CreateSecret", "secretsmanager:PutSecretValue"):
        assert can_on_text(t, endpoints, action, NAMES.secrets_prefix)
        for h in ALL_LAMBDAS[1:]:
            assert not can_on_text(t, function_role(t, h), action, NAMES.secrets_prefix), h
        assert not can_on_text(t, executor_role(t), action, NAMES.secrets_prefix)


def test_executor_reads_secrets_and_cannot_write_read_models(t: dict[str, Any]) -> None:
    role = executor_role(t)
    assert can_on_text(t, role, "secretsmanager:GetSecretValue", NAMES.secrets_prefix)
    for rm in (NAMES.endpoints_table, NAMES.jobs_table):
        assert can(t, role, "dynamodb:GetItem", table_id(t, rm))
        assert not any(can(t, role, a, table_id(t, rm)) for a in WRITE)
    events = table_id(t, NAMES.events_table)
    assert can(t, role, "dynamodb:PutItem", events) and can(t, role, "dynamodb:Query", events)
    leases = table_id(t, NAMES.leases_table)
    assert can(t, role, "dynamodb:UpdateItem", leases)
    bucket = next(
        lid
        for lid, r in t["Resources"].items()
        if r["Type"] == "AWS::S3::Bucket"
        and NAMES.staging_bucket in str(r["Properties"].get("BucketName"))
    )
    assert can(t, role, "s3:PutObject", bucket) and can(t, role, "s3:GetObject", bucket)
    assert can(t, role, "s3:DeleteObject", bucket)


def _statements(t: dict[str, Any], sid: str) -> list[dict[str, Any]]:
    return [
        s
        for r in t["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == sid
    ]


def test_data_plane_reaches_customer_buckets_only_through_their_roles(t: dict[str, Any]) -> None:
    """Issue 8: the executor (and validator), the scanner and the push consumer may assume
    customer roles — only with a Ferry external id — and have no S3 permission but on the
    staging bucket."""
    assume = _statements(t, "AssumeCustomerRoles")
    assert len(assume) == 3  # the executor (+ validator), the routes scanner, the push consumer
    for st in assume:
        assert st["Action"] == "sts:AssumeRole"
        assert st["Condition"] == {"StringLike": {"sts:ExternalId": "ferry-*"}}
    assert not _statements(t, "CustomerS3EndpointsOtherAccounts")
    staging = next(
        lid
        for lid, r in t["Resources"].items()
        if r["Type"] == "AWS::S3::Bucket"
        and NAMES.staging_bucket in str(r["Properties"].get("BucketName"))
    )
    roles = [executor_role(t), executor_role(t, "services.routes.scanner")]
    for role in roles:
        for st in role_statements(t, role):
            if st.effect != "Allow" or not any(a.startswith("s3:") for a in st.actions):
                continue
            # every S3 grant names the staging bucket, never "*" or another bucket
            assert st.resources and all(staging in str(r) for r in st.resources), st


def test_publisher_puts_events_and_reads_the_stream_only(t: dict[str, Any]) -> None:
    role = function_role(t, "events.publisher.handler")
    bus = logical_id(t, "AWS::Events::EventBus", Name=NAMES.bus)
    assert can(t, role, "events:PutEvents", bus)
    events = table_id(t, NAMES.events_table)
    assert can(t, role, "dynamodb:GetRecords", events)
    assert not any(can(t, role, a, events) for a in WRITE)


def test_api_lambdas_cannot_use_the_staging_bucket_or_leases(t: dict[str, Any]) -> None:
    leases = table_id(t, NAMES.leases_table)
    # the one bucket an API may put to: the audit checkpoints (POST /audit/checkpoint)
    [audit] = [
        lid
        for lid, r in t["Resources"].items()
        if r["Type"] == "AWS::S3::Bucket" and NAMES.audit_bucket in str(r["Properties"])
    ]
    for h in ALL_LAMBDAS:
        role = function_role(t, h)
        assert not can(t, role, "dynamodb:PutItem", leases), h
        assert not any(
            s.allows("s3:PutObject") and not (s.touches(audit) and "*" not in s.resources)
            for s in role_statements(t, role)
            if s.effect == "Allow"
        ), h


def test_endpoint_secrets_use_the_data_key(t: dict[str, Any]) -> None:
    from infra.constructs.services import secrets_kms_env

    [fn] = [
        r["Properties"]
        for r in t["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Handler") == "services.endpoints.handlers.handler"
    ]
    [key] = [lid for lid, r in t["Resources"].items() if r["Type"] == "AWS::KMS::Key"]
    assert fn["Environment"]["Variables"][secrets_kms_env()] == {"Fn::GetAtt": [key, "Arn"]}
    assert can(t, function_role(t, "services.endpoints.handlers.handler"), "kms:Encrypt", key)
    assert can(t, executor_role(t), "kms:Decrypt", key)


def test_the_boundary_checker_can_fail() -> None:
    """can() sees an Allow, and an explicit Deny overrides it (so the tests above can fail)."""
    toy: dict[str, Any] = {
        "Resources": {
            "T": {"Type": "AWS::DynamoDB::GlobalTable", "Properties": {}},
            "P": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "Roles": [{"Ref": "R"}],
                    "PolicyDocument": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "dynamodb:*Item",
                                "Resource": {"Fn::GetAtt": ["T", "Arn"]},
                            }
                        ]
                    },
                },
            },
        }
    }
    assert can(toy, "R", "dynamodb:PutItem", "T")
    toy["Resources"]["P"]["Properties"]["PolicyDocument"]["Statement"].append(
        {
            "Effect": "Deny",
            "Action": ["dynamodb:PutItem"],
            "Resource": [{"Fn::GetAtt": ["T", "Arn"]}],
        }
    )
    assert not can(toy, "R", "dynamodb:PutItem", "T")
    assert can(toy, "R", "dynamodb:GetItem", "T")
