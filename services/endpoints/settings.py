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


class TenancySettings(BaseSettings):
    """Who may use which S3 bucket (read by the endpoints API, the validator, the executor and
    the routes service alike, so that they cannot disagree).

    - ``bucket_grants`` (``FERRY_BUCKET_GRANTS``, JSON ``{"customer": ["bucket", ...]}``): the
      deployment's explicit grants of same-account buckets (besides the ``ferry:customer`` tag).
    - ``operator_customer`` (``FERRY_OPERATOR_CUSTOMER``): the operator's own customer (the
      local stack sets ``demo``); it may use every same-account bucket that is not Ferry's own
      and not tagged for another customer. Unset in AWS: every customer needs a grant.
    - reserved buckets: Ferry's own (``ResourceNames.owned_buckets``, the staging bucket as
      deployed — ``<prefix>-staging-<account>-<region>`` — and ``FERRY_RESERVED_BUCKETS``).
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    prefix: str = Field(default="ferry", validation_alias=AliasChoices("FERRY_PREFIX", "prefix"))
    bucket_grants: dict[str, list[str]] = Field(
        default_factory=dict,
        validation_alias=AliasChoices(names.ENV_BUCKET_GRANTS, "bucket_grants"),
    )
    operator_customer: str | None = Field(
        default=None,
        validation_alias=AliasChoices(names.ENV_OPERATOR_CUSTOMER, "operator_customer"),
    )
    staging_bucket: str | None = Field(
        default=None, validation_alias=AliasChoices(names.ENV_STAGING_BUCKET, "staging_bucket")
    )
    reserved_buckets_extra: str = Field(
        default="", validation_alias=AliasChoices(names.ENV_RESERVED_BUCKETS, "reserved_buckets")
    )
    tag_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        validation_alias=AliasChoices("FERRY_BUCKET_TAG_CACHE_SECONDS", "tag_cache_seconds"),
    )

    def is_reserved(self, bucket: str) -> bool:
        """Ferry's own bucket (staging, anything the stack owns)."""
        deployed = ResourceNames(self.prefix).owned_buckets
        owned = set(deployed)
        if self.staging_bucket:
            owned.add(self.staging_bucket)
        owned |= {b.strip() for b in self.reserved_buckets_extra.split(",") if b.strip()}
        # deployed as <name>-<account>-<region> (S3 names are global)
        return bucket in owned or any(bucket.startswith(name + "-") for name in deployed)
