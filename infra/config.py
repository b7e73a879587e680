"""Deployment parameters of the Ferry CDK app, read from CDK context.

Every parameter is a context key (``cdk synth -c key=value``, ``python -m infra -c key=value`` or
``infra/cdk.json``); the defaults below are what CI synthesizes. Resource *names* are not
parameters: they come from :class:`ferry.names.ResourceNames` built from ``prefix``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ferry.names import ResourceNames
from infra.limits import parse_limits

DEFAULT_REGIONS = ("us-gov-west-1", "us-gov-east-1")
ECR_IMAGE_PREFIX = "ecr:"

ACTIVE_ACTIVE = "active_active"
"""``multi_region`` value: both regions run every writer on MRSC tables (docs/multi-region.md)."""

# DynamoDB multi-Region strong consistency (MRSC) is offered only inside these Region sets, and a
# table cannot span two of them (the AWS docs' list; docs/multi-region.md cites the pages). No
# GovCloud (or China) Region is in any set.
MRSC_REGION_SETS: dict[str, tuple[str, ...]] = {
    "US": ("us-east-1", "us-east-2", "us-west-2"),
    "EU": ("eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1"),
    "AP": ("ap-northeast-1", "ap-northeast-2", "ap-northeast-3"),
}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _list(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(v.strip() for v in str(value).split(",") if v.strip())


@dataclass(frozen=True)
class FerryConfig:
    """Everything a deployment can vary. Build it with :meth:`from_context`."""

    prefix: str = "ferry"
    regions: tuple[str, ...] = DEFAULT_REGIONS
    account: str | None = None
    # DynamoDB global tables (events + api-keys replicated to every region; see infra/README.md)
    global_tables: bool = False
    # The region whose writers run when global_tables is on (failover = redeploy with the other)
    active_region: str | None = None
    # "active_active": both regions run every writer; MRSC tables (replicas in `regions`, witness
    # in `witness_region`), publication claims, staging CRR, Route 53 for the API domain
    multi_region: str = ""
    witness_region: str | None = None
    # active-active first deployment only: the second region's stack without what needs the
    # home stack's tables (the replica-stream lookup, the publisher's trigger) or the home's
    # staging bucket (its replication rule); see infra/README.md "First deployment"
    multi_region_bootstrap: bool = False
    # The API's custom domain (active-active): latency records + health checks per region.
    # Absent: the mode still synthesizes, without API failover records (a synth warning says so).
    api_domain_name: str | None = None
    api_hosted_zone_id: str | None = None
    # EventBridge
    archive_retention_days: int = 365
    consumer_accounts: tuple[str, ...] = ()
    # Lambda code: bundle the dependencies layer with pip on the host (no Docker). CI: false.
    bundle: bool = True
    # Executor image: "asset" (services/executor/Dockerfile, built by `cdk deploy`) or
    # "ecr:<repository-name>:<tag>" (a pre-built image; no Docker needed at deploy)
    executor_image: str = "asset"
    executor_cpu: int = 1024
    executor_memory_mib: int = 2048
    executor_max_tasks: int = 10
    # Lease length of the executor (seconds); the executor queue's visibility is >= it
    lease_seconds: int = 300
    # Longest time a transfer may stay resumable (days); multipart uploads are aborted after more
    resume_window_days: int = 7
    staging_expiry_days: int = 14
    # API Gateway usage plan
    api_rate_limit: float = 50.0
    api_burst_limit: int = 100
    api_quota_per_day: int = 100_000
    # Reserved concurrency for the SQS-driven Lambdas (0 = none; new accounts may need 0)
    consumer_reserved_concurrency: int = 10
    alarm_email: str | None = None
    # Per-customer limits (infra/limits.py): {environment variable: value}, checked at synth
    customer_limits: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> ResourceNames:
        return ResourceNames(self.prefix)

    @property
    def home_region(self) -> str:
        """The region whose stack owns global tables (never changes on failover)."""
        return self.regions[0]

    @property
    def multipart_abort_days(self) -> int:
        """Strictly longer than the resumable window: a resumable upload is never aborted."""
        return self.resume_window_days + 1

    @property
    def active_active(self) -> bool:
        return self.multi_region == ACTIVE_ACTIVE

    def peers(self, region: str) -> tuple[str, ...]:
        """The other replica regions (active-active: the one other region)."""
        return tuple(r for r in self.regions if r != region)

    def bootstraps(self, region: str) -> bool:
        """Active-active first deployment: this (non-home) region's stack in its bootstrap form."""
        return self.active_active and self.multi_region_bootstrap and region != self.home_region

    def is_active(self, region: str) -> bool:
        """Whether the region runs Ferry's writers (always, unless global tables are on)."""
        if not self.global_tables or self.active_active:
            return True
        return region == (self.active_region or self.home_region)

    @classmethod
    def from_context(cls, get: Any) -> FerryConfig:
        """Build from a ``node.try_get_context``-like callable."""

        def ctx(key: str, default: Any) -> Any:
            value = get(key)
            return default if value is None else value

        d = cls()
        cfg = cls(
            prefix=str(ctx("prefix", d.prefix)),
            regions=_list(ctx("regions", list(d.regions))) or d.regions,
            account=ctx("account", None),
            global_tables=_bool(ctx("global_tables", d.global_tables)),
            active_region=ctx("active_region", None),
            multi_region=str(ctx("multi_region", d.multi_region)).strip(),
            witness_region=ctx("witness_region", None) or None,
            multi_region_bootstrap=_bool(ctx("multi_region_bootstrap", False)),
            api_domain_name=ctx("api_domain_name", None) or None,
            api_hosted_zone_id=ctx("api_hosted_zone_id", None) or None,
            archive_retention_days=int(ctx("archive_retention_days", d.archive_retention_days)),
            consumer_accounts=_list(ctx("consumer_accounts", [])),
            bundle=_bool(ctx("bundle", d.bundle)),
            executor_image=str(ctx("executor_image", d.executor_image)),
            executor_cpu=int(ctx("executor_cpu", d.executor_cpu)),
            executor_memory_mib=int(ctx("executor_memory_mib", d.executor_memory_mib)),
            executor_max_tasks=int(ctx("executor_max_tasks", d.executor_max_tasks)),
            lease_seconds=int(ctx("lease_seconds", d.lease_seconds)),
            resume_window_days=int(ctx("resume_window_days", d.resume_window_days)),
            staging_expiry_days=int(ctx("staging_expiry_days", d.staging_expiry_days)),
            api_rate_limit=float(ctx("api_rate_limit", d.api_rate_limit)),
            api_burst_limit=int(ctx("api_burst_limit", d.api_burst_limit)),
            api_quota_per_day=int(ctx("api_quota_per_day", d.api_quota_per_day)),
            consumer_reserved_concurrency=int(
                ctx("consumer_reserved_concurrency", d.consumer_reserved_concurrency)
            ),
            alarm_email=ctx("alarm_email", None),
            customer_limits=parse_limits(ctx("customer_limits", None)),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if len(set(self.regions)) != len(self.regions) or not self.regions:
            raise ValueError(f"regions must be distinct and non-empty: {self.regions}")
        if self.active_region and self.active_region not in self.regions:
            raise ValueError(f"active_region {self.active_region} is not one of {self.regions}")
        if self.multi_region not in ("", ACTIVE_ACTIVE):
            raise ValueError(f"multi_region must be '' or {ACTIVE_ACTIVE!r}: {self.multi_region!r}")
        if self.active_active:
            self._validate_active_active()
        elif self.witness_region or self.multi_region_bootstrap:
            raise ValueError(
                "witness_region and multi_region_bootstrap are only used with "
                "multi_region=active_active"
            )
        for account in self.consumer_accounts:
            if not (account.isdigit() and len(account) == 12):
                raise ValueError(f"consumer_accounts: not a 12-digit account id: {account!r}")
        if self.staging_expiry_days <= self.multipart_abort_days:
            raise ValueError("staging_expiry_days must exceed resume_window_days + 1")
        if not (60 <= self.lease_seconds <= 6 * 3600):
            raise ValueError("lease_seconds must be within 60..21600")
        if self.executor_max_tasks < 3:
            raise ValueError("executor_max_tasks must be >= 3")
        if not (
            self.executor_image == "asset"
            or (
                self.executor_image.startswith(ECR_IMAGE_PREFIX)
                and self.executor_image.count(":") == 2
            )
        ):
            raise ValueError("executor_image must be 'asset' or 'ecr:<repository>:<tag>'")

    def _validate_active_active(self) -> None:
        """Two replica regions + a witness, all three in one MRSC Region set."""
        if self.global_tables or self.active_region:
            raise ValueError(
                "multi_region=active_active replaces global_tables/active_region (active/passive): "
                "set one mode, not both"
            )
        if len(self.regions) != 2:
            raise ValueError(
                f"multi_region=active_active needs exactly two replica regions (+ witness_region): "
                f"{self.regions}"
            )
        if not self.witness_region:
            raise ValueError(
                "multi_region=active_active needs witness_region (MRSC tables span exactly three "
                "regions: the two replicas and a witness)"
            )
        three = (*self.regions, self.witness_region)
        if len(set(three)) != 3:
            raise ValueError(f"regions and witness_region must be three distinct regions: {three}")
        gov = [r for r in three if r.startswith(("us-gov-", "cn-"))]
        if gov:
            raise ValueError(
                f"multi_region=active_active needs DynamoDB multi-Region strong consistency, which "
                f"AWS offers in no GovCloud (or China) region ({', '.join(gov)}): use a commercial "
                f"region set, e.g. regions=us-east-1,us-east-2 witness_region=us-west-2"
            )
        if not any(set(three) <= set(members) for members in MRSC_REGION_SETS.values()):
            raise ValueError(
                f"MRSC needs all three regions in one Region set ({three}); sets: "
                + "; ".join(f"{n}: {', '.join(m)}" for n, m in MRSC_REGION_SETS.items())
            )
        if bool(self.api_domain_name) != bool(self.api_hosted_zone_id):
            raise ValueError("api_domain_name and api_hosted_zone_id go together (both or neither)")
