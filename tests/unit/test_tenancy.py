"""S3 tenancy (issue 8): the pure same-account decision, and ``endpoint_access.S3Access`` — the
one place S3 clients for customer endpoints come from — with fakes for S3 tagging and STS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from events.contract import Direction, EndpointConfig, EndpointStatus, EndpointType
from ferry.tenancy import same_account_access, tag_customers
from services.endpoints.settings import TenancySettings
from services.executor.endpoint_access import AccessDenied, EndpointView, S3Access


# --- the pure decision ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("customer", "tag", "grants", "operator", "reserved", "allowed"),
    [
        ("a", None, {}, None, False, False),  # untagged, no grant, no operator: refused
        ("a", "a", {}, None, False, True),  # tag names the customer
        ("a", "b a c", {}, None, False, True),  # space-separated list
        ("a", "ab", {}, None, False, False),  # a whole id, not a substring
        ("a", "b", {}, None, False, False),  # tagged for another
        ("a", "", {}, "a", False, False),  # an empty tag names nobody, not even the operator
        ("a", None, {"a": ["bkt"]}, None, False, True),  # deployment grant
        ("a", "b", {"a": ["bkt"]}, None, False, True),  # the deployment's grant wins
        ("a", None, {"b": ["bkt"]}, None, False, False),  # a grant for someone else
        ("demo", None, {}, "demo", False, True),  # operator: untagged buckets
        ("demo", "b", {}, "demo", False, False),  # ... but not another customer's
        ("demo", None, {"demo": ["bkt"]}, "demo", True, False),  # Ferry's own: always refused
        ("a", "a", {}, None, True, False),
    ],
)
def test_same_account_decision(
    customer: str,
    tag: str | None,
    grants: dict[str, list[str]],
    operator: str | None,
    reserved: bool,
    allowed: bool,
) -> None:
    decision = same_account_access(
        customer, "bkt", tag_value=tag, grants=grants, operator_customer=operator, reserved=reserved
    )
    assert decision.allowed is allowed, decision
    if not allowed:
        assert "b a" not in decision.reason and " b " not in f" {decision.reason} "


def test_tag_customers_splits_on_any_whitespace() -> None:
    assert tag_customers(" a  b\tc ") == {"a", "b", "c"}
    assert tag_customers(None) == frozenset()


def test_reserved_buckets() -> None:
    settings = TenancySettings(prefix="fx", staging_bucket="custom-stage", reserved_buckets="x,y")
    for bucket in (
        "fx-staging",
        "fx-staging-123456789012-eu-west-1",
        "fx-access-logs-123456789012-eu-west-1",
        "custom-stage",
        "x",
        "y",
    ):
        assert settings.is_reserved(bucket), bucket
    for bucket in ("fx-stagingx", "customer-data", "staging"):
        assert not settings.is_reserved(bucket), bucket


# --- S3Access ----------------------------------------------------------------------------------------
class FakeS3:
    """get_bucket_tagging only (what S3Access itself calls)."""

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, str]] = {}
        self.calls = 0

    def get_bucket_tagging(self, Bucket: str) -> dict[str, Any]:
        self.calls += 1
        if Bucket not in self.tags:
            raise ClientError({"Error": {"Code": "NoSuchTagSet"}}, "GetBucketTagging")
        return {"TagSet": [{"Key": k, "Value": v} for k, v in self.tags[Bucket].items()]}


class FakeSts:
    def __init__(self, *, lifetime: timedelta = timedelta(hours=1)) -> None:
        self.calls: list[dict[str, Any]] = []
        self.lifetime = lifetime
        self.deny = False

    def assume_role(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.deny:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "User arn:aws:iam::1:user/x ..."}},
                "AssumeRole",
            )
        n = len(self.calls)
        return {
            "Credentials": {
                "AccessKeyId": f"ASIA{n:016d}",
                "SecretAccessKey": f"secret-{n}",
                "SessionToken": f"token-{n}",
                "Expiration": datetime.now(UTC) + self.lifetime,
            }
        }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def view(customer: str = "a", bucket: str = "bkt", **config: Any) -> EndpointView:
    return EndpointView(
        endpoint_id="e1",
        customer_id=customer,
        name="n",
        type=EndpointType.S3,
        status=EndpointStatus.ACTIVE,
        direction=Direction.BOTH,
        max_concurrency=1,
        config=EndpointConfig(type=EndpointType.S3, bucket=bucket, **config),
        secret_arn=None,
    )


def access(
    s3: FakeS3, sts: FakeSts | None = None, clock: Clock | None = None, **settings: Any
) -> S3Access:
    return S3Access(
        TenancySettings(prefix="fx", **settings),
        s3_factory=lambda region: s3,
        sts_client=sts or FakeSts(),
        clock=clock or Clock(),
    )


def test_same_account_client_only_for_a_granted_bucket() -> None:
    s3 = FakeS3()
    a = access(s3)
    with pytest.raises(AccessDenied) as denied:
        a.client_for(view())
    assert denied.value.code == "ACCESS_DENIED" and not denied.value.transient
    s3.tags["tagged"] = {"ferry:customer": "a"}
    assert a.client_for(view(bucket="tagged")) is s3


def test_the_tag_lookup_is_cached_briefly_so_a_removed_tag_stops_access() -> None:
    s3, clock = FakeS3(), Clock()
    a = access(s3, clock=clock, tag_cache_seconds=30)
    s3.tags["bkt"] = {"ferry:customer": "a"}
    a.client_for(view())
    a.client_for(view())
    assert s3.calls == 1  # cached
    del s3.tags["bkt"]
    clock.now += 29
    a.client_for(view())  # still within the cache window
    clock.now += 2
    with pytest.raises(AccessDenied):
        a.client_for(view())
    assert s3.calls == 2


def test_ferrys_own_bucket_is_refused_even_with_a_role() -> None:
    a = access(FakeS3())
    role = "arn:aws:iam::111122223333:role/r"
    with pytest.raises(AccessDenied):
        a.client_for(view(bucket="fx-staging", role_arn=role, external_id="ferry-x"))


def test_delegated_credentials_assume_the_role_with_the_endpoints_external_id() -> None:
    sts = FakeSts()
    a = access(FakeS3(), sts)
    role = "arn:aws:iam::111122223333:role/ferry-access"
    v = view(role_arn=role, external_id="ferry-abc")
    frozen = a.delegated_credentials(v).get_frozen_credentials()
    assert (frozen.access_key, frozen.token) == ("ASIA0000000000000001", "token-1")
    assert sts.calls == [
        {
            "RoleArn": role,
            "ExternalId": "ferry-abc",
            "RoleSessionName": "ferry-e1",
            "DurationSeconds": 3600,
        }
    ]
    a.delegated_credentials(v).get_frozen_credentials()
    assert len(sts.calls) == 1  # cached until near expiry
    # no tag lookup at all for delegated access: the customer's role decides
    assert a.client_for(v) is a.client_for(v)


def test_delegated_credentials_are_renewed_five_minutes_before_expiry() -> None:
    sts = FakeSts(lifetime=timedelta(minutes=4))  # already inside the 5-minute margin
    a = access(FakeS3(), sts)
    v = view(role_arn="arn:aws:iam::111122223333:role/r", external_id="ferry-abc")
    creds = a.delegated_credentials(v)
    assert len(sts.calls) == 1
    assert creds.get_frozen_credentials().access_key == "ASIA0000000000000002"  # renewed
    assert len(sts.calls) == 2


def test_a_refused_assume_role_is_access_denied_without_the_raw_message() -> None:
    sts = FakeSts()
    sts.deny = True
    a = access(FakeS3(), sts)
    with pytest.raises(AccessDenied) as denied:
        a.client_for(view(role_arn="arn:aws:iam::111122223333:role/r", external_id="ferry-x"))
    assert "AccessDenied" in denied.value.message
    assert "arn:aws:iam::1:user" not in denied.value.message


def test_a_role_without_external_id_is_refused_without_calling_sts() -> None:
    sts = FakeSts()
    a = access(FakeS3(), sts)
    with pytest.raises(AccessDenied):
        a.client_for(view(role_arn="arn:aws:iam::111122223333:role/r"))
    assert sts.calls == []


def test_routes_listing_head_and_post_actions_go_through_s3_access(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.routes.adapters import EndpointSourceOpener, S3ObjectInspector
    from services.routes.ports import EndpointInfo, ListingFailed

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = FakeS3()
    a = access(s3)
    info = EndpointInfo(
        endpoint_id="e1",
        customer_id="b",
        type=EndpointType.S3,
        status=EndpointStatus.ACTIVE,
        config={"bucket": "bkt"},
    )
    refusal = S3ObjectInspector(s3_access=a).refusal(info)
    assert refusal is not None and "not granted" in refusal
    with pytest.raises(ListingFailed, match="ACCESS_DENIED"):
        EndpointSourceOpener("endpoints", s3_access=a).open(info)
    s3.tags["bkt"] = {"ferry:customer": "b"}
    a.clear()
    assert S3ObjectInspector(s3_access=a).refusal(info) is None
    source = EndpointSourceOpener("endpoints", s3_access=a).open(info)
    assert source._client is s3  # the endpoint's client from S3Access


def test_fresh_lookups_bypass_the_tag_cache() -> None:
    s3, clock = FakeS3(), Clock()
    a = access(s3, clock=clock, tag_cache_seconds=30)
    with pytest.raises(AccessDenied):
        a.client_for(view())
    s3.tags["bkt"] = {"ferry:customer": "a"}  # the customer tags the bucket and re-validates
    with pytest.raises(AccessDenied):
        a.client_for(view())  # cached "no tag" for transfers ...
    assert a.client_for(view(), fresh=True) is s3  # ... but the validator looks again
    assert a.client_for(view()) is s3  # and the fresh answer is cached
