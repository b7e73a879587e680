"""Every resource of issue 4, asserted on the synthesized templates (both regions)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

import ferry.names as n
from events.contract import EVENT_TYPES
from infra.config import FerryConfig
from infra.constructs.api import PUBLIC_ROUTES, ROUTES
from infra.constructs.functions import METRICS_NAMESPACE, handler_string
from infra.constructs.monitoring import APP_METRICS
from infra.constructs.services import CONSUMER_TIMEOUT
from tests.infra.conftest import CONSUMER, EAST, WEST, Synth

NAMES = n.ResourceNames("ferry")
CFG = FerryConfig()


def resources(t: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == type_}


def table(t: dict[str, Any], name: str) -> dict[str, Any]:
    [props] = [
        r["Properties"]
        for r in resources(t, "AWS::DynamoDB::GlobalTable").values()
        if r["Properties"]["TableName"] == name
    ]
    return props


def keys(props: dict[str, Any]) -> list[tuple[str, str, str]]:
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    return [
        (k["AttributeName"], k["KeyType"], types[k["AttributeName"]]) for k in props["KeySchema"]
    ]


# --- both regions --------------------------------------------------------------------------


def test_one_stack_per_region_of_the_pair(synth: Synth) -> None:
    assert set(synth.stacks) == {WEST, EAST}
    for region, stack in synth.stacks.items():
        assert stack.region == region
        env = synth.template_json(region)
        task = executor_task(env)
        container_env = {
            e["Name"]: e["Value"]
            for e in task["Properties"]["ContainerDefinitions"][0]["Environment"]
        }
        assert container_env[n.ENV_DEPLOYMENT_REGION] == region  # leases record the region


def executor_task(t: dict[str, Any], command: str = "services.executor") -> dict[str, Any]:
    """The task definition whose one container runs ``python -m <command>``."""
    [task] = [
        r
        for r in resources(t, "AWS::ECS::TaskDefinition").values()
        if r["Properties"]["ContainerDefinitions"][0]["Command"] == ["python", "-m", command]
    ]
    return task


# --- DynamoDB ------------------------------------------------------------------------------


def test_event_store_table(synth: Synth) -> None:
    t = synth.template_json()
    p = table(t, NAMES.events_table)
    assert keys(p) == [("stream_id", "HASH", "S"), ("version", "RANGE", "N")]
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert p["SSESpecification"]["SSEEnabled"] is True
    assert p["SSESpecification"]["SSEType"] == "KMS"
    [replica] = p["Replicas"]
    assert replica["DeletionProtectionEnabled"] is True
    assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    # the customer-managed key of this stack
    [key_id] = resources(t, "AWS::KMS::Key")
    assert key_id in str(replica["SSESpecification"]["KMSMasterKeyId"])
    assert resources(t, "AWS::KMS::Key")[key_id]["Properties"]["EnableKeyRotation"] is True


def test_read_model_tables_and_gsis(synth: Synth) -> None:
    t = synth.template_json()
    ep = table(t, NAMES.endpoints_table)
    assert keys(ep) == [("endpoint_id", "HASH", "S")]
    [gsi] = ep["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "customer-index"
    assert [k["AttributeName"] for k in gsi["KeySchema"]] == ["customer_id", "created_at"]
    jobs = table(t, NAMES.jobs_table)
    assert keys(jobs) == [("job_id", "HASH", "S")]
    gsis = {
        g["IndexName"]: [k["AttributeName"] for k in g["KeySchema"]]
        for g in jobs["GlobalSecondaryIndexes"]
    }
    assert gsis == {
        "customer-created-index": ["customer_id", "created_at"],
        "customer-status-index": ["customer_status", "created_at"],
        "customer-route-index": ["customer_route", "created_at"],
        "customer-route-status-index": ["customer_route_status", "created_at"],
        "customer-source-index": ["customer_source", "created_at"],
        "customer-source-status-index": ["customer_source_status", "created_at"],
        "customer-target-index": ["customer_target", "created_at"],
        "customer-target-status-index": ["customer_target_status", "created_at"],
    }
    projections = {
        g["IndexName"]: g["Projection"]["ProjectionType"] for g in jobs["GlobalSecondaryIndexes"]
    }
    assert {n for n, p in projections.items() if p == "KEYS_ONLY"} == {
        "customer-source-index",
        "customer-source-status-index",
        "customer-target-index",
        "customer-target-status-index",
    }


@pytest.mark.parametrize(
    ("name", "schema", "ttl"),
    [
        (NAMES.idempotency_table, [("id", "HASH", "S")], "expiration"),
        (NAMES.leases_table, [("endpoint_id", "HASH", "S"), ("slot", "RANGE", "N")], "ttl"),
        (NAMES.api_keys_table, [("key_hash", "HASH", "S")], None),
        (NAMES.route_scan_table, [("route_id", "HASH", "S"), ("key", "RANGE", "S")], "ttl"),
    ],
)
def test_other_tables(synth: Synth, name: str, schema: list, ttl: str | None) -> None:
    p = table(synth.template_json(), name)
    assert keys(p) == schema
    if ttl:
        assert p["TimeToLiveSpecification"] == {"AttributeName": ttl, "Enabled": True}
    [replica] = p["Replicas"]
    assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_every_table_is_retained_and_encrypted(synth: Synth) -> None:
    tables = resources(synth.template_json(), "AWS::DynamoDB::GlobalTable")
    assert sorted(t["Properties"]["TableName"] for t in tables.values()) == sorted(
        [
            NAMES.events_table, NAMES.endpoints_table, NAMES.jobs_table, NAMES.job_stats_table,
            NAMES.routes_table,
            NAMES.idempotency_table, NAMES.leases_table, NAMES.api_keys_table,
            NAMES.access_log_table, NAMES.route_scan_table, NAMES.subscriptions_table,
            NAMES.audit_exports_table,
        ]
    )  # fmt: skip
    for res in tables.values():
        assert res["DeletionPolicy"] == "Retain"
        assert res["Properties"]["SSESpecification"]["SSEType"] == "KMS"


# --- EventBridge ---------------------------------------------------------------------------


def test_bus_archive_and_consumer_policy(synth: Synth) -> None:
    t = synth.template(WEST)
    t.has_resource_properties("AWS::Events::EventBus", {"Name": NAMES.bus})
    t.has_resource_properties(
        "AWS::Events::Archive",
        {
            "ArchiveName": NAMES.archive,
            "RetentionDays": CFG.archive_retention_days,
            "EventPattern": {"source": list(n.ALL_SOURCES)},
        },
    )
    template = synth.template_json(WEST)
    # Consumer accounts may do nothing on the Ferry bus (no PutRule: no rule of theirs can
    # match another tenant's events); Ferry-managed rules deliver (ferry/consumers.py).
    [bus_policy] = resources(template, "AWS::Events::EventBusPolicy").values()
    st = bus_policy["Properties"]["Statement"]
    assert st["Effect"] == "Deny" and st["Action"] == "events:*"
    assert f":iam::{CONSUMER}:root" in str(st["Principal"])
    assert len(st["Resource"]) == 2 and f":rule/{NAMES.bus}/*" in str(st["Resource"])
    for policy in resources(template, "AWS::Events::EventBusPolicy").values():
        assert policy["Properties"]["Statement"]["Effect"] == "Deny"


def test_consumer_delivery_role_puts_events_on_consumer_buses_only(synth: Synth) -> None:
    template = synth.template_json(WEST)
    roles = {
        lid: r
        for lid, r in resources(template, "AWS::IAM::Role").items()
        if "ConsumerDeliveryRole" in lid
    }
    [(role_id, role)] = roles.items()
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]
    statements = [
        st
        for p in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for st in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert [st["Action"] for st in statements] == ["events:PutEvents"]
    assert f":{CONSUMER}:event-bus/*" in str(statements[0]["Resource"])
    assert "ConsumerDeliveryRoleArn" in template["Outputs"]


def test_rules_come_from_ferry_names(synth: Synth) -> None:
    t = synth.template_json()
    rules = {
        r["Properties"]["Name"]: r["Properties"]
        for r in resources(t, "AWS::Events::Rule").values()
        if "Name" in r["Properties"]
    }
    queues = {
        lid: r["Properties"]["QueueName"]
        for lid, r in resources(t, "AWS::SQS::Queue").items()
        if "QueueName" in r["Properties"]
    }
    for rule_attr, (pattern, queue_attr) in n.RULES.items():
        rule = rules[getattr(NAMES, rule_attr)]
        assert rule["EventPattern"] == pattern
        assert rule["State"] == "ENABLED"
        [target] = rule["Targets"]
        assert queues[target["Arn"]["Fn::GetAtt"][0]] == getattr(NAMES, queue_attr)


def test_schema_registry_has_one_schema_per_event_in_a_nested_stack(synth: Synth) -> None:
    from aws_cdk.assertions import Template

    regional = synth.template(WEST)
    regional.resource_count_is("AWS::EventSchemas::Schema", 0)
    regional.resource_count_is("AWS::CloudFormation::Stack", 1)
    nested = synth.stacks[WEST].messaging.schema_stack
    t = Template.from_stack(nested)
    t.resource_count_is("AWS::EventSchemas::Registry", 1)
    t.resource_count_is("AWS::EventSchemas::Schema", len(EVENT_TYPES))
    schemas = t.to_json()
    names = {
        r["Properties"]["SchemaName"]
        for r in resources(schemas, "AWS::EventSchemas::Schema").values()
    }
    assert names == {f"{m.SOURCE}@{dt}" for dt, m in EVENT_TYPES.items()}
    import json

    for r in resources(schemas, "AWS::EventSchemas::Schema").values():
        content = json.loads(r["Properties"]["Content"])
        assert r["Properties"]["Type"] == "JSONSchemaDraft4"
        assert "$defs" not in r["Properties"]["Content"]
        assert content["properties"]["detail"]["$ref"].startswith("#/definitions/")


# --- SQS -----------------------------------------------------------------------------------


def test_every_queue_has_a_dlq_kms_and_tls(synth: Synth) -> None:
    t = synth.template_json()
    queues = resources(t, "AWS::SQS::Queue")
    named = {r["Properties"].get("QueueName"): lid for lid, r in queues.items()}
    for _, queue_attr in n.RULES.values():
        name = getattr(NAMES, queue_attr)
        q = queues[named[name]]["Properties"]
        assert q["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] == named[NAMES.dlq(name)]
        assert 1 < q["RedrivePolicy"]["maxReceiveCount"] <= 10
    for q in queues.values():
        assert "KmsMasterKeyId" in q["Properties"]
    tls_only = [
        s
        for p in resources(t, "AWS::SQS::QueuePolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(tls_only) == len(queues)


def test_visibility_timeouts_match_consumers(synth: Synth) -> None:
    t = synth.template_json()
    vis = {
        r["Properties"]["QueueName"]: r["Properties"].get("VisibilityTimeout", 30)
        for r in resources(t, "AWS::SQS::Queue").values()
        if "QueueName" in r["Properties"]
    }
    assert vis[NAMES.executor_queue] >= CFG.lease_seconds
    lambda_min = 6 * CONSUMER_TIMEOUT.to_seconds()
    assert vis[NAMES.projections_queue] >= lambda_min
    assert vis[NAMES.jobs_queue] >= lambda_min
    fns = {
        r["Properties"]["Handler"]: r["Properties"]
        for r in resources(t, "AWS::Lambda::Function").values()
        if "Handler" in r["Properties"]
    }
    for h in ("services.jobs.process_manager.handler", "services.projections.consumer.handler"):
        assert fns[h]["Timeout"] * 6 <= lambda_min


# --- Lambda --------------------------------------------------------------------------------

HANDLERS = {
    "services/endpoints/handlers.py:handler": "endpoints",
    "services/jobs/handlers.py:handler": "jobs",
    "services/projections/handlers.py:handler": "projections",
    "services/jobs/process_manager.py:handler": "jobs",
    "services/endpoints/consumer.py:handler": "endpoints",
    "services/projections/consumer.py:handler": "projections",
    "events/publisher.py:handler": "publisher",
    "services/routes/handlers.py:handler": "routes",
    "services/routes/push.py:handler": "routes",
    "services/routes/consumer.py:handler": "routes",
    "services/jobs/slow_check.py:handler": "jobs",
    "services/notifications/handlers.py:handler": "notifications",
    "services/notifications/consumer.py:handler": "notifications",
    "services/notifications/deliver.py:handler": "notifications",
    "services/projections/audit_checkpoints.py:handler": "audit",
    "services/projections/audit_exporter.py:handler": "audit",
}


def lambdas(t: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["Handler"]: r["Properties"]
        for r in resources(t, "AWS::Lambda::Function").values()
        if r["Properties"].get("Handler", "").startswith(("services.", "events."))
    }


def test_lambdas_powertools_tracing_and_environment(synth: Synth) -> None:
    fns = lambdas(synth.template_json())
    assert set(fns) == {handler_string(h) for h in HANDLERS}
    for entry, service in HANDLERS.items():
        p = fns[handler_string(entry)]
        env = p["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == service
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE
        assert env["POWERTOOLS_LOG_LEVEL"]
        assert env[n.ENV_EVENTS_TABLE] == NAMES.events_table
        assert env[n.ENV_PERSISTENCE_MODULE] == "events.dynamodb"
        assert env[n.ENV_SECRETS_PREFIX] == NAMES.secrets_prefix
        assert env[n.ENV_DEPLOYMENT_REGION] == WEST
        assert p["TracingConfig"] == {"Mode": "Active"}
        assert p["Runtime"] == "python3.11"
    for h in ("services.jobs.process_manager.handler", "services.projections.consumer.handler"):
        assert fns[h]["ReservedConcurrentExecutions"] == CFG.consumer_reserved_concurrency


def test_sqs_event_sources_report_batch_item_failures(synth: Synth) -> None:
    t = synth.template(WEST)
    for _q in (NAMES.jobs_queue, NAMES.projections_queue):
        t.has_resource_properties(
            "AWS::Lambda::EventSourceMapping",
            {
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "EventSourceArn": Match.any_value(),
                "ScalingConfig": {"MaximumConcurrency": CFG.consumer_reserved_concurrency},
            },
        )
    t.resource_properties_count_is(
        "AWS::Lambda::EventSourceMapping",
        {"FunctionResponseTypes": ["ReportBatchItemFailures"]},
        9,  # + routes push and read model, notifications fan-out and delivery, endpoint checks,
        # the audit exporter
    )


def test_publisher_on_the_event_store_stream(synth: Synth) -> None:
    t = synth.template_json()
    events_table = next(
        lid
        for lid, r in resources(t, "AWS::DynamoDB::GlobalTable").items()
        if r["Properties"]["TableName"] == NAMES.events_table
    )
    [esm] = [
        r["Properties"]
        for r in resources(t, "AWS::Lambda::EventSourceMapping").values()
        if events_table in str(r["Properties"]["EventSourceArn"])
    ]
    assert esm["BisectBatchOnFunctionError"] is True
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["StartingPosition"] == "TRIM_HORIZON"
    assert esm["ParallelizationFactor"] == 1
    dlq = esm["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    assert t["Resources"][dlq]["Type"] == "AWS::SQS::Queue"
    fn = next(
        lid
        for lid, r in resources(t, "AWS::Lambda::Function").items()
        if r["Properties"].get("Handler") == "events.publisher.handler"
    )
    assert esm["FunctionName"] == {"Ref": fn}


# --- API Gateway ---------------------------------------------------------------------------


def _paths(t: dict[str, Any]) -> dict[str, str]:
    """resource logical id -> full path."""
    res = resources(t, "AWS::ApiGateway::Resource")
    out: dict[str, str] = {}

    def path(lid: str) -> str:
        if lid not in out:
            p = res[lid]["Properties"]
            parent = p["ParentId"]
            prefix = path(parent["Ref"]) if "Ref" in parent else ""
            out[lid] = f"{prefix}/{p['PathPart']}"
        return out[lid]

    for lid in res:
        path(lid)
    return out


def test_a_method_per_route(synth: Synth) -> None:
    t = synth.template_json()
    paths = _paths(t)
    fns = {
        lid: r["Properties"].get("Handler")
        for lid, r in resources(t, "AWS::Lambda::Function").items()
    }
    methods = {}
    for r in resources(t, "AWS::ApiGateway::Method").values():
        p = r["Properties"]
        path = paths[p["ResourceId"]["Ref"]] if "Ref" in p["ResourceId"] else "/"
        uri = str(p["Integration"]["Uri"])
        [handler] = [h for lid, h in fns.items() if lid in uri]
        methods[(p["HttpMethod"], path)] = (handler, p)
    assert set(methods) == {(m, path) for m, path, _ in ROUTES}
    for m, path, entry in ROUTES:
        handler, p = methods[(m, path)]
        assert handler == handler_string(entry)
        assert p["ApiKeyRequired"] is ((m, path) not in PUBLIC_ROUTES)
        assert "RequestValidatorId" in p
        for param in [s[1:-1] for s in path.split("/") if s.startswith("{")]:
            assert p["RequestParameters"][f"method.request.path.{param}"] is True


def test_usage_plan_access_logs_and_tracing(synth: Synth) -> None:
    t = synth.template(WEST)
    t.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {"RateLimit": CFG.api_rate_limit, "BurstLimit": CFG.api_burst_limit},
            "Quota": {"Limit": CFG.api_quota_per_day, "Period": "DAY"},
            "ApiStages": Match.any_value(),
        },
    )
    t.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "AccessLogSetting": {"DestinationArn": Match.any_value(), "Format": Match.any_value()},
            "TracingEnabled": True,
        },
    )
    t.resource_count_is("AWS::ApiGateway::RequestValidator", 2)


# --- ECS Fargate ---------------------------------------------------------------------------


def test_executor_service_private_no_public_ip(synth: Synth) -> None:
    t = synth.template_json()
    task_id = next(
        lid for lid, r in resources(t, "AWS::ECS::TaskDefinition").items() if r is executor_task(t)
    )
    [svc] = [
        r
        for r in resources(t, "AWS::ECS::Service").values()
        if r["Properties"]["TaskDefinition"] == {"Ref": task_id}
    ]
    net = svc["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert net["AssignPublicIp"] == "DISABLED"
    subnets = resources(t, "AWS::EC2::Subnet")
    for s in net["Subnets"]:
        assert subnets[s["Ref"]]["Properties"]["MapPublicIpOnLaunch"] is False
    assert svc["Properties"]["LaunchType"] == "FARGATE"
    [container] = executor_task(t)["Properties"]["ContainerDefinitions"]
    assert container["Command"] == ["python", "-m", "services.executor"]
    [sg_id] = [s["Fn::GetAtt"][0] for s in net["SecurityGroups"]]
    sg = t["Resources"][sg_id]["Properties"]
    assert "SecurityGroupIngress" not in sg
    assert not resources(t, "AWS::EC2::SecurityGroupIngress")


def test_nat_with_static_eips_output(synth: Synth) -> None:
    t = synth.template_json()
    eips = {lid for lid, r in resources(t, "AWS::EC2::EIP").items()}
    nats = resources(t, "AWS::EC2::NatGateway")
    assert len(nats) == 2
    assert {r["Properties"]["AllocationId"]["Fn::GetAtt"][0] for r in nats.values()} == eips
    [out] = [o for k, o in t["Outputs"].items() if "NatEgressIps" in k]
    assert set(refs_of(out["Value"])) == eips


def refs_of(v: Any) -> list[str]:
    from tests.infra.iam import refs

    return sorted(refs(v))


def test_executor_autoscaling_on_queue_depth_to_zero(synth: Synth) -> None:
    t = synth.template_json()
    [target] = resources(t, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert target["Properties"]["MinCapacity"] == 0
    assert target["Properties"]["MaxCapacity"] == CFG.executor_max_tasks
    policies = resources(t, "AWS::ApplicationAutoScaling::ScalingPolicy")
    assert policies
    alarms = [
        a["Properties"]
        for a in resources(t, "AWS::CloudWatch::Alarm").values()
        if "Metrics" in a["Properties"]
        and "ApproximateNumberOfMessages" in str(a["Properties"]["Metrics"])
        and any(p in str(a["Properties"].get("AlarmActions")) for p in policies)
    ]
    assert len(alarms) == 2  # scale out / scale in to zero
    for a in alarms:
        metrics = str(a["Metrics"])
        assert NAMES.executor_queue in metrics or "ExecutorQueue" in metrics


def test_executor_container_settings_parse(synth: Synth, monkeypatch: pytest.MonkeyPatch) -> None:
    """The container's environment is valid input for the executor's own settings model."""
    from services.executor.settings import ExecutorSettings

    t = synth.template_json()
    task = executor_task(t)
    env = {
        e["Name"]: e["Value"] for e in task["Properties"]["ContainerDefinitions"][0]["Environment"]
    }
    literal = {k: v for k, v in env.items() if isinstance(v, str)}
    for k, v in literal.items():
        monkeypatch.setenv(k, v)
    settings = ExecutorSettings()
    assert settings.lease_seconds == CFG.lease_seconds
    assert settings.run_validator is True
    assert settings.region == WEST
    assert settings.events_table == NAMES.events_table
    assert not isinstance(env[n.ENV_EXECUTOR_QUEUE_URL], str)  # a reference to the queue
    assert not isinstance(env[n.ENV_VALIDATOR_QUEUE_URL], str)
    assert env["POWERTOOLS_SERVICE_NAME"] == "executor"


# --- S3 ------------------------------------------------------------------------------------


def test_staging_bucket(synth: Synth) -> None:
    t = synth.template_json()
    [bucket] = [
        r["Properties"]
        for r in resources(t, "AWS::S3::Bucket").values()
        if "LifecycleConfiguration" in r["Properties"]
        and NAMES.staging_bucket in str(r["Properties"].get("BucketName"))
    ]
    enc = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert enc["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    abort = rules["abort-incomplete-multipart"]["AbortIncompleteMultipartUpload"][
        "DaysAfterInitiation"
    ]
    assert abort > CFG.resume_window_days
    assert rules["expire-staging-objects"]["ExpirationInDays"] > abort
    assert "LoggingConfiguration" in bucket
    tls = [
        s
        for p in resources(t, "AWS::S3::BucketPolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(tls) == 3  # staging, access-log and audit-checkpoint buckets


# --- CloudWatch ----------------------------------------------------------------------------


def _alarms(t: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["Properties"] for a in resources(t, "AWS::CloudWatch::Alarm").values()]


def test_alarms_go_to_the_sns_topic(synth: Synth) -> None:
    t = synth.template_json()
    [topic] = resources(t, "AWS::SNS::Topic")
    assert "KmsMasterKeyId" in t["Resources"][topic]["Properties"]
    alarms = [
        a
        for a in _alarms(t)
        if "Ferry" in a.get("AlarmDescription", "") or topic in str(a.get("AlarmActions"))
    ]
    with_topic = [a for a in _alarms(t) if topic in str(a.get("AlarmActions"))]
    assert with_topic and len(with_topic) == len(
        [a for a in alarms if topic in str(a.get("AlarmActions"))]
    )
    descriptions = " | ".join(a["AlarmDescription"] for a in with_topic)
    # any DLQ depth > 0: the four queues' DLQs and the publisher's
    dlq_alarms = [a for a in with_topic if "dead-letter" in a["AlarmDescription"]]
    assert len(dlq_alarms) == 11  # + routes' three, notifications' two, the endpoint checks
    for a in dlq_alarms:
        assert a["Threshold"] == 0 and a["ComparisonOperator"] == "GreaterThanThreshold"
    assert sum("oldest message" in a["AlarmDescription"] for a in with_topic) == 10
    assert "failed in 15 minutes" in descriptions
    assert "Executor Fargate tasks failed" in descriptions
    assert "publisher lags" in descriptions
    for fn in (
        "EndpointsApi",
        "JobsApi",
        "QueriesApi",
        "ProcessManager",
        "ProjectionsConsumer",
        "Publisher",
        "RoutesApi",
        "RoutesPush",
        "RoutesConsumer",
        "NotificationsApi",
        "NotificationsFanout",
        "NotificationsDeliver",
    ):
        assert f"{fn} errors" in descriptions and f"{fn} throttled" in descriptions


def test_job_failure_rate_uses_the_service_metrics(synth: Synth) -> None:
    t = synth.template_json()
    [rate] = [a for a in _alarms(t) if "failed in 15 minutes" in a.get("AlarmDescription", "")]
    stats = [m["MetricStat"]["Metric"] for m in rate["Metrics"] if "MetricStat" in m]
    assert {s["MetricName"] for s in stats} == {"JobSucceeded", "JobFailed"}
    for s in stats:
        assert s["Namespace"] == METRICS_NAMESPACE
        assert s["Dimensions"] == [{"Name": "service", "Value": APP_METRICS[s["MetricName"]]}]


def test_fargate_task_failure_rule(synth: Synth) -> None:
    synth.template(WEST).has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": Match.object_like(
                {"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"]}
            ),
            "Targets": Match.any_value(),
        },
    )


def test_dashboard(synth: Synth) -> None:
    t = synth.template_json()
    [dash] = resources(t, "AWS::CloudWatch::Dashboard").values()
    body = str(dash["Properties"]["DashboardBody"])
    for title in (
        "Jobs per minute by status",
        "Bytes per second",
        "Queue depth",
        "Job duration p95",
    ):
        assert title in body
    assert "p95" in body and "BytesTransferred" in body and "JobDurationSeconds" in body


def test_the_stack_keeps_headroom_under_cloudformations_resource_limit(synth: Synth) -> None:
    """CloudFormation refuses a stack of more than 500 resources (synth fails at 501). Keep room
    for a few more routes and functions; past this, split the stack or share resources."""
    for region in synth.stacks:
        count = len(synth.template_json(region)["Resources"])
        print(f"{region}: {count} resources")
        assert count <= 470, f"{region}: {count} of CloudFormation's 500 resources"
