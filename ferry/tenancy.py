"""Who may use which S3 bucket: the pure decision (no I/O) and its settings, shared by the
endpoints API (at registration and update), the validator, the executor and the routes service
(through ``services.executor.endpoint_access.S3Access``) — one rule, so they cannot disagree.

Two ways a customer reaches a bucket:

- **Delegated** (the endpoint names ``role_arn``): every S3 call runs with credentials from
  ``sts:AssumeRole(role_arn, ExternalId=<the endpoint's external_id>)``. The customer's trust
  policy (``sts:ExternalId`` condition) and the role's permission policy decide; Ferry's own
  roles have no S3 permission on customer buckets.
- **Same account** (no ``role_arn``): Ferry's own credentials, so Ferry must decide. A bucket is
  usable by customer C only when (in this order):

  1. it is not one of Ferry's own buckets (always refused);
  2. the deployment grants it to C (``FERRY_BUCKET_GRANTS``), or
  3. its ``ferry:customer`` tag lists C (space-separated ids), or
  4. it carries no ``ferry:customer`` tag at all and C is the deployment's operator customer
     (``FERRY_OPERATOR_CUSTOMER``; ``demo`` in the local stack).

  Everything else is refused. A refusal never names another customer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ferry import names
from ferry.names import ResourceNames

__all__ = [
    "CUSTOMER_TAG",
    "BucketDecision",
    "TenancySettings",
    "same_account_access",
    "tag_customers",
]

CUSTOMER_TAG = "ferry:customer"


@dataclass(frozen=True)
class BucketDecision:
    allowed: bool
    reason: str


def tag_customers(tag_value: str | None) -> frozenset[str]:
    """The customer ids a ``ferry:customer`` tag value lists (space-separated)."""
    return frozenset((tag_value or "").split())


def same_account_access(
    customer_id: str,
    bucket: str,
    *,
    tag_value: str | None,
    grants: Mapping[str, Sequence[str]],
    operator_customer: str | None,
    reserved: bool,
) -> BucketDecision:
    """May ``customer_id`` use ``bucket`` through Ferry's own credentials?

    ``tag_value``: the bucket's ``ferry:customer`` tag (None when the bucket has no such tag or
    its tags cannot be read); ``reserved``: the bucket is one of Ferry's own."""
    if reserved:
        return BucketDecision(False, f"bucket {bucket} belongs to Ferry and cannot be used")
    if bucket in (grants.get(customer_id) or ()):
        return BucketDecision(True, "granted by the deployment")
    if tag_value is not None:
        if customer_id in tag_customers(tag_value):
            return BucketDecision(True, f"the bucket's {CUSTOMER_TAG} tag names this customer")
        return BucketDecision(
            False, f"bucket {bucket} is not granted to this customer (its {CUSTOMER_TAG} tag)"
        )
    if operator_customer is not None and customer_id == operator_customer:
        return BucketDecision(True, "untagged same-account bucket, operator customer")
    return BucketDecision(
        False,
        f"bucket {bucket} is not granted to this customer: tag it {CUSTOMER_TAG}={customer_id} "
        "or give the endpoint a role_arn",
    )


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
