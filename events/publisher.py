"""The outbox publisher: DynamoDB stream records of the event table → PutEvents on the Ferry bus.

In AWS this is a Lambda on the event table's stream (``handler``, with ReportBatchItemFailures);
locally the stream poller of the local stack calls ``publish_records`` with the records it reads
through dynamodbstreams (same shape; B values arrive as bytes there and as base64 text in Lambda).

- INSERT records only: the event store is append-only, MODIFY/REMOVE are ignored.
- Entries go out in stream order, in PutEvents calls of at most 10; failed entries are retried a
  few times with backoff. Once an entry finally fails, it and every later record are reported as
  failed and not sent (Lambda retries the batch from the first failure: order is kept, and what
  was already sent is re-sent at most once more — consumers dedupe on event_id).
- A record that cannot be decoded or translated is reported as failed (never silently dropped).

Active-active (``FERRY_PUBLICATIONS_TABLE`` set; docs/multi-region-runtime.md): each region's
publisher sees every event, so each event is first claimed in the publications table
(``events.publications``); the winner puts it to its own bus and to every peer region's bus
(``FERRY_PEER_BUS_ARNS``), then marks the claim published; a lost claim is skipped; a fresh claim
of another region not yet published is reported failed with every later record (retried from
there: what this call published after it is then found published and skipped). Not stopping at
it matters: two publishers racing on one stream win interleaved claims, and stopping at the
other's first claim left each holding unpublished claims that blocked the other (measured: the
backlog grew to 48 records within 10 s of four transfers). EventBridge does not keep order
anyway; consumers are version-aware. A peer bus
that still fails after the retries is recorded on the claim (``missed_buses``) and does not
block this region (a dead peer region must not stop the living one). With the variable unset
the publisher is the single-region one: no claim, no extra call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aws_lambda_powertools import Logger, Tracer

from events.dynamodb import stored_events_from_item
from events.publications import (
    ENV_PEER_BUS_ARNS,
    ENV_PUBLICATIONS_TABLE,
    ENV_STALE_SECONDS,
    STALE_AFTER_SECONDS,
    Claim,
    Publications,
    claim_key,
)
from events.translate import to_integration, to_put_events_entry

logger = Logger(service="ferry-publisher")
tracer = Tracer(service="ferry-publisher")  # X-Ray in Lambda; disabled elsewhere

MAX_ENTRIES = 10  # PutEvents limit
ATTEMPTS = 4


def _record_id(record: dict[str, Any]) -> str:
    return str(record.get("dynamodb", {}).get("SequenceNumber") or record.get("eventID"))


def publish_records(
    records: list[dict[str, Any]],
    *,
    events_client: Any,
    bus_name: str,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    publications: Publications | None = None,
    peer_buses: Sequence[str] = (),
    peer_client: Callable[[str], Any] | None = None,
) -> list[str]:
    """Publish the INSERT records; returns the sequence numbers of the records not published.

    With ``publications`` (active-active) each event is claimed first and the winner also puts
    it to ``peer_buses`` (ARNs; ``peer_client(arn)`` gives the events client of its region)."""
    pending: list[tuple[str, str, dict[str, Any]]] = []  # (record id, claim key, entry)
    undecodable: list[str] = []  # the first undecodable record and every later one
    for index, record in enumerate(records):
        if record.get("eventName") != "INSERT":
            continue
        record_id = _record_id(record)
        try:  # one record per append: every event it holds, in version order
            decoded = [
                (stored, to_integration(stored))
                for stored in stored_events_from_item(record["dynamodb"]["NewImage"])
            ]
        except Exception:
            logger.exception("undecodable event-store record", record_id=record_id)
            undecodable = [record_id, *_ids_after(records, index)]
            break
        for stored, event in decoded:
            if event is None:
                continue  # an internal event: not published
            key = claim_key(str(stored.originator_id), int(stored.originator_version))
            pending.append((record_id, key, to_put_events_entry(event, bus_name)))

    if publications is None:
        return _publish(events_client, [(r, e) for r, _, e in pending], attempts, sleep) + (
            undecodable
        )
    return _publish_claimed(
        pending,
        events_client=events_client,
        attempts=attempts,
        sleep=sleep,
        publications=publications,
        peer_buses=peer_buses,
        peer_client=peer_client or _peer_events_client,
    ) + (undecodable)


def _publish(
    client: Any,
    pending: list[tuple[str, dict[str, Any]]],
    attempts: int,
    sleep: Callable[[float], None],
) -> list[str]:
    """Single region: PutEvents in batches of 10; the ids from the first final failure on."""
    for start in range(0, len(pending), MAX_ENTRIES):
        batch = pending[start : start + MAX_ENTRIES]
        failed_at = _put_with_retries(client, batch, attempts, sleep)
        if failed_at is not None:
            first = start + failed_at
            return _unique(record_id for record_id, _ in pending[first:])
    return []


def _publish_claimed(
    pending: list[tuple[str, str, dict[str, Any]]],
    *,
    events_client: Any,
    attempts: int,
    sleep: Callable[[float], None],
    publications: Publications,
    peer_buses: Sequence[str],
    peer_client: Callable[[str], Any],
) -> list[str]:
    """Active-active: claim, publish the won ones to every bus, mark them published."""
    if not pending:
        return []
    claims = publications.claim_all([key for _, key, _ in pending])
    won: list[tuple[str, dict[str, Any], Claim]] = []
    won_at: list[int] = []  # each won entry's index in pending
    first_failed = len(pending)
    for index, ((record_id, _, entry), claim) in enumerate(zip(pending, claims, strict=True)):
        if claim.verdict == "pending":
            # another region holds it, not yet published: retried from here (what this call
            # publishes after it is found published then, and skipped)
            first_failed = min(first_failed, index)
            logger.info("event claimed by another region, not yet published", key=claim.key)
        elif claim.verdict == "won":
            won.append((record_id, entry, claim))
            won_at.append(index)
    for start in range(0, len(won), MAX_ENTRIES):
        batch = won[start : start + MAX_ENTRIES]
        failed_at = _put_with_retries(events_client, [(r, e) for r, e, _ in batch], attempts, sleep)
        sent = batch if failed_at is None else batch[:failed_at]
        missed = _put_to_peers(sent, peer_buses, peer_client, attempts, sleep)
        if sent:
            publications.mark_published([c for _, _, c in sent], missed)
        if failed_at is not None:
            first_failed = min(first_failed, won_at[start + failed_at])
            break
    return _unique(record_id for record_id, _, _ in pending[first_failed:])


def _unique(record_ids: Iterable[str]) -> list[str]:
    """Record ids in order, each once (the events of one record share its id)."""
    return list(dict.fromkeys(record_ids))


def _put_to_peers(
    sent: list[tuple[str, dict[str, Any], Claim]],
    peer_buses: Sequence[str],
    peer_client: Callable[[str], Any],
    attempts: int,
    sleep: Callable[[float], None],
) -> list[str]:
    """Put what went to our bus to each peer bus; the peer buses that still failed."""
    missed: list[str] = []
    if not sent:
        return missed
    for bus_arn in peer_buses:
        batch = [(r, {**e, "EventBusName": bus_arn}) for r, e, _ in sent]
        try:
            client = peer_client(bus_arn)
        except Exception:
            logger.exception("no events client for the peer bus", bus=bus_arn)
            missed.append(bus_arn)
            continue
        if _put_with_retries(client, batch, attempts, sleep) is not None:
            logger.error("peer bus unreachable: events recorded as missed", bus=bus_arn)
            missed.append(bus_arn)
    return missed


def _ids_after(records: list[dict[str, Any]], index: int) -> list[str]:
    return [_record_id(r) for r in records[index + 1 :] if r.get("eventName") == "INSERT"]


def _put_with_retries(
    client: Any,
    batch: list[tuple[str, dict[str, Any]]],
    attempts: int,
    sleep: Callable[[float], None],
) -> int | None:
    """Put one batch; returns the index of the first entry that finally failed, or None."""
    todo = list(range(len(batch)))
    for attempt in range(attempts):
        if attempt:
            sleep(min(0.1 * 2**attempt, 2.0))
        try:
            response = client.put_events(Entries=[batch[i][1] for i in todo])
        except Exception:
            logger.exception("PutEvents failed", attempt=attempt + 1)
            continue
        results = response.get("Entries", [])
        still = [i for i, result in zip(todo, results, strict=False) if result.get("ErrorCode")]
        if len(results) < len(todo):  # defensive: missing results count as failed
            still += todo[len(results) :]
        if still:
            logger.warning(
                "PutEvents entries failed",
                failed=len(still),
                error=next((r.get("ErrorCode") for r in results if r.get("ErrorCode")), None),
            )
        todo = still
        if not todo:
            return None
    return min(todo)


@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point for the event table's DynamoDB stream (ReportBatchItemFailures)."""
    failed = publish_records(
        event.get("Records", []),
        events_client=_events_client(),
        bus_name=_bus_name(),
        publications=_publications(),
        peer_buses=_peer_buses(),
    )
    return {"batchItemFailures": [{"itemIdentifier": f} for f in failed]}


_clients: dict[str, Any] = {}


def _events_client() -> Any:
    if "events" not in _clients:
        import boto3

        _clients["events"] = boto3.client("events")
    return _clients["events"]


def _bus_name() -> str:
    from ferry.names import ENV_BUS_NAME, ResourceNames

    return os.environ.get(ENV_BUS_NAME) or ResourceNames().bus


def _region() -> str:
    from ferry.names import deployment_region

    return deployment_region()


def _publications() -> Publications | None:
    """The claims of this region, if FERRY_PUBLICATIONS_TABLE is set (active-active)."""
    table = os.environ.get(ENV_PUBLICATIONS_TABLE)
    if not table:
        return None
    if "publications" not in _clients:
        import boto3

        stale = float(os.environ.get(ENV_STALE_SECONDS) or STALE_AFTER_SECONDS)
        _clients["publications"] = Publications(
            boto3.client("dynamodb"), table, _region(), stale_after=stale
        )
    publications: Publications = _clients["publications"]
    return publications


def _peer_buses() -> list[str]:
    return [a.strip() for a in os.environ.get(ENV_PEER_BUS_ARNS, "").split(",") if a.strip()]


def _peer_events_client(bus_arn: str) -> Any:
    """The events client of the peer bus's region (PutEvents goes to the bus's own region)."""
    parts = bus_arn.split(":")
    region = parts[3] if len(parts) > 4 and parts[3] else None
    key = f"events:{region}"
    if key not in _clients:
        import boto3

        _clients[key] = boto3.client("events", region_name=region)
    return _clients[key]
