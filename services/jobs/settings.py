"""The jobs service's configuration: the only reader of the environment (FERRY_* variables).

The event store itself is configured through eventsourcing's own environment mechanism
(PERSISTENCE_MODULE=events.dynamodb, FERRY_EVENTS_TABLE), read by the library.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ferry.daily_bytes import MAX_DAILY_BYTES, parse_overrides
from ferry.names import ENV_PREFIX, ResourceNames

_DEFAULTS = ResourceNames()


class JobsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # Tables (FERRY_ENDPOINTS_TABLE, FERRY_IDEMPOTENCY_TABLE, FERRY_API_KEYS_TABLE).
    endpoints_table: str = _DEFAULTS.endpoints_table
    idempotency_table: str = _DEFAULTS.idempotency_table
    api_keys_table: str = _DEFAULTS.api_keys_table
    jobs_table: str = _DEFAULTS.jobs_table  # the read model (FERRY_JOBS_TABLE)
    # the projector's aggregate, for the bytes-per-day limit (FERRY_JOB_STATS_TABLE)
    job_stats_table: str = _DEFAULTS.job_stats_table

    # Idempotency: a request without Idempotency-Key is deduplicated within this window.
    jobs_dedupe_window_seconds: float = Field(default=600.0, gt=0)
    # How long an explicit Idempotency-Key is remembered.
    jobs_idempotency_key_ttl_seconds: float = Field(default=24 * 3600.0, gt=0)

    # Retry backoff (exponential, full jitter): delay ∈ [0, min(cap, base * 2**(attempt-1))].
    jobs_retry_base_seconds: float = Field(default=2.0, ge=0)
    jobs_retry_cap_seconds: float = Field(default=300.0, ge=0)

    # Optimistic concurrency: reload-and-retry bound for appends that lose a race.
    jobs_max_save_attempts: int = Field(default=10, ge=1)

    # Fair sharing (docs/data-plane.md): a customer's jobs waiting to run (RECEIVED/QUEUED in
    # the read model) beyond which POST /transfers answers 429 with Retry-After; per-customer
    # exceptions as JSON (FERRY_JOBS_QUEUED_LIMIT_OVERRIDES='{"<customer_id>": 5000}').
    jobs_queued_limit: int = Field(default=1000, ge=1, le=1_000_000)
    jobs_queued_limit_overrides: dict[str, Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        default_factory=dict
    )
    jobs_queued_retry_after_seconds: int = Field(default=30, ge=1, le=3600)

    # Fair sharing: bytes a customer's jobs may deliver per UTC day (ferry/daily_bytes.py);
    # unset or empty: unlimited. Beyond it POST /transfers answers 429 until 00:00 UTC, and
    # the executor holds the customer's other jobs until then. The executor reads the same
    # two variables (services/executor/settings.py). Per-customer exceptions as JSON, whole
    # bytes, null for unlimited (FERRY_JOBS_DAILY_BYTES_LIMIT_OVERRIDES='{"<customer_id>":
    # 5000000000000, "<other>": null}').
    jobs_daily_bytes_limit: int | None = Field(default=None, ge=1, le=MAX_DAILY_BYTES)
    jobs_daily_bytes_limit_overrides: dict[
        str, Annotated[int, Field(ge=1, le=MAX_DAILY_BYTES, strict=True)] | None
    ] = Field(default_factory=dict)

    @field_validator("jobs_daily_bytes_limit", mode="before")
    @classmethod
    def _empty_is_unlimited(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("jobs_daily_bytes_limit_overrides", mode="before")
    @classmethod
    def _daily_json_map(cls, value: Any) -> Any:
        return parse_overrides(value, "FERRY_JOBS_DAILY_BYTES_LIMIT_OVERRIDES")

    @field_validator("jobs_queued_limit_overrides", mode="before")
    @classmethod
    def _json_map(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError("FERRY_JOBS_QUEUED_LIMIT_OVERRIDES: not a JSON object") from None
        return value
