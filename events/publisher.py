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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Tracer

from events.dynamodb import stored_event_from_item
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
) -> list[str]:
    """Publish the INSERT records; returns the sequence numbers of the records not published."""
    pending: list[tuple[str, dict[str, Any]]] = []  # (record id, entry), in stream order
    undecodable: list[str] = []  # the first undecodable record and every later one
    for index, record in enumerate(records):
        if record.get("eventName") != "INSERT":
            continue
        record_id = _record_id(record)
        try:
            stored = stored_event_from_item(record["dynamodb"]["NewImage"])
            event = to_integration(stored)
        except Exception:
            logger.exception("undecodable event-store record", record_id=record_id)
            undecodable = [record_id, *_ids_after(records, index)]
            break
        if event is None:
            continue  # an internal event: not published
        pending.append((record_id, to_put_events_entry(event, bus_name)))

    for start in range(0, len(pending), MAX_ENTRIES):
        batch = pending[start : start + MAX_ENTRIES]
        failed_at = _put_with_retries(events_client, batch, attempts, sleep)
        if failed_at is not None:
            first = start + failed_at
            return [record_id for record_id, _ in pending[first:]] + undecodable
    return undecodable


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
        event.get("Records", []), events_client=_events_client(), bus_name=_bus_name()
    )
    return {"batchItemFailures": [{"itemIdentifier": f} for f in failed]}


_clients: dict[str, Any] = {}


def _events_client() -> Any:
    if "events" not in _clients:
        import boto3

        _clients["events"] = boto3.client("events")
    return _clients["events"]


def _bus_name() -> str:
    import os

    from ferry.names import ENV_BUS_NAME, ResourceNames

    return os.environ.get(ENV_BUS_NAME) or ResourceNames().bus
