"""Reads are audited (issue 11 part 4): every API read (and export) appends an ``AccessRecorded``
entry to a hash-chained access log.

Where: the access-log table (``ResourceNames.access_log_table``), which has exactly the event
store's item format and is written by the same recorder class
(``events.dynamodb.DynamoDBAggregateRecorder``, chained): the same canonical encoding and genesis
marker (``events.chain``), the same customer-and-time index (GSI ``by-customer-time``), so the
same verifier, checkpoints and listing (``services.projections.access_log``) cover it. A table of
its own, not the event store, because (1) the query API may never write the event store (its
role denies it: a read key must not be able to forge domain history), (2) reads outnumber
changes by far and would dilute every ``/audit/events`` page and feed the outbox stream, which
has nothing to publish for them. The table has no DynamoDB stream.

Streams: ``access:<customer>:<UTC day>:<writer>`` — one per customer, day and *writer* (one
``AccessLog`` per Lambda instance / API process). A writer is the only appender of its streams,
so an append never races another (no conditional-write retries between Lambda instances) and
its previous hash is always in the recorder's cache: one ``PutItem`` per read.

Recording happens in ``ferry.api.FerryResolver.resolve`` after the route answered (the one
dispatch every API function runs, in Lambda and in the local API server), synchronously, before
the response is returned. A failed write never fails the read (no input may produce a 5xx): it
is retried once, then the whole entry is written to the function's log as a structured
``access log write failed`` record (CloudWatch Logs: durable, so it can be reconciled) and the
``AccessLogWriteFailed`` metric is emitted. See docs/audit.md, "Reads are audited".
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from aws_lambda_powertools import Logger
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.chain import normalise_at
from ferry import names as n
from ferry.api_keys import Principal

__all__ = [
    "ACCESS_TOPIC",
    "METRIC_ACCESS_LOG_FAILED",
    "AccessLog",
    "AccessLogSettings",
    "AccessRecorded",
    "audited",
    "build_access_log",
    "safe_value",
    "stream_id_for",
]

ACCESS_TOPIC = "ferry.access_log:AccessRecorded"
"""The stored topic of every access entry (this module's class: it resolves)."""
METRIC_ACCESS_LOG_FAILED = n.METRIC_ACCESS_LOG_WRITE_FAILED
EXPORT_ROUTE_PREFIX = "/audit/exports"
"""POST routes under it start an export of the customer's data: audited like a read."""

logger = Logger(service="ferry-access-log")

_SAFE = re.compile(r"^[\w:.@+,-]{0,200}$")
_SAFE_CUSTOMER = re.compile(r"^[\w.@-]{1,64}$")
PLAIN_QUERY_PARAMETERS = frozenset(
    {
        "as_of",
        "customer",
        "endpoint_id",
        "hours",
        "key",
        "limit",
        "route_id",
        "since",
        "status",
        "stream_id",
        "type",
        "until",
    }
)
"""Query parameters stored as sent (when short and plain); every other one (``next_token``, and
any name the API does not define) is stored as ``sha256:<16 hex>`` of its value: an auditor can
match two requests carrying the same value without the log holding it."""


def safe_value(name: str, value: str, *, plain: frozenset[str] = PLAIN_QUERY_PARAMETERS) -> str:
    """``value`` itself for a known, plain parameter; else a short digest of it."""
    if name in plain and _SAFE.match(value):
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def audited(method: str, resource: str) -> bool:
    """A read (GET) or an export (POST under /audit/exports)."""
    method = method.upper()
    return method == "GET" or (method == "POST" and resource.startswith(EXPORT_ROUTE_PREFIX))


class AccessRecorded(BaseModel):
    """One audited API call: who (key id and name, customer), what (method, route template,
    resource ids, query parameters with secrets digested), when, and the answer's status."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["AccessRecorded"] = "AccessRecorded"
    timestamp: str = Field(description="When the call was answered (UTC, chain form)")
    customer_id: str
    key_id: str
    key_name: str = ""
    scope: str = ""
    method: str
    route: str = Field(description="The route template, e.g. /jobs/{job_id}")
    resource_ids: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    status: int
    request_id: str = ""
    source_ip: str = ""
    duration_ms: float = 0.0

    @classmethod
    def of_request(
        cls,
        event: Mapping[str, Any],
        who: Principal,
        status: int,
        *,
        at: datetime,
        duration_ms: float,
    ) -> AccessRecorded:
        context = event.get("requestContext") or {}
        identity = context.get("identity") or {}
        resource = str(event.get("resource") or event.get("path") or "")
        path_parameters = event.get("pathParameters") or {}
        query = event.get("queryStringParameters") or {}
        return cls(
            timestamp=normalise_at(at),
            customer_id=who.customer_id,
            key_id=who.key_id,
            key_name=who.key_name,
            scope=who.scope,
            method=str(event.get("httpMethod") or "").upper(),
            route=resource if _SAFE_ROUTE.match(resource) else safe_value("route", resource),
            resource_ids={
                str(k): safe_value(str(k), str(v), plain=frozenset({str(k)}))
                for k, v in sorted(path_parameters.items())
            },
            query={str(k): safe_value(str(k), str(v)) for k, v in sorted(query.items())},
            status=int(status),
            request_id=safe_value("request_id", str(context.get("requestId") or ""), plain=_RID),
            source_ip=safe_value("ip", str(identity.get("sourceIp") or ""), plain=_IP),
            duration_ms=round(duration_ms, 3),
        )


_SAFE_ROUTE = re.compile(r"^(/[\w{}.-]*){0,20}$")
_RID = frozenset({"request_id"})
_IP = frozenset({"ip"})


def stream_id_for(customer_id: str, day: str, writer: str) -> str:
    """``access:<customer>:<day>:<writer>``; a customer id that is not plain is digested (the
    customer is in every entry and in the index attribute; the stream id only has to be
    unique and safe in page tokens and query strings)."""
    customer = customer_id if _SAFE_CUSTOMER.match(customer_id) else safe_value("", customer_id)
    return f"access:{customer}:{day}:{writer}"


class AccessRecorder(Protocol):
    """What the access log needs of the event-store recorder (``DynamoDBAggregateRecorder``)."""

    def insert_events(self, stored_events: Any, **kwargs: Any) -> Any: ...

    def select_events(
        self,
        originator_id: Any,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Any: ...


class AccessLog:
    """Appends ``AccessRecorded`` entries for one writer (a Lambda instance or API process)."""

    def __init__(
        self,
        recorder: AccessRecorder,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        writer: str | None = None,
        on_failure: Callable[[AccessRecorded], None] | None = None,
    ) -> None:
        self.recorder = recorder
        self.clock = clock
        self.writer = writer or uuid.uuid4().hex[:12]
        self.on_failure = on_failure or _emit_failure_metric
        self.failures = 0
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()

    def after(
        self,
        event: Mapping[str, Any],
        who: Principal,
        response: Mapping[str, Any],
        started: float,
    ) -> AccessRecorded | None:
        """Record the answered request if it is audited; never raises (see the module doc)."""
        try:
            method = str(event.get("httpMethod") or "")
            resource = str(event.get("resource") or event.get("path") or "")
            if not audited(method, resource):
                return None
            entry = AccessRecorded.of_request(
                event,
                who,
                int(response.get("statusCode") or 0),
                at=self.clock(),
                duration_ms=(time.perf_counter() - started) * 1000,
            )
        except Exception:  # a request we cannot even describe: say so, never fail the read
            logger.exception("access log entry could not be built")
            self.failures += 1
            return None
        self.record(entry)
        return entry

    def record(self, entry: AccessRecorded) -> bool:
        """Append one entry; True when stored. On failure: one retry (re-reading the stream's
        head if the version was taken), then the entry goes to the log and the metric."""
        from eventsourcing.persistence import IntegrityError, StoredEvent

        stream = stream_id_for(entry.customer_id, entry.timestamp[:10], self.writer)
        state = entry.model_dump_json().encode()
        with self._lock:
            for attempt in (1, 2):
                try:
                    if attempt == 2 or stream not in self._versions:
                        self._versions[stream] = self._head(stream)
                    version = self._versions[stream] + 1
                    self.recorder.insert_events(
                        [
                            StoredEvent(
                                originator_id=stream,
                                originator_version=version,
                                topic=ACCESS_TOPIC,
                                state=state,
                            )
                        ]
                    )
                    self._versions[stream] = version
                    return True
                except IntegrityError:
                    continue  # our version was taken (an ambiguous earlier write): re-read
                except Exception:
                    if attempt == 2:
                        break
        self.failures += 1
        logger.error(
            "access log write failed",
            access_entry=entry.model_dump(),
            access_stream=stream,
        )
        try:
            self.on_failure(entry)
        except Exception:  # pragma: no cover - the metric must not fail the read either
            logger.exception("access log failure metric not emitted")
        return False

    def _head(self, stream: str) -> int:
        """The stream's highest stored version (0 when new): a writer's first append of a day,
        or a re-read after a failed write."""
        found = self.recorder.select_events(stream, desc=True, limit=1)
        return int(found[0].originator_version) if found else 0


def _emit_failure_metric(entry: AccessRecorded) -> None:
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    metrics = EphemeralMetrics(
        namespace=n.METRICS_NAMESPACE, service=n.APP_METRICS[METRIC_ACCESS_LOG_FAILED]
    )
    metrics.add_metric(name=METRIC_ACCESS_LOG_FAILED, unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()


_DEFAULTS = n.ResourceNames()


class AccessLogSettings(BaseSettings):
    """Where the API functions record reads (the only reader of the environment here)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    access_log_table: str | None = Field(
        default=None,
        validation_alias=n.ENV_ACCESS_LOG_TABLE,
        description=f"e.g. {_DEFAULTS.access_log_table}; unset: no recording (not deployed)",
    )
    enabled: bool = Field(default=True, validation_alias=n.ENV_ACCESS_LOG_ENABLED)
    region: str | None = Field(
        default=None, validation_alias=AliasChoices(n.ENV_REGION, "AWS_REGION")
    )


def build_access_log(
    *, settings: AccessLogSettings | None = None, dynamodb_client: Any = None
) -> AccessLog | None:
    """The production access log; None when ``FERRY_ACCESS_LOG_TABLE`` is unset (a deployment
    without the table: the local stack sets it; infra does not yet) or ``FERRY_ACCESS_LOG=false``."""
    settings = settings or AccessLogSettings()
    if not settings.enabled or not settings.access_log_table:
        return None
    import boto3

    from events.dynamodb import DynamoDBAggregateRecorder

    client = dynamodb_client or boto3.client("dynamodb", region_name=settings.region)
    return AccessLog(DynamoDBAggregateRecorder(client, settings.access_log_table))
