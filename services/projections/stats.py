"""Hourly job statistics for the console's Overview (``GET /stats/hourly``): jobs created per hour
by their current status, and bytes moved, over the last N hours of one customer.

An aggregate kept by the projector, exact and cheap to read at any number of jobs:

- A job item *contributes* to one hour of its customer (the hour it was created): one job under
  its current status, and its bytes moved (``bytes_committed``, or ``size`` once SUCCEEDED).
- Every read-model write of a job item carries the difference between the old item's
  contribution and the new one's (:func:`stats_deltas`: a status change is -1 under the old
  status, +1 under the new; a chunk commit adds its bytes). The store applies it in the same
  transaction as the item's conditional put (``ReadModelStore.put``), so a delta is counted
  exactly when the item changes: a duplicate, a lost race or a redelivery changes neither.
- The counters of one customer and hour are split over :data:`SHARDS` items (the job id picks
  one), so concurrent writers of one busy customer rarely touch the same item (a DynamoDB
  transaction conflicts with another on the same item; the loser is retried like a lost
  conditional write).
- A rebuild replays every stream into empty tables, so it recomputes the aggregate from the
  events, and ends with the same counters as the live projection.
- One counter is charged to another hour: a SUCCEEDED job also contributes its ``size`` as
  ``bytes_delivered`` to the hour it finished (``finished_at``), the bytes-per-day limit's count
  (ferry/daily_bytes.py: a daily budget must charge a file to the day it was delivered, not the
  day it was requested). Its inputs (status, size, finished_at) are all the job stream's, so
  either stream order and a rebuild end with the same counter.

Reading the last 24 hours is one Query of at most ``24 * SHARDS`` small items of the customer's
own partition (``ReadModelStore.stats_rows``): never a scan, never another customer's rows.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from ferry.daily_bytes import DELIVERED_COUNTER
from services.projections.readmodels import Item
from services.projections.store import ReadModelStore, StatsDelta, row_key

__all__ = ["HourBucket", "HourlyStats", "StatsDelta", "hourly_stats", "row_key", "stats_deltas"]

SHARDS = 8
JOBS_PREFIX = "jobs_"  # a counter per status: jobs_SUCCEEDED, jobs_FAILED, ...
BYTES = "bytes_moved"
DELIVERED = DELIVERED_COUNTER  # by the hour the job finished, SUCCEEDED jobs only
HOUR_FORMAT = "%Y-%m-%dT%H"


def hour_of(at: datetime) -> str:
    return at.astimezone(UTC).strftime(HOUR_FORMAT)


def shard_of(job_id: str) -> int:
    return zlib.crc32(job_id.encode()) % SHARDS


def bytes_moved(item: Item) -> int:
    moved = int(item.get("bytes_committed") or 0)
    if item.get("status") == "SUCCEEDED":
        moved = max(moved, int(item.get("size") or 0))
    return moved


def _contributions(item: Item | None) -> list[tuple[str, str, dict[str, int]]]:
    """(customer, hour, counters) of one job item: its status and bytes moved at the hour it
    was created, and, once SUCCEEDED, its size delivered at the hour it finished. Nothing until
    it has a customer, a creation time and a status (its Transfer stream's events can arrive
    first)."""
    if not item or not item.get("customer_id") or not item.get("created_at"):
        return []
    status = item.get("status")
    if not status:
        return []
    customer = str(item["customer_id"])
    hour = hour_of(datetime.fromisoformat(str(item["created_at"])))
    parts = [(customer, hour, {JOBS_PREFIX + str(status): 1, BYTES: bytes_moved(item)})]
    size = int(item.get("size") or 0)
    if status == "SUCCEEDED" and item.get("finished_at") and size:
        finished = hour_of(datetime.fromisoformat(str(item["finished_at"])))
        parts.append((customer, finished, {DELIVERED: size}))
    return parts


def stats_deltas(old: Item | None, new: Item) -> list[StatsDelta]:
    """What writing ``new`` over ``old`` (one job item; None: absent) changes in the counters."""
    changes: dict[tuple[str, str], dict[str, int]] = {}
    for sign, parts in ((-1, _contributions(old)), (1, _contributions(new))):
        for customer, hour, counts in parts:
            bucket = changes.setdefault((customer, hour), {})
            for counter, amount in counts.items():
                bucket[counter] = bucket.get(counter, 0) + sign * amount
    shard = shard_of(str(new["job_id"]))
    deltas = []
    for (customer, hour), counts in changes.items():
        nonzero = {c: a for c, a in counts.items() if a}
        if nonzero:
            deltas.append(StatsDelta(customer, hour, shard, nonzero))
    return deltas


class HourBucket(BaseModel):
    hour: str = Field(description="Start of the hour (UTC, ISO 8601)")
    by_status: dict[str, int] = Field(description="Jobs created in this hour, by current status")
    bytes_moved: int = Field(description="Bytes committed by the jobs created in this hour")


class HourlyStats(BaseModel):
    hours: list[HourBucket]
    total_jobs: int
    failed_jobs: int
    bytes_moved: int


def hourly_stats(
    store: ReadModelStore, customer_id: str, *, hours: int = 24, now: datetime | None = None
) -> HourlyStats:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    end = now.replace(minute=0, second=0, microsecond=0)
    starts = [end - timedelta(hours=h) for h in range(hours - 1, -1, -1)]
    buckets = {
        hour_of(s): HourBucket(hour=s.isoformat(), by_status={}, bytes_moved=0) for s in starts
    }
    for row in store.stats_rows(customer_id, hour_of(starts[0]), hour_of(starts[-1])):
        bucket = buckets.get(str(row["hour_shard"]).partition("#")[0])
        if bucket is None:
            continue
        for counter, value in row.items():
            if counter.startswith(JOBS_PREFIX):
                status = counter[len(JOBS_PREFIX) :]
                bucket.by_status[status] = bucket.by_status.get(status, 0) + int(value)
        bucket.bytes_moved += int(row.get(BYTES) or 0)
    listed = list(buckets.values())
    for bucket in listed:
        bucket.by_status = {s: n for s, n in bucket.by_status.items() if n}
    return HourlyStats(
        hours=listed,
        total_jobs=sum(sum(b.by_status.values()) for b in listed),
        failed_jobs=sum(b.by_status.get("FAILED", 0) for b in listed),
        bytes_moved=sum(b.bytes_moved for b in listed),
    )
