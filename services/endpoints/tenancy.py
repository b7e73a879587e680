"""Who may use which S3 bucket: the pure decision (no I/O), shared by the endpoints API, the
validator, the executor and the routes service.

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

__all__ = ["CUSTOMER_TAG", "BucketDecision", "same_account_access", "tag_customers"]

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
