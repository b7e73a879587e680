"""The expired-item sweep for tables that have no TTL (multi-Region strong consistency).

MRSC global tables support no TTL (docs/multi-region.md §3), so in active-active mode the
idempotency table (idempotency keys, the slow watch's minute items) and the publication claims
would grow without end. Nothing depends on their deletion for correctness: every condition that
reads them compares the expiry with now. This sweep deletes what has expired:

- a ``Scan`` filtered on ``<expiry> < now - grace`` (only the key and the expiry projected),
- then one ``DeleteItem`` per item, **conditional on the same expiry test**: an item claimed again
  between the scan and the delete (an idempotency key reused after it expired, the first claim of
  a new item at that key) carries a new expiry and is kept. Two regions sweeping the same table at
  once are safe for the same reason (a delete of a deleted item is a no-op).

``grace`` (60 s) keeps clear of clock skew between the writer's clock and the sweeper's, and of
the idempotency store's two expiry attributes (``expiration`` is the whole seconds of
``expires_at``, which its claim compares).

A publication claim that names ``missed_buses`` (a peer bus that failed while the claim's event
was published, docs/multi-region-runtime.md §2) is kept: it is the operator's record of what to
re-send, not clutter. Items without the expiry attribute (the slow watch's cursor) never match.

Entry points: :func:`handler` (the ``ExpirySweep`` Lambda that EventBridge Scheduler invokes in
active-active deployments, infra/constructs/multi_region.py) and ``python -m events.expiry``, its
local stand-in (the two-region simulation runs one per region). The tables come from
``FERRY_IDEMPOTENCY_TABLE`` and ``FERRY_PUBLICATIONS_TABLE``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from ferry import names as n

logger = Logger(service="ferry-expiry-sweep")

GRACE_SECONDS = 60.0
DELETE_THREADS = 8


@dataclass(frozen=True)
class SweepTarget:
    """One table: its key attributes, the expiry attribute (epoch seconds, a number) and the
    attributes whose presence keeps an expired item."""

    table: str
    key: tuple[str, ...]
    expiry: str
    keep_if_absent: tuple[str, ...] = ()  # delete only while these attributes are absent


def idempotency_target(table: str) -> SweepTarget:
    """Idempotency records and slow-watch minutes (``services/jobs/adapters.py``): ``expiration``."""
    return SweepTarget(table=table, key=("id",), expiry="expiration")


def publications_target(table: str) -> SweepTarget:
    """Publication claims (``events/publications.py``): ``expires_at``; a claim that recorded
    ``missed_buses`` stays."""
    return SweepTarget(
        table=table, key=("pk",), expiry="expires_at", keep_if_absent=("missed_buses",)
    )


@dataclass
class SweepResult:
    table: str
    scanned: int = 0  # items read by the scan (before its filter)
    expired: int = 0  # items the filter returned
    deleted: int = 0
    kept: int = 0  # expired at the scan, renewed before the delete
    complete: bool = True  # False: stopped at the deadline; the next run goes on
    errors: list[str] = field(default_factory=list)


def _condition(target: SweepTarget) -> tuple[str, dict[str, str]]:
    names = {"#e": target.expiry}
    parts = ["#e < :cut"]
    for i, attr in enumerate(target.keep_if_absent):
        names[f"#k{i}"] = attr
        parts.append(f"attribute_not_exists(#k{i})")
    return " AND ".join(parts), names


def sweep(
    client: Any,
    target: SweepTarget,
    *,
    now: float | None = None,
    grace: float = GRACE_SECONDS,
    deadline: float | None = None,
    threads: int = DELETE_THREADS,
    page_size: int | None = None,
    clock: Callable[[], float] = time.time,
) -> SweepResult:
    """Delete ``target``'s items that expired more than ``grace`` seconds before ``now``.
    Stops paging at ``deadline`` (a ``clock()`` value) with ``complete=False``."""
    cut = (clock() if now is None else now) - grace
    condition, names = _condition(target)
    values = {":cut": {"N": repr(cut)}}
    projection = ", ".join(f"#p{i}" for i in range(len(target.key)))
    scan_names = {**names, **{f"#p{i}": k for i, k in enumerate(target.key)}}
    result = SweepResult(table=target.table)

    def delete(key: dict[str, Any]) -> str:
        try:
            client.delete_item(
                TableName=target.table,
                Key=key,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                return "kept"
            return f"error: {code}"
        return "deleted"

    kwargs: dict[str, Any] = {
        "TableName": target.table,
        "FilterExpression": condition,
        "ProjectionExpression": projection,
        "ExpressionAttributeNames": scan_names,
        "ExpressionAttributeValues": values,
        "ConsistentRead": True,
    }
    if page_size is not None:
        kwargs["Limit"] = page_size  # items read per page, before the filter
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        while True:
            page = client.scan(**kwargs)
            result.scanned += int(page.get("ScannedCount", 0))
            keys = [{k: item[k] for k in target.key} for item in page.get("Items", [])]
            result.expired += len(keys)
            for outcome in pool.map(delete, keys):
                if outcome == "deleted":
                    result.deleted += 1
                elif outcome == "kept":
                    result.kept += 1
                else:
                    result.errors.append(outcome)
            last = page.get("LastEvaluatedKey")
            if not last:
                break
            if deadline is not None and clock() >= deadline:
                result.complete = False
                break
            kwargs["ExclusiveStartKey"] = last
    return result


def targets_from_env(env: dict[str, str] | None = None) -> list[SweepTarget]:
    env = dict(os.environ) if env is None else env
    found: list[SweepTarget] = []
    if table := env.get(n.ENV_IDEMPOTENCY_TABLE):
        found.append(idempotency_target(table))
    if table := env.get(n.ENV_PUBLICATIONS_TABLE):
        found.append(publications_target(table))
    return found


def sweep_all(
    client: Any, targets: Sequence[SweepTarget], *, deadline: float | None = None
) -> list[SweepResult]:
    results = []
    for target in targets:
        result = sweep(client, target, deadline=deadline)
        logger.info(
            "expiry sweep",
            table=result.table,
            scanned=result.scanned,
            expired=result.expired,
            deleted=result.deleted,
            kept=result.kept,
            complete=result.complete,
            errors=len(result.errors),
        )
        results.append(result)
        if deadline is not None and time.time() >= deadline:
            break
    return results


def _summary(results: Sequence[SweepResult]) -> dict[str, Any]:
    return {
        r.table: {"deleted": r.deleted, "kept": r.kept, "complete": r.complete} for r in results
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge Scheduler target: sweep until 10 s before the Lambda's own timeout."""
    remaining_ms = context.get_remaining_time_in_millis() if context is not None else 60_000
    deadline = time.time() + max(remaining_ms / 1000.0 - 10.0, 1.0)
    results = sweep_all(boto3.client("dynamodb"), targets_from_env(), deadline=deadline)
    if any(r.errors for r in results):
        # raise so the schedule's retry and the function's error metric see it
        raise RuntimeError(f"expiry sweep: failed deletes: {_summary(results)}")
    return _summary(results)


def main(argv: list[str] | None = None) -> int:
    """LOCAL STAND-IN for the schedule: sweep every ``--every`` seconds."""
    parser = argparse.ArgumentParser(prog="python -m events.expiry")
    parser.add_argument("--every", type=float, default=60.0)
    parser.add_argument("--once", action="store_true")
    args = parser.parse_args(argv)
    targets = targets_from_env()
    if not targets:
        parser.error(f"set {n.ENV_IDEMPOTENCY_TABLE} and/or {n.ENV_PUBLICATIONS_TABLE}")
    client = boto3.client("dynamodb")
    while True:
        try:
            sweep_all(client, targets)
        except Exception:
            logger.exception("expiry sweep failed")
        if args.once:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    raise SystemExit(main())
