"""infra/constructs/audit.py (issue 11): the checkpoint bucket is Object Lock COMPLIANCE, the
hourly schedule invokes only the checkpoint function, which reads the event store and may seal
(UpdateItem) but never put or delete events, may put checkpoints but never delete or unlock them;
the event store has the customer-and-time index."""

from __future__ import annotations

from typing import Any

import pytest

from events.dynamodb import CUSTOMER_TIME_INDEX
from tests.infra.conftest import Synth
from tests.infra.iam import can, function_role, role_statements
from tests.infra.test_iam import table_id
from tests.infra.test_resources import resources
from tests.infra.test_routes import NAMES

HANDLER = "services.projections.audit_checkpoints.handler"


@pytest.fixture(scope="module")
def t(synth: Synth) -> dict[str, Any]:
    return synth.template_json()


def test_the_checkpoint_bucket_is_object_locked_in_compliance_mode(t: dict[str, Any]) -> None:
    [bucket] = [
        b
        for b in resources(t, "AWS::S3::Bucket").values()
        if "audit" in str(b["Properties"].get("BucketName"))
    ]
    p = bucket["Properties"]
    assert p["ObjectLockEnabled"] is True
    rule = p["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert rule["Mode"] == "COMPLIANCE" and rule["Days"] >= 365
    assert p["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket["DeletionPolicy"] == "Retain"


def test_the_hourly_schedule_invokes_the_checkpoint_only(t: dict[str, Any]) -> None:
    [sched] = [
        s
        for s in resources(t, "AWS::Scheduler::Schedule").values()
        if s["Properties"]["Name"] == NAMES.audit_checkpoint_schedule
    ]
    p = sched["Properties"]
    assert p["ScheduleExpression"] == "rate(1 hour)"
    role = p["Target"]["RoleArn"]["Fn::GetAtt"][0]
    allowed = [s for s in role_statements(t, role) if s.effect == "Allow"]
    assert [a for s in allowed for a in s.actions] == ["lambda:InvokeFunction"]


def test_the_checkpoint_function_reads_and_seals_but_never_rewrites_history(
    t: dict[str, Any],
) -> None:
    role = function_role(t, HANDLER)
    events = table_id(t, NAMES.events_table)
    assert can(t, role, "dynamodb:Query", events)
    assert can(t, role, "dynamodb:UpdateItem", events)
    for action in ("dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"):
        assert not can(t, role, action, events), action
    denied = {a for s in role_statements(t, role) if s.effect == "Deny" for a in s.actions}
    assert {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention"} <= denied


def test_the_event_store_has_the_customer_and_time_index(t: dict[str, Any]) -> None:
    [table] = [
        r
        for r in resources(t, "AWS::DynamoDB::GlobalTable").values()
        if r["Properties"].get("TableName") == NAMES.events_table
    ]
    [index] = table["Properties"]["GlobalSecondaryIndexes"]
    assert index["IndexName"] == CUSTOMER_TIME_INDEX
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["customer_id", "at_key"]


API_HANDLERS = (
    "services.endpoints.handlers.handler",
    "services.jobs.handlers.handler",
    "services.projections.handlers.handler",
    "services.routes.handlers.handler",
    "services.notifications.handlers.handler",
)


def test_the_access_log_table_has_the_event_stores_keys_and_index_and_no_stream(
    t: dict[str, Any],
) -> None:
    [table] = [
        r
        for r in resources(t, "AWS::DynamoDB::GlobalTable").values()
        if r["Properties"].get("TableName") == NAMES.access_log_table
    ]
    p = table["Properties"]
    assert [k["AttributeName"] for k in p["KeySchema"]] == ["stream_id", "version"]
    [index] = p["GlobalSecondaryIndexes"]
    assert index["IndexName"] == CUSTOMER_TIME_INDEX
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["customer_id", "at_key"]
    assert "StreamSpecification" not in p
    assert p["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize("handler", API_HANDLERS)
def test_every_api_function_appends_to_the_access_log_and_never_changes_it(
    t: dict[str, Any], handler: str
) -> None:
    role = function_role(t, handler)
    table = table_id(t, NAMES.access_log_table)
    for action in ("dynamodb:PutItem", "dynamodb:Query", "dynamodb:GetItem"):
        assert can(t, role, action, table), action
    for action in ("dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"):
        assert not can(t, role, action, table), action
    [fn] = [
        r
        for r in resources(t, "AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") == handler
    ]
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["FERRY_ACCESS_LOG_TABLE"] == NAMES.access_log_table


def test_the_checkpoint_function_reads_the_access_log_but_never_writes_it(
    t: dict[str, Any],
) -> None:
    role = function_role(t, HANDLER)
    table = table_id(t, NAMES.access_log_table)
    assert can(t, role, "dynamodb:Query", table)
    for action in ("dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"):
        assert not can(t, role, action, table), action
