"""Audit exports as jobs (issue 11, "an API route that starts it as a job"): ``POST
/audit/exports`` records a PENDING export of the caller's customer and queues it; the exporter
(an SQS-triggered function, ``services.projections.audit_exporter``) runs the existing
``export_period`` into Ferry's own audit bucket under ``exports/<customer>/<export_id>/`` and
records RUNNING, then SUCCEEDED (counts, files, the manifest's sha256) or FAILED (a reason code
and a plain message, never a stack trace). ``GET /audit/exports/{id}`` answers the status with a
short-lived presigned GET URL per file, so the auditor downloads the export and runs
``ferry audit verify --export DIR`` offline.

Ports (adapters in ``audit_exports_adapters``): :class:`ExportStore` (one small item per export,
keyed by customer: another customer's id is simply not found), :class:`ExportQueue`,
:class:`ExportFiles` (the sink of one export and presigned URLs).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ferry.errors import FerryError, Invalid, NotFound
from services.projections.audit import CustomerIndex
from services.projections.audit_export import MANIFEST, ExportSink, export_period, export_window

__all__ = [
    "EXPORTS_PREFIX",
    "IDEMPOTENCY_HEADER",
    "MAX_PERIOD",
    "AuditExports",
    "ExportFailure",
    "ExportFiles",
    "ExportNotFound",
    "ExportQueue",
    "ExportRecord",
    "ExportRequest",
    "ExportStore",
    "ExportView",
    "check_period",
    "export_prefix",
    "new_export_id",
]

EXPORTS_PREFIX = "exports/"
IDEMPOTENCY_HEADER = "Idempotency-Key"  # the jobs API's header (services/jobs/requests.py)
IDEMPOTENCY_TTL = timedelta(hours=24)
MAX_PERIOD = timedelta(days=366)
URL_EXPIRY_SECONDS = 15 * 60
STALLED_AFTER = timedelta(hours=1)
"""A PENDING/RUNNING export not touched for this long is answered FAILED ``stalled`` (the
exporter's function times out after 15 minutes; its queue retries three times)."""
MAX_ATTEMPTS = 3
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)
_KEY_OK = re.compile(r"^[\x21-\x7e]{1,255}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")

Status = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED"]
FINAL: frozenset[str] = frozenset({"SUCCEEDED", "FAILED"})


class ExportNotFound(NotFound):
    code = "export_not_found"


def _iso_only(value: Any) -> Any:
    """Body times are ISO 8601 text (pydantic alone would also take ``0.5`` as a Unix time)."""
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("an ISO 8601 date-time with a zone such as 2026-01-02T03:04:05Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]


class ExportRequest(BaseModel):
    """The body of POST /audit/exports: the period, ``since`` ≤ event time ≤ ``until``."""

    model_config = ConfigDict(extra="forbid")

    since: IsoTime = Field(description="Start of the period (ISO 8601 with a zone)")
    until: IsoTime = Field(description="End of the period (ISO 8601 with a zone), after since")


def check_period(since: datetime, until: datetime) -> tuple[str, str]:
    """The period in the chain's time form; :class:`Invalid` naming the field: a zone on both,
    in range, since < until, at most :data:`MAX_PERIOD` long."""
    low, high = export_window(since, until)
    for name, value in (("since", since), ("until", until)):
        if not EARLIEST <= value.astimezone(UTC) <= LATEST:  # the chain's time form sorts as text
            raise Invalid(f"{name}: out of range (1970 to 9998)", field=name)
    if until <= since:
        raise Invalid("until: must be after since", field="until")
    if until - since > MAX_PERIOD:
        raise Invalid(f"until: the period is over {MAX_PERIOD.days} days", field="until")
    return low, high


def new_export_id(now: datetime) -> str:
    """A canonical UUID version 7: the creation millisecond first, so ids sort by time (the
    listing is newest first by key)."""
    millis = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    rand = secrets.randbits(74)
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62)
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def export_prefix(customer_id: str, export_id: str) -> str:
    return f"{EXPORTS_PREFIX}{customer_id}/{export_id}/"


class ExportFile(BaseModel):
    name: str
    day: str | None = Field(default=None, description="The UTC day of an events file")
    count: int | None = Field(default=None, description="Events in the file (None: manifest)")
    bytes: int
    sha256: str


class ExportError(BaseModel):
    code: str
    message: str


class ExportRecord(BaseModel):
    """The stored item of one export (no secrets: ids, times, counts and hashes)."""

    model_config = ConfigDict(extra="ignore")

    export_id: str
    customer_id: str
    status: Status
    since: str
    until: str
    created_at: str
    updated_at: str
    key_id: str = ""
    attempts: int = 0
    count: int | None = None
    files: list[ExportFile] = []
    manifest_sha256: str | None = None
    location: str | None = None
    error: ExportError | None = None


class ExportFileLink(ExportFile):
    url: str | None = Field(default=None, description="Presigned GET URL (short expiry)")


class ExportView(BaseModel):
    export_id: str
    status: Status
    since: str
    until: str
    created_at: str
    updated_at: str
    count: int | None = None
    manifest_sha256: str | None = None
    files: list[ExportFileLink] = []
    urls_expire_at: str | None = None
    error: ExportError | None = None
    deduplicated: bool = False


class ExportList(BaseModel):
    exports: list[ExportView]


class ExportFailure(Exception):
    """An export that cannot succeed however often it is retried (``code``: the reason)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------------- ports


class ExportStore(Protocol):
    def create(
        self, record: ExportRecord, claim: tuple[str, str, datetime] | None
    ) -> ExportRecord | None:
        """Store a new export. ``claim`` = (key scope, request hash, expiry): when that key is
        held (and not expired) nothing is stored and the holder's record is returned; None
        when stored. :class:`Invalid` on ``Idempotency-Key`` when held for another request."""
        ...

    def get(self, customer_id: str, export_id: str) -> ExportRecord | None: ...

    def list(self, customer_id: str, limit: int) -> list[ExportRecord]:
        """Newest first."""
        ...

    def update(self, record: ExportRecord, expected: frozenset[str]) -> bool:
        """Replace the record if its stored status is one of ``expected``; False otherwise."""
        ...


class ExportQueue(Protocol):
    def send(self, customer_id: str, export_id: str) -> None: ...


class ExportFiles(Protocol):
    def sink(self, customer_id: str, export_id: str) -> ExportSink: ...

    def url(self, customer_id: str, export_id: str, name: str, expires_in: int) -> str: ...


# ---------------------------------------------------------------------------- application


def _now_text(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _request_hash(low: str, high: str) -> str:
    return hashlib.sha256(json.dumps([low, high]).encode()).hexdigest()


def idempotency_scope(customer_id: str, key: str) -> str:
    """Where a key is claimed: per customer; the key itself is never stored."""
    return f"{customer_id}#key#{hashlib.sha256(key.encode()).hexdigest()}"


class AuditExports:
    """Start, read and run audit exports; every call is scoped by the caller's customer."""

    def __init__(
        self,
        store: ExportStore,
        queue: ExportQueue,
        files: ExportFiles,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.queue = queue
        self.files = files
        self.clock = clock

    # ------------------------------------------------------------------ the API's side

    def start(
        self,
        customer_id: str,
        request: ExportRequest,
        *,
        key_id: str = "",
        idempotency_key: str | None = None,
    ) -> ExportView:
        low, high = check_period(request.since, request.until)
        now = self.clock()
        claim = None
        if idempotency_key is not None:
            if not _KEY_OK.match(idempotency_key):
                raise Invalid(
                    f"{IDEMPOTENCY_HEADER}: 1-255 printable ASCII characters without spaces",
                    field=IDEMPOTENCY_HEADER,
                )
            scope = idempotency_scope(customer_id, idempotency_key)
            claim = (scope, _request_hash(low, high), now + IDEMPOTENCY_TTL)
        stamp = _now_text(now)
        record = ExportRecord(
            export_id=new_export_id(now),
            customer_id=customer_id,
            status="PENDING",
            since=low,
            until=high,
            created_at=stamp,
            updated_at=stamp,
            key_id=key_id,
        )
        held = self.store.create(record, claim)
        if held is not None:  # the same key and body within 24 h: the same export
            return self._view(held, deduplicated=True)
        try:
            self.queue.send(customer_id, record.export_id)
        except Exception:
            failed = self._fail(record, "not_started", "the export could not be queued")
            self.store.update(failed, frozenset({"PENDING"}))
            return self._view(failed)
        return self._view(record)

    def get(self, customer_id: str, export_id: str) -> ExportView:
        record = self.store.get(customer_id, export_id)
        if record is None:
            raise ExportNotFound("no such export", field="export_id")
        return self._view(self._stalled(record))

    def list(self, customer_id: str, limit: int = 20) -> ExportList:
        records = self.store.list(customer_id, limit)
        return ExportList(
            exports=[self._view(self._stalled(r), links=False) for r in records[:limit]]
        )

    def _stalled(self, record: ExportRecord) -> ExportRecord:
        if record.status in FINAL:
            return record
        updated = datetime.fromisoformat(record.updated_at.replace("Z", "+00:00"))
        if self.clock() - updated < STALLED_AFTER:
            return record
        failed = self._fail(record, "stalled", "the exporter stopped without an outcome")
        if self.store.update(failed, frozenset({record.status})):
            return failed
        return self.store.get(record.customer_id, record.export_id) or record

    def _view(
        self, record: ExportRecord, *, deduplicated: bool = False, links: bool = True
    ) -> ExportView:
        files: list[ExportFileLink] = []
        expires = None
        for file in record.files:
            url = None
            if links and record.status == "SUCCEEDED":
                url = self.files.url(
                    record.customer_id, record.export_id, file.name, URL_EXPIRY_SECONDS
                )
                expires = _now_text(self.clock() + timedelta(seconds=URL_EXPIRY_SECONDS))
            files.append(ExportFileLink(**file.model_dump(), url=url))
        return ExportView(
            export_id=record.export_id,
            status=record.status,
            since=record.since,
            until=record.until,
            created_at=record.created_at,
            updated_at=record.updated_at,
            count=record.count,
            manifest_sha256=record.manifest_sha256,
            files=files,
            urls_expire_at=expires,
            error=record.error,
            deduplicated=deduplicated,
        )

    def _fail(self, record: ExportRecord, code: str, message: str) -> ExportRecord:
        return record.model_copy(
            update={
                "status": "FAILED",
                "error": ExportError(code=code, message=message),
                "updated_at": _now_text(self.clock()),
            }
        )

    # ------------------------------------------------------------------ the exporter's side

    def run(self, customer_id: str, export_id: str, index: CustomerIndex, attempt: int = 1) -> str:
        """Run one queued export; returns its status afterwards. A final export is left as it
        is (a redelivered message). A transient error is raised (the queue retries) until
        :data:`MAX_ATTEMPTS`; then, or for an :class:`ExportFailure`, it is FAILED."""
        record = self.store.get(customer_id, export_id)
        if record is None or record.status in FINAL:
            return record.status if record else "MISSING"
        running = record.model_copy(
            update={
                "status": "RUNNING",
                "attempts": record.attempts + 1,
                "updated_at": _now_text(self.clock()),
            }
        )
        if not self.store.update(running, frozenset({"PENDING", "RUNNING"})):
            return "SKIPPED"
        sink: _Measured | None = None
        try:
            sink = _Measured(self.files.sink(customer_id, export_id))
            manifest = export_period(
                index,
                sink,
                customer_id,
                _parse(record.since),
                _parse(record.until),
                clock=self.clock,
            )
        except ExportFailure as error:
            self.store.update(
                self._fail(running, error.code, error.message), frozenset({"RUNNING"})
            )
            return "FAILED"
        except FerryError as error:  # export_period refuses (an event not sealed yet)
            self.store.update(
                self._fail(running, "export_refused", error.message), frozenset({"RUNNING"})
            )
            return "FAILED"
        except Exception as error:
            failure = classify(error)
            if failure is None and attempt < MAX_ATTEMPTS:
                raise
            failure = failure or ExportFailure(
                "export_failed", f"the export failed {attempt} times; see the exporter's log"
            )
            self.store.update(
                self._fail(running, failure.code, failure.message), frozenset({"RUNNING"})
            )
            return "FAILED"
        done = running.model_copy(
            update={
                "status": "SUCCEEDED",
                "count": manifest["count"],
                "files": [
                    *(ExportFile(**_file_fields(f)) for f in manifest["files"]),
                    ExportFile(
                        name=MANIFEST,
                        bytes=sink.sizes.get(MANIFEST, 0) if sink else 0,
                        sha256=manifest["manifest_sha256"],
                    ),
                ],
                "manifest_sha256": manifest["manifest_sha256"],
                "location": manifest["location"].rsplit("/", 1)[0] + "/",
                "updated_at": _now_text(self.clock()),
                "error": None,
            }
        )
        self.store.update(done, frozenset({"RUNNING"}))
        return "SUCCEEDED"


class _Measured:
    """An export sink that remembers each file's size."""

    def __init__(self, sink: ExportSink) -> None:
        self.inner = sink
        self.sizes: dict[str, int] = {}

    def put(self, name: str, data: bytes) -> str:
        self.sizes[name] = len(data)
        return self.inner.put(name, data)


def _file_fields(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ("name", "day", "count", "bytes", "sha256")}


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_PERMANENT = {
    "NoSuchBucket": ("bucket_unavailable", "the audit bucket does not exist"),
    "AccessDenied": ("access_denied", "the exporter may not write the audit bucket"),
    "ResourceNotFoundException": ("index_unavailable", "the event store's index was not found"),
    "AccessDeniedException": ("access_denied", "the exporter may not read the event store"),
}


def classify(error: BaseException) -> ExportFailure | None:
    """A permanent AWS error as a failure reason (None: maybe transient, retry)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        if code in _PERMANENT:
            return ExportFailure(*_PERMANENT[code])
    return None
