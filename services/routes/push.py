"""The push consumer: S3 "Object Created" events (source aws.s3, from the account's default
bus, via the routes queue) → one job per target of every enabled ``event`` route whose source
matches the object.

At least once and out of order: the job's idempotency key is (route, target, bucket, key, version
id or ETag) and the file ledger refuses a version it has dispatched, so a repeated or replayed
event makes no second job while a new version of the key does.

No loops: Ferry's staging bucket is never a route source, and an object carrying the
``ferry-job-id`` metadata (written by the executor) is skipped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from events.contract import EndpointStatus
from ferry.names import OBJECT_MARKER
from services.routes._sqs import Handler, lazy, sqs_batch_handler
from services.routes.application import (
    IN_FLIGHT_SECONDS,
    Candidate,
    RetryLater,
    RoutesApplication,
    RouteView,
    utc,
)
from services.routes.bootstrap import build_application, route_directory, scan_state
from services.routes.ports import (
    EndpointDirectory,
    EndpointInfo,
    ObjectInfo,
    ObjectInspector,
    PendingDelivery,
    RouteDirectory,
    ScanStateStore,
    safe_reason,
)
from services.routes.settings import RoutesSettings

logger = Logger(service="ferry-routes-push")
tracer = Tracer(service="ferry-routes-push")  # X-Ray in Lambda; disabled elsewhere

FERRY_JOB_METADATA = OBJECT_MARKER


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None
    time: datetime

    @classmethod
    def from_event(cls, envelope: dict[str, Any]) -> S3Object:
        detail = envelope["detail"]
        obj = detail["object"]
        raw_time = envelope.get("time")
        when = (
            datetime.fromisoformat(str(raw_time).replace("Z", "+00:00"))
            if raw_time
            else datetime.now(UTC)
        )
        return cls(
            bucket=str(detail["bucket"]["name"]),
            key=str(obj["key"]),
            size=int(obj.get("size") or 0),
            # AWS sends "etag"; moto server sends "eTag" (and version-id "null" when unversioned)
            etag=str(obj.get("etag") or obj.get("eTag") or "").strip('"'),
            version_id=None if obj.get("version-id") in (None, "", "null") else obj["version-id"],
            time=when,
        )

    @property
    def version(self) -> str:
        return self.version_id or self.etag


def relative_to_route(
    obj: S3Object, endpoint: EndpointInfo, source_path: str, recursive: bool
) -> tuple[str, str] | None:
    """(endpoint-relative path, route-relative path) when the object is in the route's source."""
    if endpoint.bucket != obj.bucket or not obj.key.startswith(endpoint.prefix):
        return None
    path = obj.key[len(endpoint.prefix) :]
    base = source_path.rstrip("/") + "/" if source_path else ""
    if not path.startswith(base):
        return None
    relpath = path[len(base) :]
    if not relpath or relpath.endswith("/") or (not recursive and "/" in relpath):
        return None
    return path, relpath


class PushConsumer:
    def __init__(
        self,
        *,
        app: RoutesApplication,
        routes: RouteDirectory,
        endpoints: EndpointDirectory,
        objects: ObjectInspector,
        state: ScanStateStore,
        staging_bucket: str,
        cache_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.routes = routes
        self.endpoints = endpoints
        self.objects = objects
        self.state = state
        self.staging_bucket = staging_bucket
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: dict[str, tuple[float, Any]] = {}

    def _endpoint(self, endpoint_id: str) -> EndpointInfo | None:
        found: EndpointInfo | None = self._cached(
            "endpoint:" + endpoint_id, lambda: self.endpoints.get(endpoint_id)
        )
        return found

    def _cached(self, key: str, load: Callable[[], Any]) -> Any:
        """Routes and endpoints change rarely: a warm Lambda re-reads them every few seconds."""
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        value = load()
        self._cache[key] = (now, value)
        return value

    def handle(self, envelope: dict[str, Any]) -> list[str]:
        """Handle one S3 event; returns one outcome per route that took a decision, or the
        reason nobody did (recorded as an unrouted object of the bucket).

        Which routes: those the routes index names for the bucket (written *before* the route
        command's event, read strongly consistently: a route created a moment ago is there)
        plus those the read model lists (older routes); every candidate is then read from its
        own stream (the event store), so a route disabled or changed a moment ago is seen as
        such. A route whose command is still in flight makes the message wait (RetryLater)."""
        obj = S3Object.from_event(envelope)
        if obj.bucket == self.staging_bucket:
            return []
        outcomes: list[str] = []
        unusable: list[str] = []
        head_box: list[ObjectInfo | None] = []
        disabled: list[str] = []
        for route in self._routes_for(obj):
            source = route.definition.source
            endpoint: EndpointInfo | None = self._endpoint(source.endpoint_id)
            if endpoint is None or endpoint.customer_id != route.customer_id:
                continue
            found = relative_to_route(obj, endpoint, source.path, source.recursive)
            if found is None:
                continue
            if not route.definition.enabled:
                disabled.append(f"route {route.route_id} is disabled")
                continue
            if endpoint.status != EndpointStatus.ACTIVE:
                # never the route's ledger: the object may not be the route owner's to know of
                if endpoint.status == EndpointStatus.PENDING_VALIDATION:
                    raise RetryLater(f"source endpoint {endpoint.endpoint_id} is validating")
                unusable.append(
                    f"source endpoint {endpoint.endpoint_id} is {endpoint.status.value}"
                )
                continue
            refused = self.objects.refusal(endpoint)  # tenancy, now (a grant can be removed)
            if refused is not None:
                unusable.append(f"source endpoint {endpoint.endpoint_id}: {refused}")
                continue
            try:
                outcomes.append(self._one(route, obj, endpoint, *found, head_box))
            except RetryLater:
                raise
            except Exception as error:
                # unexpected (a throttled table, an S3 hiccup): this route's ledger says why,
                # and the message is redelivered (the routes already done are idempotent);
                # a message that keeps failing ends in the queue's DLQ, still explained
                logger.warning("push failed", route_id=route.route_id, key=obj.key)
                path, relpath = found
                self.app.record_skip(
                    route, self._candidate(obj, path, relpath, None), "error", safe_reason(error)
                )
                raise
            if outcomes and outcomes[-1] == "gone":
                return outcomes
        if not outcomes:
            reason = (
                "source_not_active" if unusable else "route_disabled" if disabled else "no_route"
            )
            unusable.extend(disabled)
            self.app.record_unrouted(
                obj.bucket,
                key=obj.key,
                size=obj.size,
                version=obj.version,
                reason=reason,
                detail="; ".join(unusable) or None,
                at=obj.time,
            )
            return [reason]
        return outcomes

    def _routes_for(self, obj: S3Object) -> list[RouteView]:
        indexed = {e.route_id: e for e in self.app.index.routes_on(obj.bucket)}
        listed = self._cached("routes", lambda: self.routes.enabled_routes("event"))
        candidates = dict.fromkeys(indexed)
        for route_id, _customer_id, definition in listed:
            endpoint = self._endpoint(str((definition.get("source") or {}).get("endpoint_id")))
            if endpoint is not None and endpoint.bucket == obj.bucket:
                candidates.setdefault(route_id)
        routes: list[RouteView] = []
        now = time.time()
        for route_id in candidates:
            found = self.app.current(route_id)
            if found is None:
                entry = indexed.get(route_id)
                if entry is not None and now - entry.since < IN_FLIGHT_SECONDS:
                    raise RetryLater(f"route {route_id} is being created")
                continue  # its create failed after the index entry: not a route
            if found.definition["trigger"]["type"] == "event":  # disabled ones: to say so
                routes.append(RouteView.of(route_id, found.customer_id, found.definition))
        return routes

    def _candidate(
        self, obj: S3Object, path: str, relpath: str, head: ObjectInfo | None
    ) -> Candidate:
        return Candidate(
            path=path,
            relpath=relpath,
            size=obj.size,
            modified_at=utc(head.last_modified) if head is not None else obj.time,
            file_version=obj.version,
            key_parts=(obj.bucket, obj.key, obj.version),
            first_seen_at=obj.time,
        )

    def _one(
        self,
        route: RouteView,
        obj: S3Object,
        endpoint: EndpointInfo,
        path: str,
        relpath: str,
        head_box: list[ObjectInfo | None],
    ) -> str:
        if not head_box:  # with the route's source endpoint's own access
            head_box.append(self.objects.head(obj.bucket, obj.key, endpoint))
        head = head_box[0]
        if head is None:
            return "gone"  # deleted since: nothing to deliver
        candidate = self._candidate(obj, path, relpath, head)
        if FERRY_JOB_METADATA in head.metadata:
            self.app.record_skip(
                route,
                candidate,
                "ferry_written",
                f"written by job {head.metadata[FERRY_JOB_METADATA]}",
            )
            return "ferry_written"
        reason = _skip_reason(route, relpath, obj.size)
        if reason is not None:
            self.app.record_skip(route, candidate, *reason)
            return reason[0]
        result = self.app.dispatch(route, candidate, when=obj.time)
        if result.outcome == "dispatched":
            self.state.add_pending(
                route.route_id, [PendingDelivery(path, obj.version, result.job_ids)]
            )
        return result.outcome


def _skip_reason(route: RouteView, relpath: str, size: int) -> tuple[str, str] | None:
    source = route.definition.source
    name = relpath.rsplit("/", 1)[-1]
    if not source.matches(relpath):
        return "pattern", f"{name!r} does not match {source.pattern!r}"
    if source.min_size is not None and size < source.min_size:
        return "too_small", f"{size} < min_size {source.min_size}"
    if source.max_size is not None and size > source.max_size:
        return "too_large", f"{size} > max_size {source.max_size}"
    return None


def make_handler(consumer: PushConsumer) -> Handler:
    def record_handler(record: SQSRecord) -> list[str]:
        envelope = json.loads(record.body)
        outcomes = consumer.handle(envelope)
        logger.debug("s3 event", outcomes=outcomes)
        return outcomes

    return sqs_batch_handler(record_handler)


def build_push_consumer(
    *,
    settings: RoutesSettings | None = None,
    app: RoutesApplication | None = None,
    routes: RouteDirectory | None = None,
    objects: ObjectInspector | None = None,
    state: ScanStateStore | None = None,
) -> PushConsumer:
    settings = settings or RoutesSettings()
    app = app or build_application(settings=settings)
    if objects is None:
        from services.routes.adapters import S3ObjectInspector

        objects = S3ObjectInspector()
    return PushConsumer(
        app=app,
        routes=route_directory(settings, routes),
        endpoints=app.endpoints,
        objects=objects,
        state=scan_state(settings, state),
        staging_bucket=settings.staging,
    )


handler = tracer.capture_lambda_handler(lazy(lambda: make_handler(build_push_consumer())))
"""Lambda entry point (SQS event source, ReportBatchItemFailures)."""
