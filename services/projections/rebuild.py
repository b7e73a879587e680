"""Rebuild every read model from the event store: drop, recreate, replay every stream through
the same folds as the live consumer. ``python -m services.projections.rebuild`` (or
``ferry projections rebuild``) — stop the projection consumer first (or let it catch up after:
its events are then duplicates and are dropped).

No attribute is rebuild-specific: the folds store only values derived from the events, so a
rebuild ends with items identical to the live ones.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import AggregateRecorder

from events.translate import detail_type_of_topic, stream_events
from ferry.names import ResourceNames
from services.projections.adapters import DynamoReadModelStore
from services.projections.application import Projector
from services.projections.readmodels import (
    ENDPOINT_EVENTS,
    JOB_STREAM_EVENTS,
    TRANSFER_STREAM_EVENTS,
)
from services.projections.tables import create_read_model_tables, delete_read_model_tables

_PROJECTED = frozenset(
    m.detail_type() for m in (*ENDPOINT_EVENTS, *JOB_STREAM_EVENTS, *TRANSFER_STREAM_EVENTS)
)


@dataclass(frozen=True)
class RebuildReport:
    streams: int
    events: int
    seconds: float


def stream_ids(dynamodb_client: Any, events_table: str) -> Iterator[str]:
    """Every stream id in the event table that feeds these read models (endpoint, job and
    Transfer streams; routes are skipped): a paginated Scan of the version=1 items."""
    request: dict[str, Any] = {
        "TableName": events_table,
        "ProjectionExpression": "#s, #t",
        "FilterExpression": "#v = :one",
        "ExpressionAttributeNames": {"#s": "stream_id", "#v": "version", "#t": "topic"},
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    while True:
        page = dynamodb_client.scan(**request)
        for item in page.get("Items", []):
            if detail_type_of_topic(item["topic"]["S"]) in _PROJECTED:
                yield item["stream_id"]["S"]
        if not page.get("LastEvaluatedKey"):
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def rebuild(
    names: ResourceNames,
    dynamodb_client: Any,
    recorder: AggregateRecorder,
    *,
    events_table: str | None = None,
) -> RebuildReport:
    """Drop and recreate the read-model tables, then replay every stream of the event store."""
    started = time.monotonic()
    delete_read_model_tables(dynamodb_client, names)
    create_read_model_tables(dynamodb_client, names)
    projector = Projector(DynamoReadModelStore(dynamodb_client, names), recorder)
    streams = events = 0
    for stream_id in stream_ids(dynamodb_client, events_table or names.events_table):
        streams += 1
        events += projector.apply_stream(stream_events(recorder, stream_id))
    return RebuildReport(streams=streams, events=events, seconds=time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    import boto3

    from services.projections.bootstrap import event_store_recorder
    from services.projections.settings import ProjectionsSettings

    settings = ProjectionsSettings()
    try:
        names = settings.names()
    except ValueError as error:
        print(f"rebuild: {error}", file=sys.stderr)
        return 2
    client = boto3.client("dynamodb", region_name=settings.region)
    report = rebuild(
        names, client, event_store_recorder(settings), events_table=settings.events_table
    )
    print(
        f"rebuilt {names.endpoints_table}, {names.jobs_table} and {names.job_stats_table}: "
        f"{report.streams} streams, "
        f"{report.events} events in {report.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
