"""The per-customer bytes-per-day limit (issue 15, fair sharing; docs/data-plane.md "Fair
sharing"): the one decision the jobs API (admission at POST /transfers) and the executor (a job
of a customer over its budget waits for the next UTC day) both take, and how both read the
bytes a customer's jobs delivered today.

- **Day**: the UTC calendar day. The budget resets at 00:00 UTC; a refusal's Retry-After is the
  seconds until then.
- **What counts**: the size of every file a customer's jobs *delivered* that day — a job counts
  on the UTC hour its JobSucceeded was recorded (``finished_at``), whole (a 10 GB file finished
  at 00:30 counts on the new day, even if most of it moved before midnight). Bytes of attempts
  that failed, and of jobs that failed or were cancelled, do not count.
- **Where**: the projector's job-stats aggregate (``<prefix>-job-stats``, pk ``customer_id``,
  sk ``YYYY-MM-DDTHH#shard``; services/projections/stats.py) keeps a ``bytes_delivered``
  counter per hour of *delivery*, next to its per-hour-of-*creation* job and ``bytes_moved``
  counters (those charge a job to the hour it was requested, which is wrong for a daily budget:
  a job requested yesterday and delivered today would never count against today). Today's
  bytes are one Query of the customer's partition, today's 24 hours x 8 shards (≤ 192 small
  items, only the one attribute projected).
- **A failed read allows** (fail open, like the queued-jobs limit): it is logged and the job
  goes ahead; the limit never turns a storage hiccup into a refusal or a 5xx.

``None`` as a limit means unlimited (the default).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

log = logging.getLogger(__name__)

__all__ = [
    "DELIVERED_COUNTER",
    "MAX_DAILY_BYTES",
    "DailyBytesRefusal",
    "DeliveredBytes",
    "DynamoDailyBytes",
    "daily_bytes_refusal",
    "day_of",
    "day_row_range",
    "limit_of",
    "parse_overrides",
    "seconds_until_next_utc_day",
]

#: the job-stats counter of bytes delivered in the row's hour (written by the projector)
DELIVERED_COUNTER = "bytes_delivered"
#: the largest limit a setting may give (1 EiB): beyond it, a typo rather than a budget
MAX_DAILY_BYTES = 2**60


def day_of(now: datetime) -> str:
    """The UTC calendar day of ``now`` (``YYYY-MM-DD``)."""
    return _utc(now).strftime("%Y-%m-%d")


def day_row_range(now: datetime) -> tuple[str, str]:
    """The lowest and highest job-stats sort keys of ``now``'s UTC day: its hours ``T00`` to
    ``T23``, every shard (the rows' keys are ``YYYY-MM-DDTHH#shard``; '~' sorts after every
    shard number)."""
    day = day_of(now)
    return f"{day}T00", f"{day}T23#~"


def seconds_until_next_utc_day(now: datetime) -> int:
    """Whole seconds from ``now`` to the next 00:00 UTC, at least 1 (Retry-After)."""
    at = _utc(now)
    midnight = datetime(at.year, at.month, at.day, tzinfo=UTC) + timedelta(days=1)
    return max(1, math.ceil((midnight - at).total_seconds()))


@dataclass(frozen=True)
class DailyBytesRefusal:
    """A customer at or over its daily bytes: what it delivered today, its limit, and the
    seconds until the budget resets."""

    delivered: int
    limit: int
    retry_after: int

    @property
    def message(self) -> str:
        return (
            f"daily bytes limit reached: this customer's jobs delivered {self.delivered} bytes "
            f"today (UTC) of its daily_bytes_limit {self.limit}; the limit resets at 00:00 UTC, "
            f"retry after {self.retry_after} s"
        )


def daily_bytes_refusal(
    delivered: int | None, limit: int | None, now: datetime
) -> DailyBytesRefusal | None:
    """The decision: None (go ahead) unless the customer has a limit and today's delivered
    bytes are known and reach it. ``delivered`` None: the count failed (fail open)."""
    if limit is None or delivered is None or delivered < limit:
        return None
    return DailyBytesRefusal(delivered, limit, seconds_until_next_utc_day(now))


def limit_of(
    customer_id: str, default: int | None, overrides: Mapping[str, int | None]
) -> int | None:
    """The customer's limit: its override if it has one (None there: unlimited), else the
    default (None: unlimited)."""
    if customer_id in overrides:
        return overrides[customer_id]
    return default


def parse_overrides(value: Any, variable: str) -> Any:
    """A settings validator's ``mode="before"`` step: the environment's JSON object text → a
    dict (empty text: no overrides); anything else is left to the field's own validation."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value) if value.strip() else {}
        except ValueError:
            raise ValueError(f"{variable}: not a JSON object") from None
        if not isinstance(parsed, dict):
            raise ValueError(f"{variable}: not a JSON object")
        return parsed
    return value


class DeliveredBytes(Protocol):
    """Where today's delivered bytes of a customer are read (the jobs service's and the
    executor's port; :class:`DynamoDailyBytes` on AWS / moto server)."""

    def delivered_today(self, customer_id: str, now: datetime) -> int | None:
        """Bytes the customer's jobs delivered on ``now``'s UTC day; None when the count
        failed (the caller allows)."""
        ...


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("a naive datetime has no UTC day")
    return now.astimezone(UTC)


class DynamoDailyBytes:
    """Today's delivered bytes of a customer from the job-stats table: one Query of its
    partition's day range, ``bytes_delivered`` only (paginated; ≤ 192 items). A failed read is
    None (logged): the caller allows the job."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table = table_name
        self._client = client

    @property
    def client(self) -> Any:
        """The DynamoDB client, made at the first read (none at start-up)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "dynamodb", config=Config(retries={"max_attempts": 3, "mode": "standard"})
            )
        return self._client

    def delivered_today(self, customer_id: str, now: datetime) -> int | None:
        from botocore.exceptions import BotoCoreError, ClientError

        low, high = day_row_range(now)
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "customer_id = :c AND hour_shard BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":c": {"S": customer_id},
                ":low": {"S": low},
                ":high": {"S": high},
            },
            "ProjectionExpression": "#d",
            "ExpressionAttributeNames": {"#d": DELIVERED_COUNTER},
        }
        total = 0
        try:
            while True:
                page = self.client.query(**request)
                for item in page.get("Items", []):
                    total += int(item.get(DELIVERED_COUNTER, {}).get("N", "0"))
                if not page.get("LastEvaluatedKey"):
                    return total
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError, ValueError) as exc:  # never refuse on a failed read
            log.warning("bytes delivered today by %s not counted: %r", customer_id, exc)
            return None
