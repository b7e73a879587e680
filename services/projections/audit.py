"""Audit: verify the event store's hash chains and checkpoints, anchor them (``AuditCheckpoint``),
list a customer's events across streams, and answer "what was it at time T" (``as_of``).

Ports (adapters in ``services.projections.audit_adapters``):

- :class:`ChainStore` — a stream's stored items with their chain attributes, sealing legacy
  items (``events.dynamodb.DynamoDBAggregateRecorder`` is one);
- :class:`CustomerIndex` — the events table's customer-and-time index (GSI ``by-customer-time``);
- :class:`CheckpointStore` — the checkpoint documents (S3, Object Lock in AWS).

Every query is scoped by the caller's customer: a stream, event or checkpoint of another customer
is reported as not found, never as existing.

Over 400 lines because verification, the customer-time index queries and the checkpoints are
one auditor's API over the same chain; the adapters are in ``audit_adapters.py``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import AggregateRecorder, StoredEvent

from events.aggregate import transfer_stream_id
from events.chain import (
    Problem,
    checkpoint_genesis,
    checkpoint_hash,
    event_customer,
    normalise_at,
    verify_checkpoints,
    verify_stream,
)
from events.contract import FerryEvent
from events.translate import audit_record, merge_in_time_order, to_integration
from ferry.errors import BadRequest, NotFound
from services.projections import readmodels
from services.projections.queries import EndpointView, JobView, endpoint_view, job_view

CHECKPOINT_SKEW = timedelta(minutes=5)
"""A checkpoint re-reads this much before the previous one's ``until``: an event stamped before
it may reach the (eventually consistent) index after it."""


class ChainStore(Protocol):
    def stream_items(self, stream_id: str) -> list[dict[str, Any]]: ...

    def seal(
        self, stream_id: str, unsealed: Sequence[Mapping[str, Any]], sealed_at: str
    ) -> int: ...


@dataclass(frozen=True)
class IndexPage:
    items: list[dict[str, Any]]
    last_at_key: str | None
    reads: int  # Query requests made


class CustomerIndex(Protocol):
    def page(
        self, customer_id: str, low: str, high: str, start_at_key: str | None, limit: int
    ) -> IndexPage: ...


class CheckpointStore(Protocol):
    def documents(self, customer_id: str) -> list[dict[str, Any]]:
        """Every checkpoint of the customer, in sequence order."""
        ...

    def put(self, customer_id: str, document: Mapping[str, Any]) -> str:
        """Store a new checkpoint (never overwrite); returns its location."""
        ...

    def customers(self) -> list[str]: ...


# --------------------------------------------------------------------------- reports


@dataclass
class VerifyReport:
    ok: bool = True
    streams: int = 0
    events: int = 0
    sealed: int = 0
    checkpoints: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        first = self.problems[0].as_dict() if self.problems else None
        return {
            "ok": not self.problems,
            "streams": self.streams,
            "events": self.events,
            "sealed": self.sealed,
            "checkpoints": self.checkpoints,
            "events_per_second": round(self.events / self.seconds, 1) if self.seconds else None,
            "first_problem": first,
            "problems": [p.as_dict() for p in self.problems],
        }


def _owner(items: Sequence[Mapping[str, Any]]) -> str:
    for item in items:
        customer = item.get("customer_id") or event_customer(bytes(item["state"]))
        if customer:
            return str(customer)
    return ""


def index_window(
    since: datetime | None, until: datetime | None, next_token: str | None
) -> tuple[str, str, str | None]:
    """A customer-and-time index range for [since, until] (checked: zones, order) and where a
    page token resumes it: (low key, high key, start position or None)."""
    low = _iso(since, "since") or ""
    high = _iso(until, "until")
    if low and high and low > high:
        raise BadRequest("since must not be after until", field="since")
    high_key = (high + "#~") if high else "~"
    return low, high_key, decode_event_token(next_token) if next_token else None


def _iso(value: datetime | None, name: str) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise BadRequest(f"{name}: a time zone is required (e.g. Z)", field=name)
    try:
        return normalise_at(value)
    except (OverflowError, ValueError):
        raise BadRequest(f"{name}: out of range", field=name) from None


# --------------------------------------------------------------------------- service


class Audit:
    def __init__(
        self,
        chain: ChainStore,
        index: CustomerIndex,
        checkpoints: CheckpointStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.chain = chain
        self.index = index
        self.checkpoints = checkpoints
        self.clock = clock

    # ----------------------------------------------------------------- verification

    def verify_stream(self, customer_id: str, stream_id: str, *, seal: bool = True) -> dict:
        """Walk one stream of the caller's and every checkpoint entry for it."""
        items = self.chain.stream_items(stream_id)
        documents = self.checkpoints.documents(customer_id)
        mentioned = any(stream_id in d.get("streams", {}) for d in documents)
        if (items and _owner(items) != customer_id) or (not items and not mentioned):
            raise NotFound(f"stream {stream_id} not found", field="stream_id")
        report = VerifyReport(checkpoints=len(documents))
        started = time.perf_counter()
        self._walk(report, stream_id, items, documents, seal=seal)
        report.problems.extend(verify_checkpoints(customer_id, documents))
        report.seconds = time.perf_counter() - started
        return {"stream_id": stream_id, **report.as_dict()}

    def verify_customer(
        self, customer_id: str, *, since: datetime | None = None, seal: bool = True
    ) -> VerifyReport:
        """Every stream of the customer changed since ``since`` (all by default), every
        checkpoint, and every stream a checkpoint names (a stream deleted whole is found so)."""
        started = time.perf_counter()
        low = _iso(since, "since") or ""
        streams: dict[str, None] = {}
        for item in self._index_items(customer_id, low, "~"):
            streams.setdefault(str(item["stream_id"]), None)
        documents = self.checkpoints.documents(customer_id)
        for document in documents:
            for stream_id in document.get("streams", {}):
                streams.setdefault(stream_id, None)
        report = VerifyReport(checkpoints=len(documents))
        for stream_id in streams:
            items = self.chain.stream_items(stream_id)
            if items and _owner(items) != customer_id:
                continue  # never another customer's (a forged checkpoint entry cannot widen)
            self._walk(report, stream_id, items, documents, seal=seal)
        report.problems.extend(verify_checkpoints(customer_id, documents))
        report.seconds = time.perf_counter() - started
        return report

    def _walk(
        self,
        report: VerifyReport,
        stream_id: str,
        items: list[dict[str, Any]],
        documents: Sequence[Mapping[str, Any]],
        *,
        seal: bool,
    ) -> None:
        walked = verify_stream(stream_id, items)
        report.streams += 1
        report.events += walked.events
        report.problems.extend(walked.problems or [])
        if seal and walked.unsealed and not walked.problems:
            report.sealed += self.chain.seal(stream_id, walked.unsealed, normalise_at(self.clock()))
        hashes = {int(i["version"]): i.get("hash") for i in items}
        for u in walked.unsealed or []:
            hashes[int(u["version"])] = u["hash"]
        head = max(hashes) if hashes else 0
        for document in documents:
            entry = document.get("streams", {}).get(stream_id)
            if not entry:
                continue
            version, expected = int(entry["version"]), str(entry["hash"])
            if version not in hashes:
                ends = f"ends at version {head}" if hashes else "has no events"
                report.problems.append(
                    Problem(
                        stream_id,
                        version,
                        "tail_deleted",
                        f"checkpoint {document.get('seq')} recorded version {version} "
                        f"(hash {expected[:16]}…); the stream {ends}",
                    )
                )
            elif hashes[version] != expected:
                report.problems.append(
                    Problem(
                        stream_id,
                        version,
                        "checkpoint_mismatch",
                        f"checkpoint {document.get('seq')} recorded hash {expected[:16]}…, "
                        f"the stored event's hash is {str(hashes[version])[:16]}…",
                    )
                )

    # ----------------------------------------------------------------- checkpoints

    def checkpoint(self, customer_id: str) -> dict[str, Any] | None:
        """Record the head hash of every stream of the customer changed since the last
        checkpoint (an ``AuditCheckpoint``), chained to it; None if nothing changed."""
        documents = self.checkpoints.documents(customer_id)
        last = documents[-1] if documents else None
        now = self.clock()
        low = ""
        if last is not None:
            low = normalise_at(
                datetime.fromisoformat(last["until"].replace("Z", "+00:00")) - CHECKPOINT_SKEW
            )
        changed: dict[str, None] = {}
        for item in self._index_items(customer_id, low, "~"):
            changed.setdefault(str(item["stream_id"]), None)
        heads: dict[str, dict[str, Any]] = {}
        for stream_id in changed:
            items = self.chain.stream_items(stream_id)
            if not items or _owner(items) != customer_id:
                continue
            walked = verify_stream(stream_id, items)
            if walked.head_version is None or walked.head_hash is None:
                continue
            if last and last.get("streams", {}).get(stream_id, {}).get("hash") == walked.head_hash:
                continue  # unchanged since the last checkpoint (re-read through the skew)
            heads[stream_id] = {"version": walked.head_version, "hash": walked.head_hash}
        if not heads:
            return None
        document: dict[str, Any] = {
            "type": "AuditCheckpoint",
            "customer_id": customer_id,
            "seq": (int(last["seq"]) + 1) if last else 1,
            "created_at": normalise_at(now),
            "since": low or None,
            "until": normalise_at(now),
            "streams": dict(sorted(heads.items())),
            "prev_hash": str(last["hash"]) if last else checkpoint_genesis(customer_id),
        }
        document["hash"] = checkpoint_hash(document)
        document["location"] = self.checkpoints.put(customer_id, document)
        return document

    # ----------------------------------------------------------------- events across streams

    def _index_items(self, customer_id: str, low: str, high: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        start: str | None = None
        while True:
            page = self.index.page(customer_id, low, high, start, 1000)
            out.extend(page.items)
            if page.last_at_key is None:
                return out
            start = page.last_at_key

    def events(
        self,
        customer_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        detail_type: str | None = None,
        endpoint_id: str | None = None,
        route_id: str | None = None,
        limit: int = 100,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        """The customer's published events in [since, until], ``limit`` per page, ordered by
        (time, stream, version) of their append's first event, an append's events in version
        order (one append has one index entry); ``reads`` is the index Query requests this
        page took. A page may end inside an append: its token then names the entry and the
        last version given (``after``), and the next page reads that entry again and skips up
        to there."""
        low, high_key, start = index_window(since, until, next_token)
        after = decode_event_after(next_token) if next_token else None
        inside: str | None = None  # the entry a token names, when it names a version too
        if start is not None and after is not None:
            inside, start = start, None
            low = max(low, inside)
        matched: list[dict[str, Any]] = []
        reads = 0
        token: str | None = None
        reread = 1 if inside is not None else 0  # the entry a token inside an append names
        while token is None:
            want = limit - len(matched) + reread
            reread = 0
            page = self.index.page(customer_id, low, high_key, start, want)
            reads += page.reads
            for position, item in enumerate(page.items):
                at = str(item["at_key"])
                if inside is not None and at == inside and int(item["version"]) <= (after or 0):
                    continue
                if len(matched) >= limit:  # full, with events left: resume at this one
                    token = _event_token(page.items[position - 1]) if position else None
                    break
                record = _record(item)
                if record is not None and _matches(record, detail_type, endpoint_id, route_id):
                    matched.append(record)
            if token is not None:
                break
            if page.last_at_key is None:
                break
            if len(matched) >= limit:
                token = _event_token(page.items[-1]) if page.items else None
                break
            start = page.last_at_key
        return {"events": matched, "next_token": token, "reads": reads}


def _event_token(item: Mapping[str, Any]) -> str:
    """A token resuming after ``item`` (an expanded index item: its entry and version)."""
    return encode_event_token(str(item["at_key"]), after=int(item["version"]))


def _record(item: Mapping[str, Any]) -> dict[str, Any] | None:
    stored = StoredEvent(
        originator_id=_stream_key(str(item["stream_id"])),
        originator_version=int(item["version"]),
        topic=str(item["topic"]),
        state=bytes(item["state"]),
    )
    event = to_integration(stored)
    if event is None:
        return None
    record = audit_record(event)
    record["hash"] = item.get("hash")
    record["prev_hash"] = item.get("prev_hash")
    return record


def _matches(
    record: Mapping[str, Any],
    detail_type: str | None,
    endpoint_id: str | None,
    route_id: str | None,
) -> bool:
    if detail_type and record["detail-type"] != detail_type:
        return False
    detail = record["detail"]
    if endpoint_id and endpoint_id not in (
        detail.get("endpoint_id"),
        detail.get("source_endpoint_id"),
        detail.get("target_endpoint_id"),
        (detail.get("source") or {}).get("endpoint_id")
        if isinstance(detail.get("source"), dict)
        else None,
        (detail.get("target") or {}).get("endpoint_id")
        if isinstance(detail.get("target"), dict)
        else None,
    ):
        return False
    return not (route_id and route_id not in (detail.get("route_id"), record["stream_id"]))


_AT_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z#[\w:.@-]{1,200}#\d{12}$")


def encode_event_token(at_key: str, *, after: int | None = None) -> str:
    """A page token: the index position (``at_key``) and, for the audit events, the last
    version given of that entry's append (``after``)."""
    value: dict[str, Any] = {"at_key": at_key}
    if after is not None:
        value["after"] = after
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def decode_event_after(token: str) -> int | None:
    """The ``after`` of a token :func:`decode_event_token` accepted (None: the whole entry at
    its position was given)."""
    value = json.loads(base64.urlsafe_b64decode(token.encode()))
    after = value.get("after")
    if after is None:
        return None
    if not isinstance(after, int) or isinstance(after, bool) or not 0 < after < 10**12:
        raise BadRequest("next_token: not a token this API issued", field="next_token")
    return after


def decode_event_token(token: str) -> str:
    """The index position a page token names (the customer is always the caller's: a token
    cannot point into another customer's partition)."""
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
        at_key = value["at_key"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("next_token: not a token this API issued", field="next_token") from None
    if not isinstance(at_key, str) or not _AT_KEY.match(at_key):
        raise BadRequest("next_token: not a token this API issued", field="next_token")
    return at_key


def _stream_key(stream_id: str) -> UUID | str:
    try:
        parsed = UUID(stream_id)
    except ValueError:
        return stream_id
    return parsed if str(parsed) == stream_id else stream_id


# --------------------------------------------------------------------------- as of


class EndpointAsOf(EndpointView):
    as_of: str


class JobAsOf(JobView):
    as_of: str
    job_version: int = 0
    transfer_version: int = 0


def _events_until(recorder: AggregateRecorder, stream_id: str, at: datetime) -> list[FerryEvent]:
    key = _stream_key(stream_id)
    out = []
    for stored in recorder.select_events(key):
        event = to_integration(stored)
        if event is not None and event.occurred_at <= at:
            out.append(event)
    return out


def _as_of_time(as_of: datetime) -> datetime:
    _iso(as_of, "as_of")  # a time zone, in range
    return as_of


def endpoint_as_of(
    recorder: AggregateRecorder, customer_id: str, endpoint_id: str, as_of: datetime
) -> EndpointAsOf:
    """The endpoint as its events up to ``as_of`` make it (the read model's fold, so exactly
    what GET /endpoints/{id} showed then; no secret values: events carry none)."""
    at = _as_of_time(as_of)
    events = _events_until(recorder, endpoint_id, at) if _is_uuid(endpoint_id) else []
    if not events or events[0].customer_id != customer_id:
        raise NotFound(
            f"endpoint {endpoint_id} not found at {as_of.isoformat()}", field="endpoint_id"
        )
    item: dict[str, Any] | None = None
    for event in events:
        item = readmodels.fold(item, event)
    assert item is not None
    view = endpoint_view(item)
    return EndpointAsOf(**view.model_dump(), as_of=normalise_at(at))


def job_as_of(
    recorder: AggregateRecorder, customer_id: str, job_id: str, as_of: datetime
) -> JobAsOf:
    """The job as its two streams (job, Transfer) up to ``as_of`` make it."""
    at = _as_of_time(as_of)
    job = _events_until(recorder, job_id, at) if _is_uuid(job_id) else []
    if not job or job[0].customer_id != customer_id:
        raise NotFound(f"job {job_id} not found at {as_of.isoformat()}", field="job_id")
    transfer = [
        e
        for e in _events_until(recorder, str(transfer_stream_id(job_id)), at)
        if e.customer_id == customer_id
    ]
    item: dict[str, Any] | None = None
    for event in merge_in_time_order(job, transfer):
        if readmodels.target_of(event) is not None:
            item = readmodels.fold(item, event)
    assert item is not None
    view = job_view(item)
    return JobAsOf(
        **view.model_dump(),
        as_of=normalise_at(at),
        job_version=int(item.get("job_version", 0)),
        transfer_version=int(item.get("transfer_version", 0)),
    )


def _is_uuid(value: str) -> bool:
    try:
        return str(UUID(value)) == value
    except ValueError:
        return False
