"""Hourly job statistics for the console's Overview (``GET /stats/hourly``): jobs created per hour
by status, and bytes moved, over the last N hours of one customer.

Read from the jobs read model through the customer + created_at index, the window only (a
``since`` key condition, newest first, pages of 500): never a scan, never another customer's
partition; only the attributes it counts are read. It reads at most the newest ``MAX_JOBS`` jobs
of the window; past that the answer says ``truncated: true`` and counts what it read (an hourly
aggregate kept by the projector would lift the cap: not built yet).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from services.projections import readmodels
from services.projections.readmodels import JOBS
from services.projections.store import IndexQuery, ReadModelStore
from services.projections.tables import JOBS_CUSTOMER_CREATED_INDEX

MAX_JOBS = 2_000
PAGE = 500


class HourBucket(BaseModel):
    hour: str = Field(description="Start of the hour (UTC, ISO 8601)")
    by_status: dict[str, int] = Field(description="Jobs created in this hour, by current status")
    bytes_moved: int = Field(description="Bytes committed by the jobs created in this hour")


class HourlyStats(BaseModel):
    hours: list[HourBucket]
    total_jobs: int
    failed_jobs: int
    bytes_moved: int
    truncated: bool = Field(description="More jobs in the window than are read: not all counted")


def hourly_stats(
    store: ReadModelStore, customer_id: str, *, hours: int = 24, now: datetime | None = None
) -> HourlyStats:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    end = now.replace(minute=0, second=0, microsecond=0)
    starts = [end - timedelta(hours=h) for h in range(hours - 1, -1, -1)]
    buckets = {s: HourBucket(hour=s.isoformat(), by_status={}, bytes_moved=0) for s in starts}
    query = IndexQuery(
        kind=JOBS,
        index=JOBS_CUSTOMER_CREATED_INDEX,
        partition_attribute="customer_id",
        partition_value=customer_id,
        limit=PAGE,
        since=readmodels.timestamp(starts[0]),
        attributes=("status", "bytes_committed", "size"),
    )
    read = 0
    truncated = False
    while True:
        page = store.query(query)
        for item in page.items:
            created = datetime.fromisoformat(str(item["created_at"]))
            bucket = buckets.get(created.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
            if bucket is None:
                continue
            status = str(item.get("status") or "UNKNOWN")
            bucket.by_status[status] = bucket.by_status.get(status, 0) + 1
            moved = int(item.get("bytes_committed") or 0)
            if status == "SUCCEEDED":
                moved = max(moved, int(item.get("size") or 0))
            bucket.bytes_moved += moved
        read += len(page.items)
        if not page.last_key:
            break
        if read >= MAX_JOBS:
            truncated = True
            break
        query = IndexQuery(**{**query.__dict__, "start_key": page.last_key})
    listed = list(buckets.values())
    return HourlyStats(
        hours=listed,
        total_jobs=sum(sum(b.by_status.values()) for b in listed),
        failed_jobs=sum(b.by_status.get("FAILED", 0) for b in listed),
        bytes_moved=sum(b.bytes_moved for b in listed),
        truncated=truncated,
    )
