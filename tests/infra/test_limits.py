"""Per-customer limits from CDK context (infra/limits.py) reach the jobs API and the executor,
checked at synth by the services' own settings models."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import FerryConfig
from infra.limits import parse_limits
from services.executor.settings import ExecutorSettings
from services.jobs.settings import JobsSettings
from tests.infra.conftest import LIMITS_CONTEXT, WEST, Synth

EXPECTED = {
    "FERRY_EXECUTOR_CUSTOMER_CONCURRENCY": "3",
    "FERRY_JOBS_QUEUED_LIMIT_OVERRIDES": '{"acme": 50}',
    "FERRY_JOBS_DAILY_BYTES_LIMIT": "1000000000000",
}


def _env_of(resource: dict[str, Any]) -> dict[str, Any]:
    props = resource["Properties"]
    if resource["Type"] == "AWS::Lambda::Function":
        return dict(props.get("Environment", {}).get("Variables", {}))
    [container] = props["ContainerDefinitions"]
    return {e["Name"]: e["Value"] for e in container.get("Environment", [])}


def test_the_limits_reach_the_jobs_api_and_the_executor_task(synth_global: Synth) -> None:
    resources = synth_global.template_json(WEST)["Resources"]
    jobs_api = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function" and "jobs" in json.dumps(r["Properties"])
    ]
    tasks = [r for r in resources.values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    checked = [
        env
        for env in map(_env_of, [*jobs_api, *tasks])
        if "FERRY_EVENTS_TABLE" in env  # the services' environment (not e.g. a custom resource)
    ]
    assert len(checked) >= 2
    for env in checked:
        for name, value in EXPECTED.items():
            assert env.get(name) == value, (name, env.get(name))
    assert any("FERRY_EXECUTOR_QUEUE_URL" in _env_of(t) for t in tasks)  # the executor task


def test_the_services_parse_what_infra_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in parse_limits(LIMITS_CONTEXT).items():
        monkeypatch.setenv(name, value)
    assert ExecutorSettings().customer_limit("anyone") == 3
    assert ExecutorSettings().daily_bytes_limit_of("acme") == 10**12
    jobs = JobsSettings()
    assert jobs.jobs_queued_limit_overrides == {"acme": 50}
    assert jobs.jobs_daily_bytes_limit == 10**12


def test_no_limits_sets_nothing() -> None:
    assert FerryConfig.from_context({}.get).customer_limits == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('{"concurrency": 0}', "customer_limits.concurrency: Input should be greater"),
        ('{"queued": "many"}', "customer_limits.queued: Input should be a valid integer"),
        ('{"daily_bytes_overrides": {"a": -1}}', "customer_limits.daily_bytes_overrides"),
        ('{"daily_bytes": 1.5}', "customer_limits.daily_bytes"),
        ('{"bandwidth": 1}', "unknown key 'bandwidth'"),
        ("[1, 2]", "customer_limits: not a JSON object"),
        ("{not json", "customer_limits: not a JSON object"),
    ],
)
def test_a_bad_limit_fails_the_synth_naming_the_key(value: str, says: str) -> None:
    with pytest.raises(ValueError) as err:
        FerryConfig.from_context({"customer_limits": value}.get)
    assert says in str(err.value)
