"""Per-customer limits of a deployment (docs/data-plane.md "Fair sharing"), from CDK context.

Context key ``customer_limits``, a JSON object; every key is optional (absent: the services'
own defaults)::

    -c 'customer_limits={"concurrency": 10, "concurrency_overrides": {"acme": 2},
                         "queued": 1000, "daily_bytes": 5000000000000,
                         "daily_bytes_overrides": {"acme": null}}'

Each key becomes the environment variable the services read, on every function and the executor
task (the jobs API and the executor are the readers). The values are checked at synth by the
services' own settings models, so a deployment never starts services that refuse their settings.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from services.executor.settings import ExecutorSettings
from services.jobs.settings import JobsSettings

__all__ = ["LIMITS", "parse_limits"]

#: context key -> (environment variable, the settings model and field that read it)
LIMITS: dict[str, tuple[str, type[Any], str]] = {
    "concurrency": (
        "FERRY_EXECUTOR_CUSTOMER_CONCURRENCY",
        ExecutorSettings,
        "customer_concurrency",
    ),
    "concurrency_overrides": (
        "FERRY_EXECUTOR_CUSTOMER_CONCURRENCY_OVERRIDES",
        ExecutorSettings,
        "customer_concurrency_overrides",
    ),
    "queued": ("FERRY_JOBS_QUEUED_LIMIT", JobsSettings, "jobs_queued_limit"),
    "queued_overrides": (
        "FERRY_JOBS_QUEUED_LIMIT_OVERRIDES",
        JobsSettings,
        "jobs_queued_limit_overrides",
    ),
    "daily_bytes": ("FERRY_JOBS_DAILY_BYTES_LIMIT", JobsSettings, "jobs_daily_bytes_limit"),
    "daily_bytes_overrides": (
        "FERRY_JOBS_DAILY_BYTES_LIMIT_OVERRIDES",
        JobsSettings,
        "jobs_daily_bytes_limit_overrides",
    ),
}
# the executor reads the daily limit too (it holds an over-budget customer's jobs)
_ALSO = {"daily_bytes": "daily_bytes_limit", "daily_bytes_overrides": "daily_bytes_limit_overrides"}


def _as_env(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict) else str(value)


def parse_limits(value: Any) -> dict[str, str]:
    """The context value -> {environment variable: value}; a ValueError names the bad key."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("customer_limits: not a JSON object") from None
    if not isinstance(value, dict):
        raise ValueError("customer_limits: not a JSON object")
    unknown = sorted(set(value) - set(LIMITS))
    if unknown:
        raise ValueError(
            f"customer_limits: unknown key {unknown[0]!r} (known: {', '.join(LIMITS)})"
        )
    env: dict[str, str] = {}
    for key, raw in value.items():
        name, model, field = LIMITS[key]
        text = _as_env(raw)
        checks = [(model, field)]
        if key in _ALSO:
            checks.append((ExecutorSettings, _ALSO[key]))
        for checked, name_of in checks:
            try:  # exactly what the service will parse from its environment
                checked.model_validate({name_of: text}, by_name=True)
            except ValidationError as exc:
                detail = exc.errors()[0]["msg"] if exc.errors() else str(exc)
                raise ValueError(f"customer_limits.{key}: {detail} (got {text})") from None
        env[name] = text
    return env
