"""Settings of the endpoints service (the only reader of its environment). The bucket-tenancy
settings are shared with the data plane: ``ferry.tenancy.TenancySettings`` (re-exported)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from ferry import names
from ferry.names import ResourceNames
from ferry.secret_regions import SecretReplicaSettings
from ferry.tenancy import TenancySettings

__all__ = ["EndpointsSettings", "TenancySettings"]


class EndpointsSettings(SecretReplicaSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    prefix: str = Field(default="ferry", validation_alias=AliasChoices("FERRY_PREFIX", "prefix"))
    api_keys_table: str | None = Field(
        default=None, validation_alias=AliasChoices(names.ENV_API_KEYS_TABLE, "api_keys_table")
    )
    events_table: str | None = Field(
        default=None, validation_alias=AliasChoices(names.ENV_EVENTS_TABLE, "events_table")
    )
    secrets_prefix: str | None = Field(
        default=None,
        validation_alias=AliasChoices(names.ENV_SECRETS_PREFIX, "secrets_prefix"),
        description="Overrides '<prefix>/endpoints/'.",
    )
    secrets_kms_key_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FERRY_SECRETS_KMS_KEY_ID", "secrets_kms_key_id"),
    )
    region: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            names.ENV_DEPLOYMENT_REGION, names.ENV_REGION, "AWS_REGION", "region"
        ),
    )

    @property
    def replica_regions(self) -> tuple[str, ...]:
        """The endpoint secrets' replica regions, without this deployment's own region."""
        return self.replicas(self.region)

    jobs_table_name: str | None = Field(
        default=None, validation_alias=AliasChoices(names.ENV_JOBS_TABLE, "jobs_table")
    )
    routes_table_name: str | None = Field(
        default=None, validation_alias=AliasChoices(names.ENV_ROUTES_TABLE, "routes_table")
    )

    @property
    def names(self) -> ResourceNames:
        return ResourceNames(self.prefix)

    @property
    def jobs_table(self) -> str:
        """The jobs read model (retire checks jobs that are not final)."""
        return self.jobs_table_name or self.names.jobs_table

    @property
    def routes_table(self) -> str:
        """The routes read model (retire checks enabled routes)."""
        return self.routes_table_name or self.names.routes_table

    @property
    def keys_table(self) -> str:
        return self.api_keys_table or self.names.api_keys_table

    def secret_name(self, customer_id: str, endpoint_id: str) -> str:
        """``<prefix>/endpoints/<customer>/<endpoint_id>``."""
        if self.secrets_prefix:
            base = (
                self.secrets_prefix
                if self.secrets_prefix.endswith("/")
                else self.secrets_prefix + "/"
            )
            return f"{base}{customer_id}/{endpoint_id}"
        return self.names.endpoint_secret_name(customer_id, endpoint_id)
