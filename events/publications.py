"""Publish once across regions: conditional claims in the ``<prefix>-publications`` table.

Active-active (docs/multi-region-runtime.md): every region's publisher sees every event (its
replica's stream carries the replicated writes too). Before publishing an event, a region claims
it here (pk ``<stream_id>#<version>``, ``attribute_not_exists``); the winner puts the event to
its own bus and every peer region's bus, then marks the claim ``published``; the loser skips it.
The table is multi-Region strongly consistent in AWS (one moto table in the local simulation),
so exactly one conditional write wins.

A claim whose winner dies before publishing must not lose the event: an unpublished claim older
than ``stale_after`` seconds may be taken over by another region, conditional on the old
``claimed_at`` (two regions cannot both take it over). A fresh unpublished claim of another
region is *pending*: the publisher reports that record failed, so it is retried (by then it is
published — skipped — or stale — taken over). A duplicate is possible only if a region dies
after PutEvents succeeded and before its claim was marked published (the taker-over publishes
again; ``takeover_of`` on the item records it).

Claims are written one conditional PutItem per event (no transaction: in active-active both
regions race on every event, and one lost condition would cancel a whole TransactWriteItems),
sent by a small thread pool; the published marks go as BatchWriteItem puts (25 per call). With
``FERRY_PUBLICATIONS_TABLE`` unset none of this runs (single region).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

ENV_PUBLICATIONS_TABLE = "FERRY_PUBLICATIONS_TABLE"
ENV_PEER_BUS_ARNS = "FERRY_PEER_BUS_ARNS"
STALE_AFTER_SECONDS = 30.0  # an unpublished claim older than this may be taken over
ENV_STALE_SECONDS = "FERRY_PUBLICATIONS_STALE_SECONDS"  # tests: a shorter takeover
TTL_SECONDS = 3 * 24 * 3600  # streams keep records 24 h: a claim is useless after that
CLAIM_THREADS = 8
BATCH_WRITE_MAX = 25

Verdict = Literal["won", "lost", "pending"]


@dataclass(frozen=True)
class Claim:
    key: str
    verdict: Verdict
    claimed_at: float = 0.0
    takeover_of: str | None = None  # the region whose stale claim this one replaced


def claim_key(stream_id: str, version: int) -> str:
    return f"{stream_id}#{version}"


def create_publications_table(client: Any, table_name: str) -> bool:
    """pk (S), TTL on ``expires_at``; True if created, False if it existed."""
    try:
        client.create_table(
            TableName=table_name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceInUseException":
            return False
        raise
    client.get_waiter("table_exists").wait(TableName=table_name)
    try:
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
        )
    except ClientError:  # pragma: no cover - TTL is an optimisation, not correctness
        pass
    return True


class Publications:
    """Claims of one region in the publications table."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        region: str,
        *,
        stale_after: float = STALE_AFTER_SECONDS,
        clock: Callable[[], float] = time.time,
        threads: int = CLAIM_THREADS,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.region = region
        self.stale_after = stale_after
        self.clock = clock
        self.threads = threads

    # ------------------------------------------------------------------------ claim
    def claim_all(self, keys: Sequence[str]) -> list[Claim]:
        """Claim each key (in parallel); the verdicts in the order of ``keys``."""
        if len(keys) <= 1 or self.threads <= 1:
            return [self.claim(k) for k in keys]
        with ThreadPoolExecutor(max_workers=min(self.threads, len(keys))) as pool:
            return list(pool.map(self.claim, keys))

    def claim(self, key: str) -> Claim:
        now = self.clock()
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=self._item(key, now),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return Claim(key, "won", now)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            returned: Any = error.response.get("Item")
            old = dict(returned) if returned else self._get(key)
        if old is None:  # expired between the two calls: claim again
            return self.claim(key)
        return self._contest(key, old, now)

    def _contest(self, key: str, old: dict[str, Any], now: float) -> Claim:
        if old.get("published", {}).get("BOOL"):
            return Claim(key, "lost")
        holder = old.get("region", {}).get("S", "")
        old_at = old.get("claimed_at", {}).get("N", "0")
        mine = holder == self.region  # our own earlier attempt (PutEvents failed, or we died)
        if not mine and now - float(old_at) < self.stale_after:
            return Claim(key, "pending")
        item = self._item(key, now)
        if not mine:
            item["takeover_of"] = {"S": holder}
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="claimed_at = :old AND attribute_not_exists(published)",
                ExpressionAttributeValues={":old": {"N": old_at}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            newer: Any = error.response.get("Item")
            if not newer:
                return self.claim(key)
            if newer.get("published", {}).get("BOOL"):
                return Claim(key, "lost")
            return Claim(key, "pending")  # another region took it over just now
        return Claim(key, "won", now, None if mine else holder)

    # ---------------------------------------------------------------------- publish
    def mark_published(self, claims: Sequence[Claim], missed_buses: Sequence[str] = ()) -> None:
        """Mark won claims published (BatchWriteItem puts; unprocessed items retried)."""
        requests = []
        for c in claims:
            item = self._item(c.key, c.claimed_at)
            item["published"] = {"BOOL": True}
            item["published_at"] = {"N": repr(self.clock())}
            if c.takeover_of:
                item["takeover_of"] = {"S": c.takeover_of}
            if missed_buses:
                item["missed_buses"] = {"SS": sorted(set(missed_buses))}
            requests.append({"PutRequest": {"Item": item}})
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            todo = {self.table_name: requests[start : start + BATCH_WRITE_MAX]}
            for attempt in range(8):
                response = self.client.batch_write_item(RequestItems=todo)
                todo = response.get("UnprocessedItems") or {}
                if not todo:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            if todo:
                raise RuntimeError(f"could not mark {len(todo[self.table_name])} claims published")

    # ---------------------------------------------------------------------- helpers
    def _item(self, key: str, claimed_at: float) -> dict[str, Any]:
        return {
            "pk": {"S": key},
            "region": {"S": self.region},
            "claimed_at": {"N": repr(claimed_at)},
            "expires_at": {"N": str(int(claimed_at) + TTL_SECONDS)},
        }

    def _get(self, key: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table_name, Key={"pk": {"S": key}}, ConsistentRead=True
        ).get("Item")
        return dict(item) if item else None
