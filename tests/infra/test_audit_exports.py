"""infra/constructs/audit_exports.py (issue 11, POST /audit/exports): the exports table, the
exporter's queue (the query API only sends to it) and the exporter function, which reads only
the event store's customer-and-time index, writes only ``exports/*`` of the audit bucket (never
deletes or unlocks), and never reads endpoint secrets; the query API can start, read and
presign; the routes are deployed on the queries function."""

from __future__ import annotations

from typing import Any

import pytest

from events.dynamodb import CUSTOMER_TIME_INDEX
from tests.infra.conftest import Synth
from tests.infra.iam import can, can_on_text, function_role, logical_id, role_statements, text
from tests.infra.test_iam import table_id
from tests.infra.test_resources import resources
from tests.infra.test_routes import NAMES

EXPORTER = "services.projections.audit_exporter.handler"
QUERIES = "services.projections.handlers.handler"


@pytest.fixture(scope="module")
def t(synth: Synth) -> dict[str, Any]:
    return synth.template_json()


def _function(t: dict[str, Any], handler: str) -> dict[str, Any]:
    [fn] = [
        r
        for r in resources(t, "AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") == handler
    ]
    return fn


def test_the_exports_table_is_keyed_by_customer_retained_and_encrypted(t: dict[str, Any]) -> None:
    [table] = [
        r
        for r in resources(t, "AWS::DynamoDB::GlobalTable").values()
        if r["Properties"].get("TableName") == NAMES.audit_exports_table
    ]
    p = table["Properties"]
    assert [k["AttributeName"] for k in p["KeySchema"]] == ["customer_id", "sk"]
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert p["SSESpecification"]["SSEType"] == "KMS"
    assert table["DeletionPolicy"] == "Retain"


def test_the_exporter_reads_the_index_only_and_writes_exports_only(t: dict[str, Any]) -> None:
    role = function_role(t, EXPORTER)
    events = table_id(t, NAMES.events_table)
    allowed = [s for s in role_statements(t, role) if s.effect == "Allow"]
    on_events = [s for s in allowed if s.touches(events) and "*" not in s.resources]
    assert [a for s in on_events for a in s.actions] == ["dynamodb:Query"]
    assert all(f"/index/{CUSTOMER_TIME_INDEX}" in text(r) for s in on_events for r in s.resources)
    s3 = [s for s in allowed if any(a.startswith("s3:") for a in s.actions)]
    assert [a for s in s3 for a in s.actions] == ["s3:PutObject"]
    assert all("/exports/*" in text(r) for s in s3 for r in s.resources)
    assert can_on_text(t, role, "s3:PutObject", "exports/*")
    denied = {a for s in role_statements(t, role) if s.effect == "Deny" for a in s.actions}
    assert {"s3:DeleteObject", "s3:PutObjectRetention", "secretsmanager:GetSecretValue"} <= denied
    exports = table_id(t, NAMES.audit_exports_table)
    assert can(t, role, "dynamodb:PutItem", exports) and can(t, role, "dynamodb:GetItem", exports)
    assert not can(t, role, "dynamodb:DeleteItem", exports)


def test_the_exporter_runs_from_its_queue_which_the_query_api_may_only_send_to(
    t: dict[str, Any],
) -> None:
    queue = logical_id(t, "AWS::SQS::Queue", QueueName=NAMES.audit_exports_queue)
    [mapping] = [
        r
        for r in resources(t, "AWS::Lambda::EventSourceMapping").values()
        if queue in text(r["Properties"]["EventSourceArn"])
    ]
    exporter = logical_id(t, "AWS::Lambda::Function", Handler=EXPORTER)
    assert mapping["Properties"]["FunctionName"] == {"Ref": exporter}
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    api = function_role(t, QUERIES)
    sqs = [
        a
        for s in role_statements(t, api)
        if s.effect == "Allow" and s.touches(queue)
        for a in s.actions
    ]
    assert "sqs:SendMessage" in sqs and "sqs:ReceiveMessage" not in sqs
    assert _function(t, EXPORTER)["Properties"]["Timeout"] == 900


def test_the_query_api_starts_reads_and_presigns_exports(t: dict[str, Any]) -> None:
    role = function_role(t, QUERIES)
    exports = table_id(t, NAMES.audit_exports_table)
    for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"):
        assert can(t, role, action, exports), action
    assert not can(t, role, "dynamodb:DeleteItem", exports)
    assert can_on_text(t, role, "s3:GetObject*", "/*")  # presigned GETs of exports/*
    env = _function(t, QUERIES)["Properties"]["Environment"]["Variables"]
    assert env["FERRY_AUDIT_EXPORTS_TABLE"] == NAMES.audit_exports_table
    assert "FERRY_AUDIT_EXPORTS_QUEUE_URL" in env and "FERRY_AUDIT_BUCKET" in env


def test_the_export_routes_are_on_the_queries_function(t: dict[str, Any]) -> None:
    paths = {
        r["Properties"].get("PathPart") for r in resources(t, "AWS::ApiGateway::Resource").values()
    }
    assert {"exports", "{export_id}"} <= paths
    methods = [
        r["Properties"]["HttpMethod"]
        for r in resources(t, "AWS::ApiGateway::Method").values()
        if "AuditExports" in str(r["Properties"].get("ResourceId"))
        or "auditexports" in str(r["Properties"].get("ResourceId")).lower()
    ]
    assert {"GET", "POST"} <= set(methods)
