"""infra/constructs/sla.py: the JobSlow check's schedule invokes only its function; the function
appends job events and uses the slow watch (idempotency table), writes no read model and reads
no endpoint secret; the schedule is off in a passive region."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import EAST, Synth
from tests.infra.iam import can, can_on_text, function_role, role_statements
from tests.infra.test_iam import READ, WRITE, table_id
from tests.infra.test_resources import resources
from tests.infra.test_routes import NAMES

HANDLER = "services.jobs.slow_check.handler"


@pytest.fixture(scope="module")
def t(synth: Synth) -> dict[str, Any]:
    return synth.template_json()


def _schedule(t: dict[str, Any]) -> dict[str, Any]:
    [sched] = [
        s
        for s in resources(t, "AWS::Scheduler::Schedule").values()
        if s["Properties"]["Name"] == NAMES.jobs_slow_check_schedule
    ]
    return sched


def test_the_schedule_invokes_the_slow_check_every_minute_and_nothing_else(
    t: dict[str, Any],
) -> None:
    p = _schedule(t)["Properties"]
    assert p["ScheduleExpression"] == "rate(1 minute)" and p["State"] == "ENABLED"
    fn = next(
        lid
        for lid, r in t["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("Handler") == HANDLER
    )
    assert p["Target"]["Arn"] == {"Fn::GetAtt": [fn, "Arn"]}
    role = p["Target"]["RoleArn"]["Fn::GetAtt"][0]
    trust = t["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust[0]["Principal"] == {"Service": "scheduler.amazonaws.com"}
    allowed = [s for s in role_statements(t, role) if s.effect == "Allow"]
    assert [a for s in allowed for a in s.actions] == ["lambda:InvokeFunction"]
    assert can(t, role, "lambda:InvokeFunction", fn)


def test_the_slow_check_appends_job_events_and_uses_the_watch_only(t: dict[str, Any]) -> None:
    role = function_role(t, HANDLER)
    events, watch = table_id(t, NAMES.events_table), table_id(t, NAMES.idempotency_table)
    for table in (events, watch):
        assert all(can(t, role, a, table) for a in (*READ, "dynamodb:PutItem"))
    for rm in (NAMES.endpoints_table, NAMES.jobs_table, NAMES.routes_table):
        assert not any(can(t, role, a, table_id(t, rm)) for a in WRITE), rm
    assert not can_on_text(t, role, "secretsmanager:GetSecretValue", NAMES.secrets_prefix)


def test_passive_region_does_not_run_the_check(synth_global: Synth) -> None:
    assert _schedule(synth_global.template_json(EAST))["Properties"]["State"] == "DISABLED"
