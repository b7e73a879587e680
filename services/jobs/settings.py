"""The jobs service's configuration: the only reader of the environment (FERRY_* variables).

The event store itself is configured through eventsourcing's own environment mechanism
(PERSISTENCE_MODULE=events.dynamodb, FERRY_EVENTS_TABLE), read by the library.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ferry.names import ENV_PREFIX, ResourceNames

_DEFAULTS = ResourceNames()


class JobsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # Tables (FERRY_ENDPOINTS_TABLE, FERRY_IDEMPOTENCY_TABLE, FERRY_API_KEYS_TABLE).
    endpoints_table: str = _DEFAULTS.endpoints_table
    idempotency_table: str = _DEFAULTS.idempotency_table
    api_keys_table: str = _DEFAULTS.api_keys_table

    # Idempotency: a request without Idempotency-Key is deduplicated within this window.
    jobs_dedupe_window_seconds: float = Field(default=600.0, gt=0)
    # How long an explicit Idempotency-Key is remembered.
    jobs_idempotency_key_ttl_seconds: float = Field(default=24 * 3600.0, gt=0)

    # Retry backoff (exponential, full jitter): delay ∈ [0, min(cap, base * 2**(attempt-1))].
    jobs_retry_base_seconds: float = Field(default=2.0, ge=0)
    jobs_retry_cap_seconds: float = Field(default=300.0, ge=0)

    # Optimistic concurrency: reload-and-retry bound for appends that lose a race.
    jobs_max_save_attempts: int = Field(default=10, ge=1)
