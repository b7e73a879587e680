"""The audit routes of the query API (registered by ``services.projections.handlers``):
GET /audit/verify, GET /audit/events, POST /audit/checkpoint — every one scoped by the API key's
customer. The :class:`Audit` is built on the first audit request (nothing at import or cold
start for the other routes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, BeforeValidator

from ferry.api import FerryResolver, principal
from services.projections.audit import Audit


class AuditEvents(BaseModel):
    events: list[dict[str, Any]]
    next_token: str | None = None
    reads: int = 0


def _iso_only(value: Any) -> Any:
    """Query times are ISO 8601 text (pydantic alone would also take ``0.5`` as a Unix time)."""
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("an ISO 8601 date-time such as 2026-01-02T03:04:05Z")
    return value


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]


def add_audit_routes(app: FerryResolver, audit_factory: Callable[[], Audit]) -> None:
    built: list[Audit] = []

    def audit() -> Audit:
        if not built:
            built.append(audit_factory())
        return built[0]

    @app.get("/audit/verify", summary="Walk one stream's hash chain and its checkpoints")
    def audit_verify(
        stream_id: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[\w:.@-]+$")],
    ) -> dict[str, Any]:
        # no sealing here: the query API may never write the event store (IAM denies it); the
        # CLI and the checkpoint run seal legacy events
        return audit().verify_stream(principal(app).customer_id, stream_id, seal=False)

    @app.get("/audit/events", summary="The customer's events across streams, in time order")
    def audit_events(
        since: Annotated[IsoTime | None, Query()] = None,
        until: Annotated[IsoTime | None, Query()] = None,
        type: Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z]+$")] = None,
        endpoint_id: Annotated[str | None, Query(max_length=100)] = None,
        route_id: Annotated[str | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        next_token: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> AuditEvents:
        since_at: datetime | None = since
        until_at: datetime | None = until
        page = audit().events(
            principal(app).customer_id,
            since=since_at,
            until=until_at,
            detail_type=type,
            endpoint_id=endpoint_id,
            route_id=route_id,
            limit=limit,
            next_token=next_token,
        )
        return AuditEvents(**page)

    @app.post(
        "/audit/checkpoint", summary="Write an AuditCheckpoint now (head of every changed stream)"
    )
    def audit_checkpoint() -> dict[str, Any]:
        document = audit().checkpoint(principal(app).customer_id)
        return {"checkpoint": document, "written": document is not None}
