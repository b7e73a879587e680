"""Two regions with DynamoDB global tables: the home region owns them; the passive region runs
projections (read routes) but no writer, so conditional writes never race across regions."""

from __future__ import annotations

from typing import Any

import ferry.names as n
from infra.constructs.api import ROUTES
from tests.infra.conftest import EAST, WEST, Synth

NAMES = n.ResourceNames("ferry")


def _of(t: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in t["Resources"].values() if r["Type"] == type_]


def test_home_region_owns_replicated_event_store_and_api_keys(synth_global: Synth) -> None:
    t = synth_global.template_json(WEST)
    tables = {
        r["Properties"]["TableName"]: r["Properties"] for r in _of(t, "AWS::DynamoDB::GlobalTable")
    }
    for name in (NAMES.events_table, NAMES.api_keys_table):
        assert {r["Region"] for r in tables[name]["Replicas"]} == {WEST, EAST}
    for name in (
        NAMES.endpoints_table,
        NAMES.jobs_table,
        NAMES.leases_table,
        NAMES.idempotency_table,
    ):
        assert [r["Region"] for r in tables[name]["Replicas"]] == [WEST]  # regional


def test_passive_region_imports_the_replicas_and_reads_the_local_stream(
    synth_global: Synth,
) -> None:
    t = synth_global.template_json(EAST)
    names = {r["Properties"]["TableName"] for r in _of(t, "AWS::DynamoDB::GlobalTable")}
    assert NAMES.events_table not in names and NAMES.api_keys_table not in names
    assert NAMES.leases_table in names
    [lookup] = [r for r in t["Resources"].values() if r["Type"] == "Custom::AWS"]
    assert "describeTable" in str(lookup["Properties"]["Create"])
    publisher = [
        r["Properties"]
        for r in _of(t, "AWS::Lambda::EventSourceMapping")
        if "BisectBatchOnFunctionError" in r["Properties"]
    ]
    assert len(publisher) == 1 and "LatestStreamArn" in str(publisher[0]["EventSourceArn"])


def test_passive_region_runs_no_writer(synth_global: Synth) -> None:
    t = synth_global.template_json(EAST)
    rules = {
        r["Properties"]["Name"]: r["Properties"]["State"]
        for r in _of(t, "AWS::Events::Rule")
        if "Name" in r["Properties"]
    }
    assert rules[NAMES.projections_rule] == "ENABLED"
    for rule in (NAMES.executor_rule, NAMES.validator_rule, NAMES.jobs_rule):
        assert rules[rule] == "DISABLED"
    methods = {r["Properties"]["HttpMethod"] for r in _of(t, "AWS::ApiGateway::Method")}
    assert methods == {"GET"}
    assert len(_of(t, "AWS::ApiGateway::Method")) == sum(m == "GET" for m, _, _ in ROUTES)


def test_active_region_runs_everything(synth_global: Synth) -> None:
    t = synth_global.template_json(WEST)
    rules = [
        r["Properties"]["State"] for r in _of(t, "AWS::Events::Rule") if "Name" in r["Properties"]
    ]
    assert rules and set(rules) == {"ENABLED"}
    assert len(_of(t, "AWS::ApiGateway::Method")) == len(ROUTES)
