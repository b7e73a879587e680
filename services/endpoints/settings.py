"""Settings of the endpoints service (the only reader of its environment)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ferry import names
from ferry.names import ResourceNames


class EndpointsSettings(BaseSettings):
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
    def names(self) -> ResourceNames:
        return ResourceNames(self.prefix)

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
