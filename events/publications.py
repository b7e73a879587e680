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
sent by a small thread pool, and so are the published marks (one UpdateItem each). Cost per
published event in active-active: the winner's claim and mark (2 writes), the loser's failed
conditional put (1 write: a failed condition is billed too), a PutEvents entry per bus. With
``FERRY_PUBLICATIONS_TABLE`` unset none of this runs (single region).

``expires_at`` is a TTL attribute for tables that have TTL; MRSC tables have none, so nothing
relies on it (an expired claim is only ever compared, never required to be gone); the hourly sweep
(``events/expiry.py``) deletes expired claims that list no ``missed_buses``.
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
        """Mark won claims published: one UpdateItem each, sent in parallel (the publisher's
        IAM grants GetItem/PutItem/UpdateItem on the table, docs/multi-region.md §4)."""
        now = repr(self.clock())

        def mark(claim: Claim) -> None:
            expression = "SET published = :t, published_at = :now"
            values: dict[str, Any] = {":t": {"BOOL": True}, ":now": {"N": now}}
            if missed_buses:
                expression += ", missed_buses = :missed"
                values[":missed"] = {"SS": sorted(set(missed_buses))}
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": claim.key}},
                UpdateExpression=expression,
                ExpressionAttributeValues=values,
            )

        if len(claims) <= 1 or self.threads <= 1:
            for claim in claims:
                mark(claim)
            return
        with ThreadPoolExecutor(max_workers=min(self.threads, len(claims))) as pool:
            list(pool.map(mark, claims))

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
