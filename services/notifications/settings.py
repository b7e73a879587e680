"""Settings of the notifications service (the only reader of its environment)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from ferry import names
from ferry.names import ResourceNames
from ferry.secret_regions import SecretReplicaSettings


def _env(name: str, field: str) -> AliasChoices:
    return AliasChoices(name, field)


class NotificationsSettings(SecretReplicaSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    prefix: str = Field(default="ferry", validation_alias=_env("FERRY_PREFIX", "prefix"))
    subscriptions_table: str | None = Field(
        default=None, validation_alias=_env(names.ENV_SUBSCRIPTIONS_TABLE, "subscriptions_table")
    )
    jobs_table: str | None = Field(
        default=None, validation_alias=_env(names.ENV_JOBS_TABLE, "jobs_table")
    )
    api_keys_table: str | None = Field(
        default=None, validation_alias=_env(names.ENV_API_KEYS_TABLE, "api_keys_table")
    )
    deliver_queue_url: str | None = Field(
        default=None,
        validation_alias=_env(names.ENV_NOTIFICATIONS_DELIVER_QUEUE_URL, "deliver_queue_url"),
    )
    secrets_kms_key_id: str | None = Field(
        default=None,
        validation_alias=_env("FERRY_NOTIFICATIONS_SECRETS_KMS_KEY_ID", "secrets_kms_key_id"),
    )
    allow_http: bool = Field(
        default=False,
        validation_alias=_env("FERRY_WEBHOOK_ALLOW_HTTP", "allow_http"),
        description="Plain-http webhooks (the local stack only); https only otherwise.",
    )
    egress_allow: str = Field(
        default="", validation_alias=_env("FERRY_EGRESS_ALLOW", "egress_allow")
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, le=30,
        validation_alias=_env("FERRY_WEBHOOK_TIMEOUT_SECONDS", "webhook_timeout_seconds"),
    )  # fmt: skip
    retry_base_seconds: float = Field(
        default=10.0, gt=0, le=3600,
        validation_alias=_env("FERRY_NOTIFY_RETRY_BASE_SECONDS", "retry_base_seconds"),
        description="The first retry's wait; each next one is 3x longer, at most 6 h.",
    )  # fmt: skip
    smtp_host: str | None = Field(
        default=None, validation_alias=_env("FERRY_SMTP_HOST", "smtp_host")
    )
    smtp_port: int = Field(default=25, validation_alias=_env("FERRY_SMTP_PORT", "smtp_port"))
    email_from: str = Field(
        default="ferry@localhost", validation_alias=_env("FERRY_EMAIL_FROM", "email_from")
    )
    ses_configuration_set: str | None = Field(
        default=None, validation_alias=_env("FERRY_SES_CONFIGURATION_SET", "ses_configuration_set")
    )

    @property
    def names(self) -> ResourceNames:
        return ResourceNames(self.prefix)

    @property
    def subscriptions(self) -> str:
        return self.subscriptions_table or self.names.subscriptions_table

    @property
    def jobs(self) -> str:
        return self.jobs_table or self.names.jobs_table

    @property
    def keys(self) -> str:
        return self.api_keys_table or self.names.api_keys_table

    def secret_name(self, customer_id: str, subscription_id: str) -> str:
        return f"{self.names.subscription_secrets_prefix}{customer_id}/{subscription_id}"
