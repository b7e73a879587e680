"""Settings of the projections entry points (the only reader of the environment)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ferry import names as n

_DEFAULTS = n.ResourceNames()


class ProjectionsSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    endpoints_table: str = Field(
        default=_DEFAULTS.endpoints_table, validation_alias=n.ENV_ENDPOINTS_TABLE
    )
    jobs_table: str = Field(default=_DEFAULTS.jobs_table, validation_alias=n.ENV_JOBS_TABLE)
    job_stats_table_name: str | None = Field(default=None, validation_alias=n.ENV_JOB_STATS_TABLE)
    events_table: str = Field(default=_DEFAULTS.events_table, validation_alias=n.ENV_EVENTS_TABLE)
    api_keys_table: str = Field(
        default=_DEFAULTS.api_keys_table, validation_alias=n.ENV_API_KEYS_TABLE
    )
    persistence_module: str = Field(
        default="events.dynamodb", validation_alias=n.ENV_PERSISTENCE_MODULE
    )
    region: str | None = Field(
        default=None, validation_alias=AliasChoices(n.ENV_REGION, "AWS_REGION")
    )

    @property
    def job_stats_table(self) -> str:
        """FERRY_JOB_STATS_TABLE, else the one beside the configured endpoints table."""
        if self.job_stats_table_name:
            return self.job_stats_table_name
        prefix = self.endpoints_table.removesuffix("-endpoints")
        return n.ResourceNames(prefix=prefix).job_stats_table

    def names(self) -> n.ResourceNames:
        """ResourceNames whose read-model tables are the configured ones (the prefix is derived
        from FERRY_ENDPOINTS_TABLE; ValueError if the two tables do not share one)."""
        suffix = "-endpoints"
        if not self.endpoints_table.endswith(suffix):
            raise ValueError(f"{n.ENV_ENDPOINTS_TABLE} must end with {suffix!r}")
        names = n.ResourceNames(prefix=self.endpoints_table[: -len(suffix)])
        if names.jobs_table != self.jobs_table:
            raise ValueError(
                f"{n.ENV_JOBS_TABLE}={self.jobs_table!r} does not match "
                f"{n.ENV_ENDPOINTS_TABLE}={self.endpoints_table!r}"
            )
        return names

    def persistence_env(self) -> dict[str, str]:
        """The eventsourcing environment for the event store (tables are not created here)."""
        env = {
            n.ENV_PERSISTENCE_MODULE: self.persistence_module,
            n.ENV_EVENTS_TABLE: self.events_table,
            "CREATE_TABLE": "no",
        }
        if self.region:
            env[n.ENV_REGION] = self.region
        return env
