"""The one adapter between stored aggregate events and published EventBridge events.

stored event (eventsourcing ``StoredEvent``: originator_id, originator_version, topic, state)
    → ``to_integration`` → contract model (``events.contract``)
    → ``to_put_events_entry`` → an EventBridge PutEvents entry
and back, for consumers: an SQS message body carrying an EventBridge event
    → ``from_eventbridge`` → contract model.

Stored topic → contract model is explicit, never by name alone: every stored event class names
its contract model (``contract = events.contract.JobQueued``) or is marked ``internal = True``
(never published: the endpoint-name claims). ``to_integration`` of an internal event is
``None``; a topic that resolves to no class, or to a class that declares neither, raises
:class:`UnmappedEvent` — renaming an event class can never silently stop its publication
(register the old topic with ``eventsourcing.utils.register_topic`` instead).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC
from functools import cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.persistence import (
    AggregateRecorder,
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    StoredEvent,
    UUIDAsHex,
)
from eventsourcing.utils import resolve_topic

from events.contract import EVENT_TYPES, FerryEvent

_EVENT_ID_NS = uuid5(NAMESPACE_URL, "https://ferry.invalid/event")
_NOT_FIELDS = frozenset({"timestamp", "originator_topic", "originator_id", "originator_version"})


def transcoder() -> JSONTranscoder:
    """The transcoder of Ferry's stored event state (what ``FerryApplication`` stores with)."""
    transcoder = JSONTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DecimalAsStr())
    transcoder.register(DatetimeAsISO())
    return transcoder


_TRANSCODER = transcoder()


def event_id_for(stream_id: str | UUID, version: int) -> str:
    """Deterministic event id: a replayed or re-published event keeps its id."""
    return str(uuid5(_EVENT_ID_NS, f"{stream_id}:{version}"))


class UnmappedEvent(ValueError):
    """A stored event whose class names no contract model and is not marked internal."""


@cache
def contract_of_topic(topic: str) -> type[FerryEvent] | None:
    """The contract model a stored topic is published as; None for an internal event.

    Raises :class:`UnmappedEvent` for a topic that resolves to no class or to a class that
    declares neither ``contract`` nor ``internal = True``.
    """
    try:
        cls = resolve_topic(topic)
    except Exception as exc:  # TopicError, or the module itself failing to import
        raise UnmappedEvent(f"stored topic {topic!r} resolves to no event class") from exc
    model = getattr(cls, "contract", None)
    if isinstance(model, type) and issubclass(model, FerryEvent) and model in _PUBLISHED:
        return model
    if getattr(cls, "internal", False) is True and model is None:
        return None
    raise UnmappedEvent(
        f"stored event class {topic!r} names no contract model and is not marked internal"
    )


_PUBLISHED = frozenset(EVENT_TYPES.values())


def detail_type_of_topic(topic: str) -> str | None:
    """'services.jobs.domain:Job.JobQueued' -> 'JobQueued' (through the declared contract
    model); None for an internal event; :class:`UnmappedEvent` for an unmapped one."""
    model = contract_of_topic(topic)
    return None if model is None else model.detail_type()


def to_integration(stored: StoredEvent) -> FerryEvent | None:
    """Translate a stored aggregate event to its published contract model (None: internal)."""
    model = contract_of_topic(stored.topic)
    if model is None:
        return None
    state: dict[str, Any] = _TRANSCODER.decode(stored.state)
    fields = {k: _plain(v) for k, v in state.items() if k not in _NOT_FIELDS}
    return model.model_validate(
        {
            "event_id": event_id_for(stored.originator_id, stored.originator_version),
            "stream_id": str(stored.originator_id),
            "version": stored.originator_version,
            "occurred_at": state["timestamp"],
            **fields,
        }
    )


def _plain(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    return value


def stream_events(recorder: AggregateRecorder, stream_id: str | UUID) -> list[FerryEvent]:
    """A stream's published events, in stream order (the audit trail)."""
    out = []
    for stored in recorder.select_events(
        stream_id if isinstance(stream_id, UUID) else _as_uuid(stream_id)
    ):
        event = to_integration(stored)
        if event is not None:
            out.append(event)
    return out


def _as_uuid(value: str) -> UUID | str:
    try:
        return UUID(value)
    except ValueError:
        return value


def to_put_events_entry(event: FerryEvent, bus_name: str) -> dict[str, Any]:
    return {
        "Source": event.SOURCE,
        "DetailType": event.detail_type(),
        "Detail": event.model_dump_json(),
        "EventBusName": bus_name,
        "Time": event.occurred_at,
        "Resources": [],
    }


def to_eventbridge_event(
    event: FerryEvent, *, account: str, region: str, eventbridge_id: str | None = None
) -> dict[str, Any]:
    """The event as EventBridge delivers it to a rule target (an SQS message body, the shape of
    docs/events.md "The event"), built from the PutEvents entry the publisher sends."""
    entry = to_put_events_entry(event, "")
    return {
        "version": "0",
        "id": eventbridge_id or str(uuid4()),
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": account,
        "time": entry["Time"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": entry["Resources"],
        "detail": json.loads(entry["Detail"]),
    }


def audit_record(event: FerryEvent) -> dict[str, Any]:
    """The shape of GET /jobs/{id}/events items — what downstream teams receive, flattened."""
    return {
        "event_id": event.event_id,
        "detail-type": event.detail_type(),
        "source": event.SOURCE,
        "stream_id": event.stream_id,
        "version": event.version,
        "occurred_at": event.occurred_at.isoformat(),
        "detail": event.model_dump(mode="json"),
    }


def from_eventbridge(envelope: dict[str, Any] | str) -> FerryEvent:
    """Parse an EventBridge event (as delivered to SQS) into its contract model."""
    if isinstance(envelope, str):
        envelope = json.loads(envelope)
    assert isinstance(envelope, dict)
    detail_type = envelope["detail-type"]
    model = EVENT_TYPES.get(detail_type)
    if model is None:
        raise ValueError(f"unknown Ferry detail-type: {detail_type!r}")
    return model.model_validate(envelope["detail"])


def merge_in_time_order(*streams: Iterable[FerryEvent]) -> list[FerryEvent]:
    """Merge several streams' events (each already in stream order) by occurred_at, stably."""
    merged = [e for s in streams for e in s]
    merged.sort(key=lambda e: e.occurred_at)
    return merged
