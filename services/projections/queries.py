"""The read side of the projections: the views the GET routes answer with, page tokens, and
``Queries`` (read models for the GET routes; the event store only for the two /events routes).
``services.projections.application`` re-exports every name."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import AggregateRecorder
from pydantic import BaseModel, Field

from events.aggregate import transfer_stream_id
from events.contract import EndpointRegistered, FerryEvent, JobRequested, JobStatus
from events.translate import audit_record, merge_in_time_order, to_integration
from ferry.errors import BadRequest, Invalid, NotFound
from services.projections import readmodels
from services.projections.readmodels import ENDPOINTS, JOBS, Item
from services.projections.store import IndexQuery, Page, ReadModelStore
from services.projections.tables import (
    ENDPOINTS_CUSTOMER_INDEX,
    JOBS_CUSTOMER_CREATED_INDEX,
    JOBS_CUSTOMER_ROUTE_INDEX,
    JOBS_CUSTOMER_ROUTE_STATUS_INDEX,
    JOBS_CUSTOMER_SOURCE_INDEX,
    JOBS_CUSTOMER_SOURCE_STATUS_INDEX,
    JOBS_CUSTOMER_STATUS_INDEX,
    JOBS_CUSTOMER_TARGET_INDEX,
    JOBS_CUSTOMER_TARGET_STATUS_INDEX,
)

# --------------------------------------------------------------------------- queries (DTOs)


class Location(BaseModel):
    endpoint_id: str
    path: str


class EndpointView(BaseModel):
    endpoint_id: str
    name: str | None = None
    type: str | None = None
    direction: str | None = None
    max_concurrency: int | None = None
    bandwidth_limit: int | None = None
    status: str | None = None
    status_reason: str | None = None
    config: dict[str, Any] = {}
    secret_arn: str | None = None
    host_key_fingerprint: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    validated_at: str | None = None
    version: int = 0


class JobView(BaseModel):
    job_id: str
    status: str | None = None
    flow: str | None = None
    source: Location | None = None
    target: Location | None = None
    options: dict[str, Any] = {}
    attempt: int | None = None
    max_attempts: int | None = None
    bytes_total: int | None = None
    bytes_committed: int | None = None
    chunks_committed: int | None = None
    chunk_count: int | None = None
    leg: int | None = None
    legs: int | None = None
    progress_percent: float = 0.0
    size: int | None = None
    sha256: str | None = None
    duration_seconds: float | None = None
    throughput_bytes_per_second: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    next_attempt_at: str | None = None
    executor_id: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    redrive_of: str | None = None
    redriven_to: str | None = None
    route_id: str | None = None
    cancel_requested: bool = Field(
        default=False,
        description="A cancel was requested; until the job is final the executor decides.",
    )
    cancel_outcome: str | None = Field(
        default=None,
        description="too_late: the cancel came after the file was delivered (SUCCEEDED).",
    )


class EndpointList(BaseModel):
    endpoints: list[EndpointView]
    next_token: str | None = None


class JobList(BaseModel):
    jobs: list[JobView]
    next_token: str | None = None


def endpoint_view(item: Item) -> EndpointView:
    fields = {k: v for k, v in item.items() if k in EndpointView.model_fields and v is not None}
    return EndpointView.model_validate(fields)


def job_view(item: Item) -> JobView:
    fields = {k: v for k, v in item.items() if k in JobView.model_fields and v is not None}
    fields["progress_percent"] = readmodels.progress_percent(item)
    return JobView.model_validate(fields)


# --------------------------------------------------------------------------- pagination tokens


def encode_token(last_key: dict[str, str] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(last_key, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_INVALID_TOKEN = "next_token is invalid or belongs to another query"


def _token_json(token: str) -> Any:
    try:
        padded = token + "=" * (-len(token) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest(_INVALID_TOKEN, field="next_token") from None


def _start_key(key: Any, expected: IndexQuery, key_attribute: str) -> dict[str, str]:
    attributes = {key_attribute, expected.partition_attribute, "created_at"}
    if (
        not isinstance(key, dict)
        or set(key) != attributes
        or not all(isinstance(v, str) and v for v in key.values())
        or key[expected.partition_attribute] != expected.partition_value
    ):
        raise BadRequest(_INVALID_TOKEN, field="next_token")
    return key


def decode_token(token: str, expected: IndexQuery, key_attribute: str) -> dict[str, str]:
    """The LastEvaluatedKey in ``token``, if it is one of this query's partition (so that a
    customer cannot page into another customer's partition); else 400 on next_token."""
    return _start_key(_token_json(token), expected, key_attribute)


# The endpoint filter reads two indexes; its next_token holds where each one stands: a start key
# (resume after it), "start" (nothing read from it yet) or "end" (read to the end).
_SIDES = ("source", "target")
_START, _END = "start", "end"
Side = dict[str, str] | str


def encode_sides(sides: dict[str, Side]) -> str | None:
    if all(v == _END for v in sides.values()):
        return None
    raw = json.dumps(sides, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_sides(token: str, expected: dict[str, IndexQuery]) -> dict[str, Side]:
    """Each side's position in ``token``; a start key must be in that side's partition."""
    sides = _token_json(token)
    if not isinstance(sides, dict) or set(sides) != set(_SIDES):
        raise BadRequest(_INVALID_TOKEN, field="next_token")
    return {
        side: value if value in (_START, _END) else _start_key(value, expected[side], "job_id")
        for side, value in sides.items()
    }


def _newest(item: Item) -> tuple[str, str]:
    return (item["created_at"], item["job_id"])


def _key_of(item: Item, query: IndexQuery) -> dict[str, str]:
    return {
        "job_id": item["job_id"],
        query.partition_attribute: item[query.partition_attribute],
        "created_at": item["created_at"],
    }


# --------------------------------------------------------------------------- queries


def _utc(value: datetime | None, field: str) -> datetime | None:
    """Naive query times are taken as UTC; a time that has no UTC equivalent (0001-01-01 at
    +01:00, 9999-12-31 at -01:00) is a 422 on its field, never an OverflowError."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise Invalid(
            f"{field}: out of range once converted to UTC", field=field, code="validation_error"
        ) from None


def _canonical(value: str) -> bool:
    """Ferry ids are canonical (lower-case, hyphenated) UUIDs: anything else is not looked up
    (DynamoDB refuses keys over 2048 bytes; an upper-case id would read a partial history)."""
    try:
        return str(UUID(value)) == value
    except ValueError:
        return False


class Queries:
    """Read models for the GET routes; the event store only for the two /events routes."""

    def __init__(self, store: ReadModelStore, recorder: AggregateRecorder):
        self.store = store
        self.recorder = recorder

    def get_endpoint(self, customer_id: str, endpoint_id: str) -> EndpointView:
        if not _canonical(endpoint_id):
            raise NotFound(f"endpoint {endpoint_id} not found", field="endpoint_id")
        item = self.store.get(ENDPOINTS, endpoint_id)
        if item is None or item.get("customer_id") != customer_id or not item.get("created_at"):
            raise NotFound(f"endpoint {endpoint_id} not found", field="endpoint_id")
        return endpoint_view(item)

    def list_endpoints(self, customer_id: str, limit: int, next_token: str | None) -> EndpointList:
        query = IndexQuery(
            kind=ENDPOINTS,
            index=ENDPOINTS_CUSTOMER_INDEX,
            partition_attribute="customer_id",
            partition_value=customer_id,
            limit=limit,
        )
        page = self._page(query, "endpoint_id", next_token)
        return EndpointList(
            endpoints=[endpoint_view(i) for i in page.items],
            next_token=encode_token(page.last_key),
        )

    def get_job(self, customer_id: str, job_id: str) -> JobView:
        if not _canonical(job_id):
            raise NotFound(f"job {job_id} not found", field="job_id")
        item = self.store.get(JOBS, job_id)
        if item is None or item.get("customer_id") != customer_id or not item.get("created_at"):
            raise NotFound(f"job {job_id} not found", field="job_id")
        return job_view(item)

    def list_jobs(
        self,
        customer_id: str,
        *,
        status: JobStatus | None = None,
        route_id: str | None = None,
        endpoint_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        next_token: str | None = None,
    ) -> JobList:
        since, until = _utc(since, "since"), _utc(until, "until")
        if since is not None and until is not None and since > until:
            raise BadRequest("since must not be after until", field="since")
        if route_id is not None and not _canonical(route_id):
            raise Invalid(
                "route_id: not a route id (a lower-case UUID)",
                field="route_id",
                code="validation_error",
            )
        if endpoint_id is not None and not _canonical(endpoint_id):
            raise Invalid(
                "endpoint_id: not an endpoint id (a lower-case UUID)",
                field="endpoint_id",
                code="validation_error",
            )
        if endpoint_id is not None and route_id is not None:
            raise BadRequest("endpoint_id cannot be combined with route_id", field="endpoint_id")
        low = readmodels.timestamp(since) if since else None
        high = readmodels.timestamp(until) if until else None
        if endpoint_id is not None:
            return self._endpoint_jobs(
                customer_id, endpoint_id, status, (low, high), limit, next_token
            )
        if route_id is not None and status is None:
            index, attribute = JOBS_CUSTOMER_ROUTE_INDEX, "customer_route"
            value = readmodels.customer_route(customer_id, route_id)
        elif route_id is not None and status is not None:
            index, attribute = JOBS_CUSTOMER_ROUTE_STATUS_INDEX, "customer_route_status"
            value = readmodels.customer_route(customer_id, route_id, status.value)
        elif status is None:
            index, attribute, value = JOBS_CUSTOMER_CREATED_INDEX, "customer_id", customer_id
        else:
            index, attribute = JOBS_CUSTOMER_STATUS_INDEX, "customer_status"
            value = readmodels.customer_status(customer_id, status.value)
        query = IndexQuery(
            kind=JOBS,
            index=index,
            partition_attribute=attribute,
            partition_value=value,
            limit=limit,
            since=low,
            until=high,
        )
        page = self._page(query, "job_id", next_token)
        return JobList(
            jobs=[job_view(i) for i in page.items], next_token=encode_token(page.last_key)
        )

    def _endpoint_jobs(
        self,
        customer_id: str,
        endpoint_id: str,
        status: JobStatus | None,
        window: tuple[str | None, str | None],
        limit: int,
        next_token: str | None,
    ) -> JobList:
        """Jobs reading from or writing to the endpoint, newest first: the keys of the source
        and the target index (a job from the endpoint to itself is in the source one only) read
        from where the token says, merged by (created_at, job_id), then the items by key. An
        item whose key has moved on since the index was read (its status) is left out."""
        indexes = (
            {"source": JOBS_CUSTOMER_SOURCE_INDEX, "target": JOBS_CUSTOMER_TARGET_INDEX}
            if status is None
            else {
                "source": JOBS_CUSTOMER_SOURCE_STATUS_INDEX,
                "target": JOBS_CUSTOMER_TARGET_STATUS_INDEX,
            }
        )
        value = readmodels.customer_endpoint(
            customer_id, endpoint_id, status.value if status else None
        )
        queries = {
            side: IndexQuery(
                kind=JOBS,
                index=indexes[side],
                partition_attribute=f"customer_{side}" + ("_status" if status else ""),
                partition_value=value,
                limit=limit,
                since=window[0],
                until=window[1],
            )
            for side in _SIDES
        }
        at: dict[str, Side] = (
            decode_sides(next_token, queries) if next_token else dict.fromkeys(_SIDES, _START)
        )
        batches: dict[str, list[Item]] = {}
        more: dict[str, dict[str, str] | None] = {}
        for side in _SIDES:
            position = at[side]
            if position == _END:
                batches[side], more[side] = [], None
                continue
            start = position if isinstance(position, dict) else None
            page = self.store.query(IndexQuery(**{**queries[side].__dict__, "start_key": start}))
            batches[side], more[side] = page.items, page.last_key
        taken: list[tuple[str, str]] = []  # (side, job id)
        read = dict.fromkeys(_SIDES, 0)
        while len(taken) < limit:
            if any(read[s] == len(batches[s]) and more[s] for s in _SIDES):
                break  # that side's next items are unread and may be newer
            heads = [s for s in _SIDES if read[s] < len(batches[s])]
            if not heads:
                break
            side = max(heads, key=lambda s: _newest(batches[s][read[s]]))
            key = batches[side][read[side]]
            read[side] += 1
            at[side] = _key_of(key, queries[side])
            if all(key["job_id"] != job_id for _, job_id in taken[-1:]):
                taken.append((side, key["job_id"]))  # (once, were it on both sides)
        for side in _SIDES:
            if read[side] == len(batches[side]) and at[side] != _END:
                at[side] = more[side] or _END
        items = self.store.get_many(JOBS, [job_id for _, job_id in taken])
        jobs = [
            job_view(item)
            for side, job_id in taken
            if (item := items.get(job_id)) is not None
            and item.get(queries[side].partition_attribute) == value
        ]
        return JobList(jobs=jobs, next_token=encode_sides(at))

    def _page(self, query: IndexQuery, key_attribute: str, next_token: str | None) -> Page:
        if next_token:
            start = decode_token(next_token, query, key_attribute)
            query = IndexQuery(**{**query.__dict__, "start_key": start})
        return self.store.query(query)

    def job_events(self, customer_id: str, job_id: str) -> list[dict[str, Any]]:
        job = self._stream(job_id)
        if not job or job[0].customer_id != customer_id or not isinstance(job[0], JobRequested):
            raise NotFound(f"job {job_id} not found", field="job_id")
        transfer = self._stream(str(transfer_stream_id(job_id)))
        transfer = [e for e in transfer if e.customer_id == customer_id]
        return [audit_record(e) for e in merge_in_time_order(job, transfer)]

    def endpoint_events(self, customer_id: str, endpoint_id: str) -> list[dict[str, Any]]:
        events = self._stream(endpoint_id)
        first = events[0] if events else None
        if not isinstance(first, EndpointRegistered) or first.customer_id != customer_id:
            raise NotFound(f"endpoint {endpoint_id} not found", field="endpoint_id")
        return [audit_record(e) for e in events]

    def _stream(self, stream_id: str) -> list[FerryEvent]:
        if not _canonical(stream_id):
            return []  # not an id Ferry issues
        key = UUID(stream_id)
        out = []
        for stored in self.recorder.select_events(key):
            event = to_integration(stored)
            if event is not None:
                out.append(event)
        return out
