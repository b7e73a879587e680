"""Settings of the routes service (the only reader of its environment)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ferry import names
from ferry.names import ResourceNames


class RoutesSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    prefix: str = Field(default="ferry", validation_alias=AliasChoices("FERRY_PREFIX", "prefix"))
    routes_table: str | None = Field(
        default=None, validation_alias=AliasChoices(names.ENV_ROUTES_TABLE, "routes_table")
    )
    scan_table: str | None = Field(
        default=None, validation_alias=AliasChoices(names.ENV_ROUTE_SCAN_TABLE, "scan_table")
    )
    endpoints_table: str | None = Field(
        default=None, validation_alias=AliasChoices(names.ENV_ENDPOINTS_TABLE, "endpoints_table")
    )
    jobs_table: str | None = Field(
        default=None, validation_alias=AliasChoices(names.ENV_JOBS_TABLE, "jobs_table")
    )
    api_keys_table: str | None = Field(
        default=None, validation_alias=AliasChoices(names.ENV_API_KEYS_TABLE, "api_keys_table")
    )
    staging_bucket: str | None = Field(
        default=None, validation_alias=AliasChoices(names.ENV_STAGING_BUCKET, "staging_bucket")
    )
    tick_queue_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(names.ENV_ROUTES_TICK_QUEUE_URL, "tick_queue_url"),
    )
    dispatch_limit: int = Field(
        default=100,
        ge=1,
        validation_alias=AliasChoices("FERRY_ROUTES_DISPATCH_LIMIT", "dispatch_limit"),
        description="Files a route dispatches per tick at most (backpressure).",
    )
    tick_seconds: float = Field(
        default=10.0,
        gt=0,
        validation_alias=AliasChoices("FERRY_ROUTES_TICK_SECONDS", "tick_seconds"),
    )

    scan_workers: int = Field(
        default=4,
        ge=1,
        le=64,
        validation_alias=AliasChoices("FERRY_ROUTES_SCAN_WORKERS", "scan_workers"),
        description="Routes one scanner process lists at once (a slow source holds one).",
    )
    scan_lease_seconds: float = Field(
        default=300.0,
        gt=0,
        validation_alias=AliasChoices("FERRY_ROUTES_SCAN_LEASE_SECONDS", "scan_lease_seconds"),
        description="A route's scan lease (renewed every listing page).",
    )
    late_after_seconds: float = Field(
        default=120.0,
        gt=0,
        validation_alias=AliasChoices("FERRY_ROUTES_LATE_AFTER_SECONDS", "late_after_seconds"),
        description="A scan this long after its slot (or one that missed a slot) is late.",
    )
    sla_grace_seconds: float = Field(
        default=60.0,
        ge=0,
        validation_alias=AliasChoices("FERRY_ROUTES_SLA_GRACE_SECONDS", "sla_grace_seconds"),
        description="A deadline is checked this long after it passed (settling lag).",
    )

    @property
    def names(self) -> ResourceNames:
        return ResourceNames(self.prefix)

    @property
    def routes(self) -> str:
        return self.routes_table or self.names.routes_table

    @property
    def scan(self) -> str:
        return self.scan_table or self.names.route_scan_table

    @property
    def endpoints(self) -> str:
        return self.endpoints_table or self.names.endpoints_table

    @property
    def jobs(self) -> str:
        return self.jobs_table or self.names.jobs_table

    @property
    def keys(self) -> str:
        return self.api_keys_table or self.names.api_keys_table

    @property
    def staging(self) -> str:
        return self.staging_bucket or self.names.staging_bucket
