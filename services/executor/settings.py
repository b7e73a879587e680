"""Executor settings: the only reader of the environment (pydantic-settings)."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import uuid
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ferry.daily_bytes import MAX_DAILY_BYTES, limit_of, parse_overrides
from ferry.names import ResourceNames

MiB = 1024 * 1024

#: Chunk size chosen by bench/transfer.py --sweep 8,16,32 (bench/README.md): at 512 MiB on
#: loopback, S3→SFTP 108 / 138 / 113 MB/s and SFTP→S3 46 / 50 / 45 MB/s for 8 / 16 / 32 MiB
#: chunks (peak RSS 130 / 151 / 160 MiB). Each SFTP chunk ends with a flush that drains the
#: write window, so larger chunks drain less often; past 16 MiB the buffered S3 part costs more
#: than it saves. A committed chunk is also the most a resume ever reads again.
DEFAULT_CHUNK_SIZE = 16 * MiB

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allow_list(text: str | Iterable[str] | None) -> tuple[IPNetwork, ...]:
    """``"127.0.0.0/8, fd00::/8"`` (or a list) → networks. Raises ValueError naming the bad
    entry. A bare address is a /32 (/128)."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[IPNetwork] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"FERRY_EGRESS_ALLOW: {item!r} is not a CIDR block") from None
    return tuple(out)


class EgressSettings(BaseSettings):
    """``FERRY_EGRESS_ALLOW``: comma-separated CIDR blocks SFTP connections may reach although
    they are not public (services/executor/egress.py). Empty by default: loopback, private,
    link-local... are refused. The local stack and the tests set ``127.0.0.0/8``."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    egress_allow: str = Field(default="", validation_alias="FERRY_EGRESS_ALLOW")

    @field_validator("egress_allow")
    @classmethod
    def _valid_cidrs(cls, value: str) -> str:
        parse_allow_list(value)  # ValueError names the bad entry
        return value

    def allow_networks(self) -> tuple[IPNetwork, ...]:
        return parse_allow_list(self.egress_allow)


def _default_executor_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class ExecutorSettings(BaseSettings):
    """``FERRY_EXECUTOR_*`` (plus the shared FERRY_* resource names)."""

    model_config = SettingsConfigDict(
        env_prefix="FERRY_EXECUTOR_", extra="ignore", populate_by_name=True
    )

    prefix: str = Field(default="ferry", validation_alias="FERRY_PREFIX")
    queue_url: str = Field(default="", validation_alias="FERRY_EXECUTOR_QUEUE_URL")
    persistence_module: str | None = Field(default=None, validation_alias="PERSISTENCE_MODULE")
    events_table: str | None = Field(default=None, validation_alias="FERRY_EVENTS_TABLE")
    endpoints_table: str | None = Field(default=None, validation_alias="FERRY_ENDPOINTS_TABLE")
    jobs_table: str | None = Field(default=None, validation_alias="FERRY_JOBS_TABLE")
    job_stats_table: str | None = Field(default=None, validation_alias="FERRY_JOB_STATS_TABLE")
    leases_table: str | None = Field(default=None, validation_alias="FERRY_LEASES_TABLE")
    staging_bucket: str | None = Field(default=None, validation_alias="FERRY_STAGING_BUCKET")
    region: str = Field(default="us-east-1", validation_alias="FERRY_REGION")

    executor_id: str = Field(default_factory=_default_executor_id)
    concurrency: int = Field(default=2, ge=1, le=64, description="Jobs in parallel per process.")
    chunk_size: int = Field(default=DEFAULT_CHUNK_SIZE, ge=64 * 1024)
    single_put_threshold: int = Field(
        default=DEFAULT_CHUNK_SIZE, ge=0, description="S3 target: one PUT below this size."
    )
    copy_part_threshold: int = Field(
        default=5 * 1024 * MiB, ge=1, description="S3→S3: UploadPartCopy above this size."
    )
    copy_part_size: int = Field(default=512 * MiB, ge=5 * MiB)
    chunks_in_flight: int = Field(
        default=4,
        ge=1,
        le=32,
        description="K: chunks of a leg read and in flight to the target at once (memory "
        "K x chunk_size per job; a kill re-reads at most K chunks).",
    )
    lease_seconds: float = Field(default=60.0, gt=0)
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    slot_wait_visibility_seconds: int = Field(default=5, ge=0)
    #: SSH connections per SFTP target of a file of several chunks, each one slot of the
    #: endpoint's max_concurrency (taken only when free): one channel's writes are bound by the
    #: server's 2 MiB receive window per round trip (bench/sftp_transport.py)
    sftp_connections: int = Field(default=2, ge=1, le=8)
    poll_wait_seconds: int = Field(default=10, ge=0, le=20)
    #: Fair sharing (services/executor/fairness.py, docs/data-plane.md "Fair sharing"): a
    #: customer's jobs running at once across every executor, and per-customer exceptions
    #: (``FERRY_EXECUTOR_CUSTOMER_CONCURRENCY_OVERRIDES='{"<customer_id>": 50}'``)
    customer_concurrency: int = Field(default=10, ge=1, le=10_000)
    customer_concurrency_overrides: dict[str, Annotated[int, Field(ge=1, le=10_000)]] = Field(
        default_factory=dict
    )
    customer_recheck_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="A customer found at its limit is not asked again for this long (unless "
        "one of its jobs ends here); an executor whose whole queue is waiting pauses as long.",
    )
    #: The bytes-per-day limit (ferry/daily_bytes.py, docs/data-plane.md "Fair sharing"): the
    #: jobs service's two variables, read here too, so a customer whose jobs delivered its
    #: limit today (UTC) has its other jobs held until 00:00 UTC (no attempt consumed)
    daily_bytes_limit: int | None = Field(
        default=None, ge=1, le=MAX_DAILY_BYTES, validation_alias="FERRY_JOBS_DAILY_BYTES_LIMIT"
    )
    daily_bytes_limit_overrides: dict[
        str, Annotated[int, Field(ge=1, le=MAX_DAILY_BYTES, strict=True)] | None
    ] = Field(default_factory=dict, validation_alias="FERRY_JOBS_DAILY_BYTES_LIMIT_OVERRIDES")
    daily_bytes_recheck_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="A customer found under its daily bytes is not asked again for this long "
        "(how far its running jobs may take it past the limit before the next check here).",
    )
    sftp_timeout: float = Field(default=20.0, gt=0)
    run_validator: bool = False
    #: Checked at start-up so a bad FERRY_EGRESS_ALLOW stops the process at once (connects read
    #: the policy through EgressSettings).
    egress_allow: str = Field(default="", validation_alias="FERRY_EGRESS_ALLOW")
    exit_when_idle: bool = Field(default=False, description="Test/bench: exit on an empty poll.")
    fault: str | None = Field(default=None, description="TEST ONLY: 'point[:n]' → SIGKILL self.")
    stats_file: str | None = Field(default=None, description="TEST ONLY: write read counters.")

    @field_validator("customer_concurrency_overrides", mode="before")
    @classmethod
    def _json_map(cls, value: Any) -> Any:
        if isinstance(value, str):  # the environment's JSON (also when passed as a value)
            try:
                return json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError(
                    "FERRY_EXECUTOR_CUSTOMER_CONCURRENCY_OVERRIDES: not a JSON object"
                ) from None
        return value

    def customer_limit(self, customer_id: str) -> int:
        return self.customer_concurrency_overrides.get(customer_id, self.customer_concurrency)

    @field_validator("daily_bytes_limit", mode="before")
    @classmethod
    def _empty_is_unlimited(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("daily_bytes_limit_overrides", mode="before")
    @classmethod
    def _daily_json_map(cls, value: Any) -> Any:
        return parse_overrides(value, "FERRY_JOBS_DAILY_BYTES_LIMIT_OVERRIDES")

    def daily_bytes_limit_of(self, customer_id: str) -> int | None:
        return limit_of(customer_id, self.daily_bytes_limit, self.daily_bytes_limit_overrides)

    @property
    def daily_bytes_limited(self) -> bool:
        """Whether any customer has a bytes-per-day limit (else nothing is read for it)."""
        return self.daily_bytes_limit is not None or any(self.daily_bytes_limit_overrides.values())

    @field_validator("egress_allow")
    @classmethod
    def _valid_egress(cls, value: str) -> str:
        parse_allow_list(value)
        return value

    def names(self) -> ResourceNames:
        return ResourceNames(self.prefix)

    def table(self, which: str) -> str:
        explicit = getattr(self, f"{which}_table")
        return explicit or getattr(self.names(), f"{which}_table")

    def staging(self) -> str:
        return self.staging_bucket or self.names().staging_bucket
