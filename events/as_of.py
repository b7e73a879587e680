"""Point-in-time reads of an eventsourcing aggregate: the aggregate rebuilt from its events up to
an instant (``repository.get(id, version=…)`` at the last version stamped at or before it).

The time is the domain event's own ``timestamp`` (what the published ``occurred_at`` says, and
what the hash chain binds: ``events.chain``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from ferry.errors import BadRequest

__all__ = ["AS_OF_DESCRIPTION", "aggregate_as_of", "check_as_of", "parse_as_of"]

#: How far ahead of the server's clock an ``as_of`` may be (a client's clock running fast): up
#: to this it answers the state now, beyond it a 400.
CLOCK_SKEW = timedelta(minutes=5)

#: The ``as_of`` query parameter of GET /endpoints/{id}, /routes/{id} and /jobs/{id} (OpenAPI).
AS_OF_DESCRIPTION = (
    "Answer as the resource was at this instant: rebuilt from its events up to it (ISO 8601 "
    "date-time with a time zone, e.g. 2026-03-03T00:00:00Z). The answer carries as_of and the "
    "version it was rebuilt at (a job: job_version and transfer_version, its two streams). Not more than 5 minutes in the future (400) and not before the resource existed "
    "(404); error.field is as_of."
)


def parse_as_of(text: str | None) -> datetime | None:
    """``?as_of=`` as an aware datetime; BadRequest (naming ``as_of``) otherwise."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            "as_of: an ISO 8601 time such as 2026-03-03T00:00:00Z", field="as_of"
        ) from None
    return check_as_of(value)


def check_as_of(value: datetime, *, now: datetime | None = None) -> datetime:
    """``value`` if it has a time zone, is in range and not in the future; BadRequest naming
    ``as_of`` otherwise (the state now is the GET without ``as_of``)."""
    if value.tzinfo is None:
        raise BadRequest("as_of: a time zone is required (e.g. Z)", field="as_of")
    try:
        at = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise BadRequest("as_of: out of range", field="as_of") from None
    if at > (now or datetime.now(UTC)) + CLOCK_SKEW:
        raise BadRequest("as_of: in the future (leave as_of out for now)", field="as_of")
    return value


def aggregate_as_of(
    app: Application, aggregate_id: UUID, as_of: datetime
) -> tuple[Any, int] | None:
    """(aggregate at ``as_of``, its version), or None if it did not exist yet (or at all)."""
    version: int | None = None
    for event in app.events.get(aggregate_id):
        if event.timestamp > as_of:  # type: ignore[attr-defined]  # every Aggregate.Event has one
            break
        version = event.originator_version
    if version is None:
        return None
    try:
        return app.repository.get(aggregate_id, version=version), version
    except AggregateNotFoundError:
        return None
