"""multi_region=active_active (docs/multi-region.md): two replica regions + a witness, MRSC tables
owned by the home region's stack, every writer in both regions, publication claims, staging CRR,
the API's custom domain with Route 53 latency records and health checks. One synth per module."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match

import ferry.names as n
from infra.config import FerryConfig
from infra.constructs import services as svc
from infra.constructs.api import ROUTES
from infra.constructs.expiry import EXPIRY_SWEEP_ACTIONS, EXPIRY_SWEEP_HANDLER
from infra.constructs.multi_region import (
    ENV_PEER_BUS_ARNS,
    ENV_PUBLICATIONS_TABLE,
    HEALTH_CHECK_PATH,
    PUBLICATION_ITEM_ACTIONS,
    api_domain_stack_name,
)
from infra.constructs.tables import publications_table_name
from infra.stack import stack_name
from tests.infra.conftest import CFN_LINT_IGNORED, Synth
from tests.infra.iam import function_role, refs, role_statements, text

HOME, PEER, WITNESS = "us-east-1", "us-east-2", "us-west-2"
DOMAIN, ZONE = "api.ferry.example.com", "Z0123456789ABCDEFGHIJ"
NAMES = n.ResourceNames("ferry")
PUBLICATIONS = publications_table_name(NAMES)
MRSC_TABLES = {
    NAMES.events_table,
    NAMES.api_keys_table,
    NAMES.endpoints_table,
    NAMES.idempotency_table,
    NAMES.leases_table,
    PUBLICATIONS,
    NAMES.subscriptions_table,  # both regions deliver; a delivery's claim decides which sends
}
REGIONAL_TABLES = {
    NAMES.jobs_table,
    NAMES.job_stats_table,
    NAMES.routes_table,
    NAMES.route_scan_table,
    NAMES.access_log_table,
    NAMES.audit_exports_table,
}
CONTEXT = {
    "bundle": "false",
    "executor_image": "ecr:ferry-executor:test",
    "multi_region": "active_active",
    "regions": f"{HOME},{PEER}",
    "witness_region": WITNESS,
}


@dataclass
class App:
    outdir: Path
    stacks: dict[str, Any]  # stack name -> Stack
    lint: list[tuple[Path, subprocess.Popen[str]]]

    def template(self, name: str) -> dict[str, Any]:
        return json.loads(
            (self.outdir / f"{self.stacks[name].artifact_id}.template.json").read_text()
        )


def _synth(outdir: Path, context: dict[str, Any], lint: bool) -> App:
    from aws_cdk import Stack

    from infra.app import build_app

    app = build_app(context, outdir=str(outdir))
    app.synth()
    stacks = {c.stack_name: c for c in app.node.children if isinstance(c, Stack)}
    procs = []
    if lint:
        cfn_lint = Path(sys.executable).with_name("cfn-lint")
        for stack in stacks.values():
            path = outdir / f"{stack.artifact_id}.template.json"
            cmd = [str(cfn_lint), "--format", "parseable", "--regions", stack.region]
            cmd += ["--ignore-checks", *CFN_LINT_IGNORED, "--", str(path)]
            procs.append(
                (
                    path,
                    subprocess.Popen(
                        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                    ),
                )
            )
    return App(outdir, stacks, procs)


@pytest.fixture(scope="module")
def aa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    app = _synth(
        tmp_path_factory.mktemp("cdk-active-active"),
        {**CONTEXT, "api_domain_name": DOMAIN, "api_hosted_zone_id": ZONE},
        lint=True,
    )
    yield app
    for _, proc in app.lint:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


HOME_STACK, PEER_STACK = stack_name("ferry", HOME), stack_name("ferry", PEER)


def _of(t: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in t["Resources"].values() if r["Type"] == type_]


def _tables(t: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["TableName"]: r["Properties"] for r in _of(t, "AWS::DynamoDB::GlobalTable")
    }


# --- layout -----------------------------------------------------------------------------------


def test_three_region_layout_two_regional_stacks_and_their_api_domains(aa: App) -> None:
    assert set(aa.stacks) == {
        HOME_STACK,
        PEER_STACK,
        api_domain_stack_name("ferry", HOME),
        api_domain_stack_name("ferry", PEER),
    }
    assert {s.region for s in aa.stacks.values()} == {HOME, PEER}  # nothing deploys to the witness


def test_mrsc_tables_are_strong_with_the_witness_and_no_ttl(aa: App) -> None:
    tables = _tables(aa.template(HOME_STACK))
    for name in MRSC_TABLES:
        p = tables[name]
        assert p["MultiRegionConsistency"] == "STRONG", name
        assert p["GlobalTableWitnesses"] == [{"Region": WITNESS}], name
        assert {r["Region"] for r in p["Replicas"]} == {HOME, PEER}, name
        assert "TimeToLiveSpecification" not in p, name  # MRSC supports no TTL
        assert p["BillingMode"] == "PAY_PER_REQUEST"
        assert p["SSESpecification"]["SSEType"] == "KMS"
        # each replica with the data key of its own region (alias/<prefix>-data)
        peer = next(r for r in p["Replicas"] if r["Region"] == PEER)
        assert f"kms:{PEER}:" in text(peer["SSESpecification"]["KMSMasterKeyId"])
        assert "alias/ferry-data" in text(peer["SSESpecification"]["KMSMasterKeyId"])
    assert tables[NAMES.events_table]["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    subs = tables[NAMES.subscriptions_table]  # services/notifications/adapters.py's keys
    assert subs["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    pub = tables[PUBLICATIONS]
    assert pub["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert pub["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]


def test_read_models_access_log_and_exports_stay_regional(aa: App) -> None:
    for stack, region in ((HOME_STACK, HOME), (PEER_STACK, PEER)):
        tables = _tables(aa.template(stack))
        for name in REGIONAL_TABLES:
            p = tables[name]
            assert [r["Region"] for r in p["Replicas"]] == [region], (stack, name)
            assert "MultiRegionConsistency" not in p and "GlobalTableWitnesses" not in p
    # the peer owns none of the MRSC tables: it uses the local replicas the home stack creates
    assert not MRSC_TABLES & set(_tables(aa.template(PEER_STACK)))


def test_peer_publisher_reads_the_local_replica_stream(aa: App) -> None:
    t = aa.template(PEER_STACK)
    [lookup] = _of(t, "Custom::AWS")
    assert "describeTable" in str(lookup["Properties"]["Create"])
    [mapping] = [
        r["Properties"]
        for r in _of(t, "AWS::Lambda::EventSourceMapping")
        if "BisectBatchOnFunctionError" in r["Properties"]
    ]
    assert "LatestStreamArn" in str(mapping["EventSourceArn"])


def test_every_writer_runs_in_both_regions(aa: App) -> None:
    for stack in (HOME_STACK, PEER_STACK):
        t = aa.template(stack)
        rules = {
            r["Properties"]["Name"]: r["Properties"]["State"]
            for r in _of(t, "AWS::Events::Rule")
            if "Name" in r["Properties"]
        }
        for rule in (NAMES.executor_rule, NAMES.validator_rule, NAMES.jobs_rule):
            assert rules[rule] == "ENABLED", (stack, rule)
        assert set(rules.values()) == {"ENABLED"}, stack
        assert {s["Properties"]["State"] for s in _of(t, "AWS::Scheduler::Schedule")} == {"ENABLED"}
        assert len(_of(t, "AWS::ApiGateway::Method")) == len(ROUTES), stack


# --- endpoint secrets: replicated to the peer region ------------------------------------------

ENDPOINTS_API = svc.ENDPOINTS_HANDLER.partition(":")[0].removesuffix(".py").replace("/", ".")


def _task_role(t: dict[str, Any], command: str) -> str:
    [task] = [
        r
        for r in _of(t, "AWS::ECS::TaskDefinition")
        if r["Properties"]["ContainerDefinitions"][0]["Command"] == ["python", "-m", command]
    ]
    return str(task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0])


def _on_secrets(s: Any, region: str) -> bool:
    return any(
        f":secretsmanager:{region}:" in text(r) and NAMES.secrets_prefix in text(r)
        for r in s.resources
    )


@pytest.mark.parametrize(
    ("stack", "region", "peer"), [(HOME_STACK, HOME, PEER), (PEER_STACK, PEER, HOME)]
)
def test_endpoint_secrets_are_replicated_to_the_peer_and_read_in_either_region(
    aa: App, stack: str, region: str, peer: str
) -> None:
    t = aa.template(stack)
    role = function_role(t, ENDPOINTS_API + ".handler")
    [fn] = [
        r["Properties"]
        for r in _of(t, "AWS::Lambda::Function")
        if r["Properties"].get("Handler") == ENDPOINTS_API + ".handler"
    ]
    env = fn["Environment"]["Variables"]
    assert env[n.ENV_SECRETS_REPLICA_REGIONS] == peer
    assert env[n.ENV_SECRETS_REPLICA_KMS_KEY_ID] == "alias/ferry-data"
    statements = role_statements(t, role)
    [write] = [
        s for s in statements if s.effect == "Allow" and s.allows("secretsmanager:CreateSecret")
    ]
    assert set(svc.SECRET_REPLICA_ACTIONS) <= set(write.actions)
    # its own secrets and the peer's primaries (a rotation taken here of a peer's endpoint)
    assert _on_secrets(write, region) and _on_secrets(write, peer)
    [deny] = [
        s for s in statements if s.effect == "Deny" and s.allows("secretsmanager:GetSecretValue")
    ]
    assert _on_secrets(deny, region) and _on_secrets(deny, peer)
    kms_peer = [s for s in statements if f":kms:{peer}:" in text(s.resources)]
    assert [sorted(s.actions) for s in kms_peer] == [["kms:Encrypt", "kms:GenerateDataKey"]]
    # the executor and the routes scanner read the local replica, the peer's primary while the
    # replica is not there yet, and decrypt with the peer's data key only through Secrets Manager
    for command in ("services.executor", "services.routes.scanner"):
        statements = role_statements(t, _task_role(t, command))
        reads = [
            s
            for s in statements
            if s.effect == "Allow" and s.allows("secretsmanager:GetSecretValue")
        ]
        assert any(_on_secrets(s, region) for s in reads), command
        assert any(_on_secrets(s, peer) for s in reads), command
        decrypt = [s for s in statements if f":kms:{peer}:" in text(s.resources)]
        assert [s.actions for s in decrypt] == [["kms:Decrypt"]], command


def _handler_of(entry: str) -> str:
    return entry.partition(":")[0].removesuffix(".py").replace("/", ".") + ".handler"


@pytest.mark.parametrize(
    ("stack", "region", "peer"), [(HOME_STACK, HOME, PEER), (PEER_STACK, PEER, HOME)]
)
def test_signing_secrets_are_replicated_and_the_notifier_reads_either_regions(
    aa: App, stack: str, region: str, peer: str
) -> None:
    from infra.constructs.notifications import DELIVER_HANDLER, NOTIFICATIONS_API_HANDLER

    t = aa.template(stack)
    prefix = NAMES.subscription_secrets_prefix

    def on(s: Any, where: str) -> bool:
        return any(
            f":secretsmanager:{where}:" in text(r) and prefix in text(r) for r in s.resources
        )

    api = role_statements(t, function_role(t, _handler_of(NOTIFICATIONS_API_HANDLER)))
    [write] = [s for s in api if s.effect == "Allow" and s.allows("secretsmanager:CreateSecret")]
    assert set(svc.SECRET_REPLICA_ACTIONS) <= set(write.actions)
    assert on(write, region) and on(write, peer)
    [deny] = [s for s in api if s.effect == "Deny" and on(s, peer)]
    assert deny.allows("secretsmanager:GetSecretValue")
    assert [sorted(s.actions) for s in api if f":kms:{peer}:" in text(s.resources)] == [
        ["kms:Encrypt", "kms:GenerateDataKey"]
    ]
    deliver = role_statements(t, function_role(t, _handler_of(DELIVER_HANDLER)))
    reads = [
        s for s in deliver if s.effect == "Allow" and s.allows("secretsmanager:GetSecretValue")
    ]
    assert any(on(s, region) for s in reads) and any(on(s, peer) for s in reads)
    assert [s.actions for s in deliver if f":kms:{peer}:" in text(s.resources)] == [["kms:Decrypt"]]
    [fn] = [
        r["Properties"]
        for r in _of(t, "AWS::Lambda::Function")
        if r["Properties"].get("Handler") == _handler_of(NOTIFICATIONS_API_HANDLER)
    ]
    env = fn["Environment"]["Variables"]
    assert env[n.ENV_SECRETS_REPLICA_REGIONS] == peer
    assert env[n.ENV_SECRETS_REPLICA_KMS_KEY_ID] == "alias/ferry-data"


# --- publication claims -------------------------------------------------------------------------


def _publisher(t: dict[str, Any]) -> tuple[str, dict[str, str]]:
    handler = svc.PUBLISHER_HANDLER.partition(":")[0].removesuffix(".py").replace("/", ".")
    role = function_role(t, handler + ".handler")
    [fn] = [
        r["Properties"]
        for r in _of(t, "AWS::Lambda::Function")
        if r["Properties"].get("Handler") == handler + ".handler"
    ]
    return role, fn["Environment"]["Variables"]


def _on_publications(t: dict[str, Any], resource: Any) -> bool:
    ids = {lid for lid, r in t["Resources"].items() if r["Type"] == "AWS::DynamoDB::GlobalTable"}
    pub_ids = {i for i in ids if t["Resources"][i]["Properties"]["TableName"] == PUBLICATIONS}
    return bool(refs(resource) & pub_ids) or f"table/{PUBLICATIONS}" in text(resource)


@pytest.mark.parametrize(
    ("stack", "region", "peer"), [(HOME_STACK, HOME, PEER), (PEER_STACK, PEER, HOME)]
)
def test_publisher_claims_and_puts_to_the_peer_bus(
    aa: App, stack: str, region: str, peer: str
) -> None:
    t = aa.template(stack)
    role, env = _publisher(t)
    assert env[ENV_PUBLICATIONS_TABLE] == PUBLICATIONS
    assert env[n.ENV_DEPLOYMENT_REGION] == region
    [peer_arn] = text(env[ENV_PEER_BUS_ARNS]).split(",")
    assert f":events:{peer}:" in text(peer_arn) and text(peer_arn).endswith(
        f"event-bus/{NAMES.bus}"
    )
    statements = role_statements(t, role)
    claims = [s for s in statements if any(_on_publications(t, r) for r in s.resources)]
    assert [sorted(s.actions) for s in claims] == [sorted(PUBLICATION_ITEM_ACTIONS)]
    puts = [s for s in statements if "events:PutEvents" in s.actions]
    assert any(f":events:{peer}:" in text(r) for s in puts for r in s.resources)


def test_only_the_publisher_writes_the_publications_table_and_the_sweep_deletes(aa: App) -> None:
    for stack in (HOME_STACK, PEER_STACK):
        t = aa.template(stack)
        publisher, _ = _publisher(t)
        sweep = function_role(t, SWEEP_HANDLER)
        for res in _of(t, "AWS::IAM::Policy"):
            for st in res["Properties"]["PolicyDocument"]["Statement"]:
                resources = st.get("Resource", [])
                resources = resources if isinstance(resources, list) else [resources]
                if st["Effect"] == "Allow" and any(_on_publications(t, r) for r in resources):
                    roles = refs(res["Properties"]["Roles"])
                    assert roles in ({publisher}, {sweep}), (stack, st)
                    if roles == {sweep}:
                        assert sorted(_listify(st["Action"])) == sorted(EXPIRY_SWEEP_ACTIONS)


# --- the expired-item sweep (MRSC has no TTL) ---------------------------------------------------

SWEEP_HANDLER = EXPIRY_SWEEP_HANDLER.partition(":")[0].removesuffix(".py").replace("/", ".") + (
    ".handler"
)


def _listify(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


@pytest.mark.parametrize("stack", [HOME_STACK, PEER_STACK])
def test_an_hourly_sweep_in_each_region_scans_and_deletes_the_two_ttl_less_tables_only(
    aa: App, stack: str
) -> None:
    t = aa.template(stack)
    role = function_role(t, SWEEP_HANDLER)
    [fn] = [
        (lid, r["Properties"])
        for lid, r in t["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("Handler") == SWEEP_HANDLER
    ]
    env = fn[1]["Environment"]["Variables"]
    assert env[ENV_PUBLICATIONS_TABLE] == PUBLICATIONS
    assert env[n.ENV_IDEMPOTENCY_TABLE] == NAMES.idempotency_table
    assert fn[1]["ReservedConcurrentExecutions"] == 1
    [schedule] = [
        s["Properties"]
        for s in _of(t, "AWS::Scheduler::Schedule")
        if s["Properties"]["Name"] == NAMES.expiry_sweep_schedule
    ]
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    assert schedule["State"] == "ENABLED"
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": [fn[0], "Arn"]}
    allowed = [s for s in role_statements(t, role) if s.effect == "Allow"]
    on_tables = [s for s in allowed if any(a.startswith("dynamodb:") for a in s.actions)]
    assert [sorted(s.actions) for s in on_tables] == [sorted(EXPIRY_SWEEP_ACTIONS)]
    targets = {text(r) for s in on_tables for r in s.resources} | {
        i for s in on_tables for r in s.resources for i in refs(r)
    }
    names = {
        t["Resources"][i]["Properties"]["TableName"]
        for i in targets
        if i in t["Resources"] and t["Resources"][i]["Type"] == "AWS::DynamoDB::GlobalTable"
    } | {
        name for name in MRSC_TABLES | REGIONAL_TABLES if any(f"table/{name}" in x for x in targets)
    }
    assert names == {NAMES.idempotency_table, PUBLICATIONS}
    assert not any(a.startswith("secretsmanager:") for s in allowed for a in s.actions)
    denied = [s for s in role_statements(t, role) if s.effect == "Deny"]
    assert any("secretsmanager:GetSecretValue" in s.actions for s in denied)


def test_regional_and_global_tables_deployments_have_no_sweep(
    synth: Synth, synth_global: Synth
) -> None:  # their tables have TTL
    for deployment in (synth, synth_global):
        for region in deployment.stacks:
            t = deployment.template_json(region)
            assert not [
                r
                for r in _of(t, "AWS::Lambda::Function")
                if r["Properties"].get("Handler") == SWEEP_HANDLER
            ], region


# --- staging replication ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "region", "peer"), [(HOME_STACK, HOME, PEER), (PEER_STACK, PEER, HOME)]
)
def test_staging_bucket_replicates_to_the_peer_bucket(
    aa: App, stack: str, region: str, peer: str
) -> None:
    t = aa.template(stack)
    [bucket] = [
        r["Properties"]
        for r in _of(t, "AWS::S3::Bucket")
        if text(r["Properties"].get("BucketName", "")).startswith(NAMES.staging_bucket)
        and "ReplicationConfiguration" in r["Properties"]
    ]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    lifecycle = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert (
        lifecycle["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"]
        == 1
    )
    [rule] = bucket["ReplicationConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
    dest = rule["Destination"]
    assert text(dest["Bucket"]).endswith(f"-{peer}") and f"{NAMES.staging_bucket}-" in text(
        dest["Bucket"]
    )
    key = text(dest["EncryptionConfiguration"]["ReplicaKmsKeyID"])
    assert f":kms:{peer}:" in key and key.endswith("alias/ferry-data")
    assert rule["SourceSelectionCriteria"]["SseKmsEncryptedObjects"]["Status"] == "Enabled"
    # the replication role: trusted by S3, replicate into the peer bucket only
    role_id = bucket["ReplicationConfiguration"]["Role"]["Fn::GetAtt"][0]
    role = t["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "s3.amazonaws.com"
    }
    [policy] = role["Policies"]
    sts = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    replicate = sts["ReplicateIntoPeerBucket"]
    assert text(replicate["Resource"]).endswith(f"-{peer}/*")
    assert (
        sts["DecryptSourceViaS3"]["Condition"]["StringEquals"]["kms:ViaService"]
        == f"s3.{region}.amazonaws.com"
    )
    encrypt = sts["EncryptWithPeerDataKeyViaS3"]
    assert encrypt["Condition"]["StringEquals"]["kms:ViaService"] == f"s3.{peer}.amazonaws.com"
    assert (
        encrypt["Condition"]["ForAnyValue:StringEquals"]["kms:ResourceAliases"]
        == "alias/ferry-data"
    )
    # and no other statement of any policy of the stack names the peer bucket
    for res in _of(t, "AWS::IAM::Policy"):
        assert f"-{peer}/" not in json.dumps(res["Properties"]["PolicyDocument"]), res


# --- API failover --------------------------------------------------------------------------


@pytest.mark.parametrize("region", [HOME, PEER])
def test_api_domain_latency_record_with_health_check(aa: App, region: str) -> None:
    t = aa.template(api_domain_stack_name("ferry", region))
    [domain] = _of(t, "AWS::ApiGateway::DomainName")
    assert domain["Properties"]["DomainName"] == DOMAIN
    assert domain["Properties"]["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert domain["Properties"]["SecurityPolicy"] == "TLS_1_2"
    [cert] = _of(t, "AWS::CertificateManager::Certificate")
    assert cert["Properties"]["DomainName"] == DOMAIN
    assert cert["Properties"]["DomainValidationOptions"][0]["HostedZoneId"] == ZONE
    [mapping] = _of(t, "AWS::ApiGateway::BasePathMapping")
    assert "Fn::ImportValue" in json.dumps(mapping["Properties"]["RestApiId"])  # the region's API
    [check] = _of(t, "AWS::Route53::HealthCheck")
    cfg = check["Properties"]["HealthCheckConfig"]
    assert cfg["Type"] == "HTTPS" and cfg["ResourcePath"] == HEALTH_CHECK_PATH
    assert cfg["EnableSNI"] is True and cfg["FailureThreshold"] == 3
    assert f".execute-api.{region}." in text(cfg["FullyQualifiedDomainName"])
    [record] = _of(t, "AWS::Route53::RecordSet")
    p = record["Properties"]
    assert (p["Name"], p["Type"], p["HostedZoneId"]) == (DOMAIN, "A", ZONE)
    assert p["Region"] == region and p["SetIdentifier"] == region  # latency routing
    assert refs(p["HealthCheckId"]) == {
        lid for lid, r in t["Resources"].items() if r["Type"] == "AWS::Route53::HealthCheck"
    }
    assert p["AliasTarget"]["EvaluateTargetHealth"] is True
    assert "RegionalDomainName" in json.dumps(p["AliasTarget"]["DNSName"])


def test_the_health_check_path_is_a_public_get_of_stage_v1() -> None:
    stage, _, path = HEALTH_CHECK_PATH.removeprefix("/").partition("/")
    assert stage == "v1"
    assert ("GET", "/" + path) in {(m, p) for m, p, _ in ROUTES}
    assert "/" + path in {p for _, p in n.API_PUBLIC_ROUTES}


# --- limits, cdk-nag, cfn-lint -------------------------------------------------------------


def test_regional_stacks_stay_clear_of_the_resource_limit(aa: App) -> None:
    for stack in (HOME_STACK, PEER_STACK):
        count = len(aa.template(stack)["Resources"])
        assert count <= 470, f"{stack}: {count} of CloudFormation's 500 resources"


def test_cdk_nag_passes_on_every_stack(aa: App) -> None:
    for stack in aa.stacks.values():
        annotations = Annotations.from_stack(stack)
        errors = annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
        warnings = annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*"))
        assert not errors, [e.entry.data for e in errors][:5]
        assert not warnings, [w.entry.data for w in warnings][:5]


def test_cfn_lint_passes_on_every_template(aa: App) -> None:
    assert len(aa.lint) == 4
    failures = []
    for path, proc in aa.lint:
        out, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failures.append(f"{path.name}:\n{out}")
    assert not failures, "\n".join(failures)


def test_without_a_domain_it_synthesizes_and_says_failover_records_are_skipped(
    tmp_path: Path,
) -> None:
    app = _synth(tmp_path, CONTEXT, lint=False)
    assert set(app.stacks) == {HOME_STACK, PEER_STACK}
    for stack in app.stacks.values():
        found = Annotations.from_stack(stack).find_warning(
            "*", Match.string_like_regexp(".*no custom domain, health checks or Route 53.*")
        )
        assert found, stack.stack_name


def test_first_deployment_bootstrap_form_of_the_second_region(tmp_path: Path) -> None:
    """infra/README.md "First deployment": the second region's stack without the replica-stream
    lookup, the publisher's trigger and the replication rule, but with its data key and its
    versioned staging bucket (what the home stack's replicas and replication need)."""
    app = _synth(tmp_path, {**CONTEXT, "multi_region_bootstrap": "true"}, lint=False)
    peer, home = app.template(PEER_STACK), app.template(HOME_STACK)
    assert not _of(peer, "Custom::AWS")
    assert not [
        r
        for r in _of(peer, "AWS::Lambda::EventSourceMapping")
        if "BisectBatchOnFunctionError" in r["Properties"]
    ]
    assert [k["Properties"].get("EnableKeyRotation") for k in _of(peer, "AWS::KMS::Key")] == [True]
    assert {a["Properties"]["AliasName"] for a in _of(peer, "AWS::KMS::Alias")} == {
        "alias/ferry-data"
    }
    [staging] = [
        r["Properties"]
        for r in _of(peer, "AWS::S3::Bucket")
        if text(r["Properties"].get("BucketName", "")).startswith(NAMES.staging_bucket + "-")
    ]
    assert staging["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "ReplicationConfiguration" not in staging
    # the home stack is its full self
    assert [
        r for r in _of(home, "AWS::S3::Bucket") if "ReplicationConfiguration" in r["Properties"]
    ]
    assert set(_tables(home)) >= MRSC_TABLES


# --- config validation -------------------------------------------------------------------------


def _cfg(**context: Any) -> FerryConfig:
    return FerryConfig.from_context({**CONTEXT, **context}.get)


def test_valid_active_active_config() -> None:
    cfg = _cfg()
    assert cfg.active_active and cfg.regions == (HOME, PEER) and cfg.witness_region == WITNESS
    assert cfg.is_active(HOME) and cfg.is_active(PEER)
    assert cfg.peers(HOME) == (PEER,)
    eu = _cfg(regions="eu-west-1,eu-central-1", witness_region="eu-west-2")
    assert eu.home_region == "eu-west-1"


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"regions": "us-gov-west-1,us-gov-east-1", "witness_region": "us-east-1"}, "GovCloud"),
        ({"regions": None}, "GovCloud"),  # the default pair is GovCloud
        ({"regions": "us-east-1,us-east-2,us-west-2"}, "exactly two replica regions"),
        ({"regions": "us-east-1"}, "exactly two replica regions"),
        ({"witness_region": None}, "needs witness_region"),
        ({"witness_region": "us-east-1"}, "three distinct regions"),
        ({"witness_region": "eu-west-1"}, "one Region set"),
        ({"regions": "us-east-1,us-west-1", "witness_region": "us-west-2"}, "one Region set"),
        ({"global_tables": "true"}, "replaces global_tables"),
        ({"active_region": HOME}, "replaces global_tables"),
        ({"multi_region": "active-passive"}, "multi_region must be"),
        ({"api_domain_name": DOMAIN}, "go together"),
        ({"api_hosted_zone_id": ZONE}, "go together"),
    ],
)
def test_invalid_active_active_config_is_refused(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _cfg(**context)


@pytest.mark.parametrize(
    "context", [{"witness_region": WITNESS}, {"multi_region_bootstrap": "true"}]
)
def test_active_active_settings_without_the_mode_are_refused(context: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="only used with multi_region"):
        FerryConfig.from_context(context.get)


def test_bootstrap_applies_to_the_second_region_only() -> None:
    cfg = _cfg(multi_region_bootstrap="true")
    assert cfg.bootstraps(PEER) and not cfg.bootstraps(HOME)
    assert not _cfg().bootstraps(PEER)
