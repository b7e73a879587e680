"""The routes service (issue 5) in the CDK app: tables, queues, rules, the tick schedule, the
three Lambdas, the scanner's Fargate service, and their IAM boundaries."""

from __future__ import annotations

from typing import Any

import pytest

import ferry.names as n
from infra.constructs.api import ROUTES, ROUTES_HANDLER
from infra.constructs.services import CONSUMER_TIMEOUT
from services.routes.settings import RoutesSettings
from tests.infra.conftest import EAST, WEST, Synth
from tests.infra.iam import can, can_on_text, function_role, logical_id
from tests.infra.test_iam import READ, WRITE, executor_role, table_id
from tests.infra.test_resources import executor_task, keys, resources, table

NAMES = n.ResourceNames("ferry")
ROUTES_LAMBDAS = (
    "services.routes.handlers.handler",
    "services.routes.push.handler",
    "services.routes.consumer.handler",
)
SCANNER = "services.routes.scanner"


@pytest.fixture(scope="module")
def t(synth: Synth) -> dict[str, Any]:
    return synth.template_json()


def scanner_role(t: dict[str, Any]) -> str:
    return executor_role(t, SCANNER)


# --- tables: exactly services.routes.adapters.create_tables ----------------------------------


class _RecordingClient:
    """Captures create_table calls (the real create_tables code, no AWS)."""

    class exceptions:
        class ResourceInUseException(Exception):
            pass

    def __init__(self) -> None:
        self.definitions: dict[str, dict[str, Any]] = {}

    def create_table(self, **definition: Any) -> None:
        self.definitions[definition["TableName"]] = definition


def test_routes_tables_mirror_create_tables(t: dict[str, Any]) -> None:
    from services.routes.adapters import create_tables

    client = _RecordingClient()
    create_tables(client, NAMES.routes_table, NAMES.route_scan_table)
    for name, d in client.definitions.items():
        p = table(t, name)
        types = {a["AttributeName"]: a["AttributeType"] for a in d["AttributeDefinitions"]}
        assert keys(p) == [
            (k["AttributeName"], k["KeyType"], types[k["AttributeName"]]) for k in d["KeySchema"]
        ]
        expected_gsis = {
            g["IndexName"]: [(k["AttributeName"], k["KeyType"]) for k in g["KeySchema"]]
            for g in d.get("GlobalSecondaryIndexes", [])
        }
        gsis = {
            g["IndexName"]: [(k["AttributeName"], k["KeyType"]) for k in g["KeySchema"]]
            for g in p.get("GlobalSecondaryIndexes", [])
        }
        assert gsis == expected_gsis, name
        for g in p.get("GlobalSecondaryIndexes", []):
            assert g["Projection"] == {"ProjectionType": "ALL"}
        defined = {a["AttributeName"]: a["AttributeType"] for a in p["AttributeDefinitions"]}
        assert defined == types, name
        assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert set(client.definitions) == {NAMES.routes_table, NAMES.route_scan_table}


# --- queues, rules, schedule ----------------------------------------------------------------


ROUTE_QUEUES = ("routes_queue", "routes_projections_queue", "routes_tick_queue")


def test_routes_queues_have_dlqs_kms(t: dict[str, Any]) -> None:
    queues = resources(t, "AWS::SQS::Queue")
    named = {r["Properties"].get("QueueName"): lid for lid, r in queues.items()}
    for attr in ROUTE_QUEUES:
        name = getattr(NAMES, attr)
        q = queues[named[name]]["Properties"]
        assert q["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] == named[NAMES.dlq(name)]
        assert "KmsMasterKeyId" in q
    lambda_min = 6 * CONSUMER_TIMEOUT.to_seconds()
    for attr in ("routes_queue", "routes_projections_queue"):
        assert queues[named[getattr(NAMES, attr)]]["Properties"]["VisibilityTimeout"] >= lambda_min


def _target_queue(t: dict[str, Any], rule: dict[str, Any]) -> str:
    [target] = rule["Properties"]["Targets"]
    return t["Resources"][target["Arn"]["Fn::GetAtt"][0]]["Properties"]["QueueName"]


def test_routes_rules_come_from_ferry_names(t: dict[str, Any]) -> None:
    rules = {r["Properties"].get("Name"): r for r in resources(t, "AWS::Events::Rule").values()}
    for rule_attr, (bus, pattern, queue_attr) in n.ROUTES_RULES.items():
        rule = rules[getattr(NAMES, rule_attr)]
        assert rule["Properties"]["EventPattern"] == pattern
        assert _target_queue(t, rule) == getattr(NAMES, queue_attr)
        assert rule["Properties"]["State"] == "ENABLED"
        bus_prop = rule["Properties"].get("EventBusName")
        if bus == n.DEFAULT_BUS:
            assert bus_prop in (None, n.DEFAULT_BUS)  # the account's default bus
        else:
            assert bus_prop == {"Ref": logical_id(t, "AWS::Events::EventBus", Name=NAMES.bus)}


def tick_schedule(t: dict[str, Any]) -> dict[str, Any]:
    [sched] = [
        s
        for s in resources(t, "AWS::Scheduler::Schedule").values()
        if s["Properties"]["Name"] == NAMES.routes_tick_schedule
    ]
    return sched


def test_tick_schedule_sends_to_the_tick_queue(t: dict[str, Any]) -> None:
    sched = tick_schedule(t)
    p = sched["Properties"]
    assert p["Name"] == NAMES.routes_tick_schedule
    assert p["ScheduleExpression"] == "rate(1 minute)"
    assert p["State"] == "ENABLED"
    tick = logical_id(t, "AWS::SQS::Queue", QueueName=NAMES.routes_tick_queue)
    assert p["Target"]["Arn"] == {"Fn::GetAtt": [tick, "Arn"]}
    role = p["Target"]["RoleArn"]["Fn::GetAtt"][0]
    trust = t["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust[0]["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert can(t, role, "sqs:SendMessage", tick)
    assert not can(t, role, "sqs:ReceiveMessage", tick)


def test_passive_region_keeps_only_the_routes_read_model(synth_global: Synth) -> None:
    t = synth_global.template_json(EAST)
    rules = {r["Properties"].get("Name"): r for r in resources(t, "AWS::Events::Rule").values()}
    assert rules[NAMES.routes_rule]["Properties"]["State"] == "DISABLED"
    assert rules[NAMES.routes_projections_rule]["Properties"]["State"] == "ENABLED"
    assert tick_schedule(t)["Properties"]["State"] == "DISABLED"
    scanner_task = logical_id_of(t, executor_task(t, SCANNER))
    [svc] = [
        r
        for r in resources(t, "AWS::ECS::Service").values()
        if r["Properties"]["TaskDefinition"] == {"Ref": scanner_task}
    ]
    assert svc["Properties"]["DesiredCount"] == 0
    west = synth_global.template_json(WEST)
    assert tick_schedule(west)["Properties"]["State"] == "ENABLED"


def logical_id_of(t: dict[str, Any], res: dict[str, Any]) -> str:
    return next(lid for lid, r in t["Resources"].items() if r is res)


# --- Lambdas, API ---------------------------------------------------------------------------


def test_routes_api_methods(t: dict[str, Any]) -> None:
    routes = {(m, p) for m, p, e in ROUTES if e == ROUTES_HANDLER}
    assert routes == {
        ("POST", "/routes"),
        ("GET", "/routes"),
        ("GET", "/routes/{route_id}"),
        ("PATCH", "/routes/{route_id}"),
        ("POST", "/routes/{route_id}/disable"),
        ("POST", "/routes/{route_id}/enable"),
        ("GET", "/routes/{route_id}/events"),
        ("GET", "/routes/{route_id}/files"),
        ("POST", "/routes/{route_id}/files/retry"),
        ("GET", "/endpoints/{endpoint_id}/unrouted"),
    }
    methods = [
        r["Properties"]
        for r in resources(t, "AWS::ApiGateway::Method").values()
        if r["Properties"]["HttpMethod"] != "OPTIONS"
    ]
    assert len(methods) == len(ROUTES)
    role = function_role(t, "services.routes.handlers.handler")
    fn = next(
        lid
        for lid, r in resources(t, "AWS::Lambda::Function").items()
        if r["Properties"].get("Role", {}).get("Fn::GetAtt", [None])[0] == role
    )
    wired = [m for m in methods if fn in str(m["Integration"]["Uri"])]
    assert len(wired) == len(routes)


def _env(t: dict[str, Any], handler: str) -> dict[str, Any]:
    [fn] = [
        r["Properties"]
        for r in resources(t, "AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") == handler
    ]
    return dict(fn["Environment"]["Variables"])


@pytest.mark.parametrize("handler", ROUTES_LAMBDAS)
def test_routes_lambdas_environment_parses(
    t: dict[str, Any], handler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(t, handler)
    for k, v in env.items():
        if isinstance(v, str):
            monkeypatch.setenv(k, v)
    s = RoutesSettings()
    assert (s.routes, s.scan, s.endpoints, s.jobs) == (
        NAMES.routes_table,
        NAMES.route_scan_table,
        NAMES.endpoints_table,
        NAMES.jobs_table,
    )
    assert s.staging_bucket is None or isinstance(env[n.ENV_STAGING_BUCKET], str)
    # jobs settings: they create jobs in-process
    assert env[n.ENV_PERSISTENCE_MODULE] == "events.dynamodb"
    assert env[n.ENV_EVENTS_TABLE] == NAMES.events_table
    assert env[n.ENV_IDEMPOTENCY_TABLE] == NAMES.idempotency_table
    assert env[n.ENV_ENDPOINTS_TABLE] == NAMES.endpoints_table
    assert not isinstance(env[n.ENV_ROUTES_TICK_QUEUE_URL], str)  # a queue reference


def test_routes_consumers_on_their_queues(t: dict[str, Any]) -> None:
    esms = resources(t, "AWS::Lambda::EventSourceMapping").values()
    for handler, queue in (
        ("services.routes.push.handler", NAMES.routes_queue),
        ("services.routes.consumer.handler", NAMES.routes_projections_queue),
    ):
        q = logical_id(t, "AWS::SQS::Queue", QueueName=queue)
        [esm] = [e["Properties"] for e in esms if q in str(e["Properties"]["EventSourceArn"])]
        assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        role = function_role(t, handler)
        fn = next(
            lid
            for lid, r in resources(t, "AWS::Lambda::Function").items()
            if r["Properties"].get("Role", {}).get("Fn::GetAtt", [None])[0] == role
        )
        assert esm["FunctionName"] == {"Ref": fn}


# --- the scanner ----------------------------------------------------------------------------


def test_scanner_service_in_the_executor_cluster_private_singleton(t: dict[str, Any]) -> None:
    task = executor_task(t, SCANNER)
    services = {
        r["Properties"]["TaskDefinition"]["Ref"]: r["Properties"]
        for r in resources(t, "AWS::ECS::Service").values()
    }
    scanner = services[logical_id_of(t, task)]
    executor = services[logical_id_of(t, executor_task(t))]
    assert scanner["Cluster"] == executor["Cluster"]
    assert scanner["DesiredCount"] == 1
    assert scanner["DeploymentConfiguration"]["MaximumPercent"] == 100
    net = scanner["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert net["AssignPublicIp"] == "DISABLED"
    # same egress-only security group and private subnets: the same static NAT egress IPs
    assert net == executor["NetworkConfiguration"]["AwsvpcConfiguration"]
    [container] = task["Properties"]["ContainerDefinitions"]
    assert container["Command"] == ["python", "-m", SCANNER]
    [exec_container] = executor_task(t)["Properties"]["ContainerDefinitions"]
    assert container["Image"] == exec_container["Image"]  # one image


def test_scanner_container_settings_parse(
    t: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    [container] = executor_task(t, SCANNER)["Properties"]["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    for k, v in env.items():
        if isinstance(v, str):
            monkeypatch.setenv(k, v)
    s = RoutesSettings()
    assert s.routes == NAMES.routes_table and s.scan == NAMES.route_scan_table
    assert not isinstance(env[n.ENV_ROUTES_TICK_QUEUE_URL], str)
    assert env[n.ENV_EVENTS_TABLE] == NAMES.events_table
    assert env[n.ENV_PERSISTENCE_MODULE] == "events.dynamodb"


# --- IAM boundaries -------------------------------------------------------------------------


@pytest.mark.parametrize("handler", ROUTES_LAMBDAS)
def test_routes_lambdas_cannot_read_secrets(t: dict[str, Any], handler: str) -> None:
    role = function_role(t, handler)
    assert not can_on_text(t, role, "secretsmanager:GetSecretValue", NAMES.secrets_prefix)
    assert not can_on_text(t, role, "secretsmanager:PutSecretValue", NAMES.secrets_prefix)


def test_scanner_reads_secrets(t: dict[str, Any]) -> None:
    role = scanner_role(t)
    assert can_on_text(t, role, "secretsmanager:GetSecretValue", NAMES.secrets_prefix)
    assert not can_on_text(t, role, "secretsmanager:PutSecretValue", NAMES.secrets_prefix)


def _roles(t: dict[str, Any]) -> dict[str, str]:
    return {
        **{h: function_role(t, h) for h in ROUTES_LAMBDAS},
        SCANNER: scanner_role(t),
    }


def test_no_routes_component_writes_the_jobs_or_endpoints_read_models(t: dict[str, Any]) -> None:
    for who, role in _roles(t).items():
        for rm in (NAMES.jobs_table, NAMES.endpoints_table):
            assert not any(can(t, role, a, table_id(t, rm)) for a in WRITE), (who, rm)


def test_only_the_routes_consumer_writes_the_routes_read_model(t: dict[str, Any]) -> None:
    routes = table_id(t, NAMES.routes_table)
    for who, role in _roles(t).items():
        assert all(can(t, role, a, routes) for a in READ), who
        writes = any(can(t, role, a, routes) for a in WRITE)
        assert writes == (who == "services.routes.consumer.handler"), who
    assert not can(t, executor_role(t), "dynamodb:PutItem", routes)


def test_job_creators_append_events_and_use_idempotency(t: dict[str, Any]) -> None:
    events = table_id(t, NAMES.events_table)
    idem = table_id(t, NAMES.idempotency_table)
    scan = table_id(t, NAMES.route_scan_table)
    roles = _roles(t)
    for who in ("services.routes.handlers.handler", "services.routes.push.handler", SCANNER):
        assert can(t, roles[who], "dynamodb:PutItem", events), who
        assert can(t, roles[who], "dynamodb:UpdateItem", idem), who
    # the API writes the routes index (name claims, push buckets) in the scan table
    for who in ("services.routes.handlers.handler", "services.routes.push.handler", SCANNER):
        assert can(t, roles[who], "dynamodb:PutItem", scan), who
    consumer = roles["services.routes.consumer.handler"]
    assert can(t, consumer, "dynamodb:Query", events)
    assert not any(can(t, consumer, a, events) for a in WRITE)


def test_scanner_consumes_ticks_and_reaches_partner_buckets_through_their_roles(
    t: dict[str, Any],
) -> None:
    role = scanner_role(t)
    tick = logical_id(t, "AWS::SQS::Queue", QueueName=NAMES.routes_tick_queue)
    assert can(t, role, "sqs:ReceiveMessage", tick) and can(t, role, "sqs:DeleteMessage", tick)
    push = function_role(t, "services.routes.push.handler")
    assert not can(t, push, "sqs:ReceiveMessage", tick)
    # issue 8: customer buckets only through the customer's role (sts:AssumeRole with a Ferry
    # external id), never a direct S3 grant on other buckets
    for r in (role, push):
        assert can_on_text(t, r, "sts:AssumeRole", ":role/*")
        assert not can_on_text(t, r, "s3:ListBucket", ":s3:::*")


def test_routes_alarms(t: dict[str, Any]) -> None:
    descriptions = " | ".join(
        a["Properties"].get("AlarmDescription", "")
        for a in resources(t, "AWS::CloudWatch::Alarm").values()
    )
    for q in ("RoutesQueue", "RoutesProjectionsQueue", "RoutesTickQueue"):
        assert f"dead-letter queue {q}" in descriptions
        assert f"oldest message in {q}" in descriptions
    for fn in ("RoutesApi", "RoutesPush", "RoutesConsumer"):
        assert f"{fn} errors" in descriptions
