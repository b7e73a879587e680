"""The pull scanner (data plane): on each tick, list every due ``schedule`` route's source and
turn stable new files into jobs; then settle dispatched files whose jobs are all final
(FileDelivered / FileDeliveryFailed, and the route's post_action on the source only after every
fan-out target SUCCEEDED).

Working state (size, mtime, consecutive unchanged observations, first sight, last decision) lives
in the ``<prefix>-route-scan`` table (:class:`ScanStateStore`), not in the ledger: the ledger
records decisions only, and a steady directory costs no writes at all.

Listing is streamed in pages of ``PAGE`` entries (SFTP READDIR batches / S3 ListObjectsV2
pages): memory stays bounded whatever the directory size.

Entry point: ``python -m services.routes.scanner`` long-polls the tick queue
(``FERRY_ROUTES_TICK_QUEUE_URL``; AWS: an EventBridge Scheduler schedule sends to it; locally
``python -m services.routes.ticker`` does) and runs one tick per message. ``--once`` runs a
single tick and exits. :func:`build_scanner` wires the scanner from ``services.routes.bootstrap``
(the entry point imports the bootstrap, never the reverse).

Why one module over 400 lines: listing, the stability decision, dispatch and settling share the
scan-state records and the route's stream read of a tick; split apart, each piece would need the
others' private state passed through.
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeVar
from uuid import uuid4

from aws_lambda_powertools import Logger

from events.contract import EndpointStatus, PostAction
from services.executor import post_actions
from services.routes.application import Candidate, RoutesApplication, RouteView, utc
from services.routes.bootstrap import build_application, route_directory, scan_state
from services.routes.definition import every_seconds, template_fields
from services.routes.expectations import Expectations
from services.routes.ports import (
    EndpointDirectory,
    JobStatusReader,
    ListedFile,
    ListingFailed,
    PendingDelivery,
    RouteDirectory,
    ScanState,
    ScanStateStore,
    SourceOpener,
    SourceSession,
    latest_job,
    safe_reason,
)
from services.routes.schedule import Due
from services.routes.schedule import due as schedule_due
from services.routes.settings import RoutesSettings

logger = Logger(service="ferry-routes-scanner")

PAGE = 100
FINAL_OK = "SUCCEEDED"
FINAL_BAD = ("FAILED", "CANCELLED")
T = TypeVar("T")


def _pages(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while page := list(islice(iterator, size)):
        yield page


def file_version(size: int, mtime: float, etag: str | None = None) -> str:
    """size:mtime (SFTP); S3 listings add the ETag (a same-size rewrite within a second)."""
    return f"{size}:{int(mtime)}:{etag}" if etag else f"{size}:{int(mtime)}"


@dataclass
class TickReport:
    routes_scanned: int = 0
    listed: int = 0
    dispatched: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    settled: int = 0
    state_writes: int = 0
    listing_failures: int = 0
    late_ticks: int = 0
    leased_elsewhere: int = 0  # due routes another worker was scanning
    sla_events: int = 0

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def merge(self, other: TickReport) -> None:
        for f in fields(self):
            if f.name == "skipped":
                for reason, n in other.skipped.items():
                    self.skipped[reason] = self.skipped.get(reason, 0) + n
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True)
class ScannerPolicy:
    dispatch_limit: int = 100  # jobs-creating files per route per tick (backpressure)
    settle_limit: int = 200  # pending deliveries checked per route per tick
    watch_limit: int = 50  # failed deliveries re-checked per route per tick (round robin)
    workers: int = 4  # routes listed at once (a slow source holds one worker, not the tick)
    lease_seconds: float = 300.0  # a route's scan lease, renewed every listing page
    late_after_seconds: float = 120.0  # a scan this long after its slot is ScheduleTickLate


#: A FileDelivered without its FilePostActionCompleted for this long: its settler died.
POST_ACTION_RECOVERY_SECONDS = 300.0


def _relpath(route: RouteView, path: str) -> str:
    """A listed path relative to the route's source directory (what patterns and templates see)."""
    source_path = route.definition.source.path
    base = source_path.rstrip("/") + "/" if source_path else ""
    return path[len(base) :]


def _candidate(
    route: RouteView, listed: ListedFile, first_seen: float, modified_at: datetime | None
) -> Candidate:
    """The ledger's view of one listed entry: one file version, keyed by path and version."""
    version = file_version(listed.size, listed.mtime, listed.etag)
    return Candidate(
        path=listed.path,
        relpath=_relpath(route, listed.path),
        size=listed.size,
        modified_at=modified_at,
        file_version=version,
        key_parts=(listed.path, version),
        first_seen_at=utc(first_seen),
    )


class Scanner:
    def __init__(
        self,
        *,
        app: RoutesApplication,
        routes: RouteDirectory,
        endpoints: EndpointDirectory,
        sources: SourceOpener,
        state: ScanStateStore,
        job_status: JobStatusReader,
        policy: ScannerPolicy | None = None,
        clock: Callable[[], float] = time.time,
        expectations: Expectations | None = None,
        owner: str | None = None,
    ) -> None:
        self.app = app
        self.routes = routes
        self.endpoints = endpoints
        self.sources = sources
        self.state = state
        self.job_status = job_status
        self.policy = policy or ScannerPolicy()
        self.clock = clock
        self._watch_cursor: dict[str, str | None] = {}
        self.expectations = expectations or Expectations(app)
        #: this worker's name on the scan leases (unique per Scanner, also within a process)
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid4().hex[:8]}"
        self._pool = ThreadPoolExecutor(self.policy.workers, thread_name_prefix="route-scan")
        self._lock = threading.Lock()
        self._inflight: set[str] = set()

    # -- the tick ----------------------------------------------------------------------------

    def tick(
        self, now: float | None = None, *, force: bool = False, wait: bool = True
    ) -> TickReport:
        """One tick: due routes are listed on the worker pool (each under its scan lease; a
        route still being listed from an earlier tick is not started again), then deliveries
        are settled and SLA deadlines checked. ``wait=False`` (the long-running loop) returns
        without waiting for the listings: a slow source never holds up the next tick."""
        now = self.clock() if now is None else now
        report = TickReport()
        futures: list[Future[None]] = []
        for route_id, customer_id, definition in self.routes.enabled_routes("schedule"):
            listed = RouteView.of(route_id, customer_id, definition)
            decision = Due(True, None) if force else self.decision(listed, now)
            if not decision.due:
                continue
            with self._lock:
                if route_id in self._inflight:
                    report.leased_elsewhere += 1
                    continue
                self._inflight.add(route_id)
            futures.append(self._pool.submit(self._scan_route, route_id, decision, now, report))
        if wait:
            for future in futures:
                future.result()
        for route_id in self.routes.settling_routes():  # disabled routes' files too
            try:
                route = self._current(route_id, None)
                if route is not None:
                    self.settle(route, report)
            except Exception:
                logger.exception("settle failed", route_id=route_id)
        self.check_expectations(now, report)
        return report

    def _scan_route(self, route_id: str, decision: Due, now: float, report: TickReport) -> None:
        local = TickReport()
        try:
            if not self.state.acquire_scan(route_id, self.owner, now, self.policy.lease_seconds):
                local.leased_elsewhere += 1  # another worker is listing it right now
                return
            try:
                # the read model only says which routes may be due; what to do comes from the
                # route's own stream (a route disabled or changed a moment ago is seen as such)
                route = self._current(route_id, "schedule")
                if route is None:
                    return
                late = decision.slot is not None and (
                    decision.missed > 1 or decision.late_by > self.policy.late_after_seconds
                )
                # catch-up: the missed scan runs once, now; ScheduleTickLate once per slot
                if late and decision.slot is not None:
                    self._record_late(route_id, decision, now, local)
                self.scan(route, now, local)
            finally:
                self.state.release_scan(route_id, self.owner)
        except Exception:  # one broken route must not stop the others
            logger.exception("scan failed", route_id=route_id)
        finally:
            with self._lock:
                report.merge(local)
                self._inflight.discard(route_id)

    def _record_late(self, route_id: str, decision: Due, now: float, report: TickReport) -> None:
        assert decision.slot is not None
        if self.app.record_tick_late(route_id, decision.slot, utc(now), decision.missed):
            report.late_ticks += 1
            logger.warning(
                "late tick: catch-up scan",
                route_id=route_id,
                slot=decision.slot.isoformat(),
                missed=decision.missed,
            )

    def check_expectations(self, now: float, report: TickReport) -> None:
        """Every enabled route with an ``expect``: its passed deadlines (services/routes/
        expectations.py decides from delivery times, not from when this runs)."""
        when = utc(now)
        for trigger in ("schedule", "event"):
            for route_id, customer_id, definition in self.routes.enabled_routes(trigger):
                if not definition.get("expect"):
                    continue
                try:
                    route = RouteView.of(route_id, customer_id, definition)
                    report.sla_events += len(self.expectations.check(route, when))
                except Exception:
                    logger.exception("expectation check failed", route_id=route_id)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _current(self, route_id: str, trigger: str | None) -> RouteView | None:
        found = self.app.current(route_id)
        if found is None:
            return None
        if trigger is not None and (
            not found.enabled or found.definition["trigger"]["type"] != trigger
        ):
            return None
        return RouteView.of(route_id, found.customer_id, found.definition, found.scan_error)

    def due(self, route: RouteView, now: float) -> bool:
        return self.decision(route, now).due

    def decision(self, route: RouteView, now: float) -> Due:
        """Due now? From the last scan's time and the schedule (services/routes/schedule.py:
        cron in the trigger's time zone, DST-correct; every missed slot since the last scan is
        caught up by one scan)."""
        trigger = route.definition.trigger
        last = self.state.last_tick(route.route_id)
        return schedule_due(
            cron=trigger.cron,
            every_seconds=every_seconds(trigger.every) if trigger.every is not None else None,
            tz=trigger.tz,
            last=None if last is None else datetime.fromtimestamp(last, UTC),
            now=datetime.fromtimestamp(now, UTC),
        )

    # -- listing and deciding -----------------------------------------------------------------

    def scan(self, route: RouteView, now: float, report: TickReport) -> None:
        source = route.definition.source
        endpoint = self.endpoints.get(source.endpoint_id)
        if endpoint is None or endpoint.customer_id != route.customer_id:
            self.app.record_scan(route.route_id, "source endpoint not found")
            return
        if endpoint.status != EndpointStatus.ACTIVE:
            # only an ACTIVE (validated, the customer's own) endpoint is ever listed
            self.app.record_scan(route.route_id, f"source endpoint is {endpoint.status.value}")
            return
        self.state.set_last_tick(route.route_id, now)
        report.routes_scanned += 1
        try:
            session = self.sources.open(endpoint)
        except Exception as error:  # cannot even connect: the route is FAILING, says why
            self._listing_failed(route, error, report)
            return
        budget = [self.policy.dispatch_limit]
        try:
            files = _guarded(session.iter_files(source.path, source.recursive))
            for page in _pages(files, PAGE):
                if not self.state.acquire_scan(
                    route.route_id, self.owner, self.clock(), self.policy.lease_seconds
                ):
                    logger.warning("scan lease lost: stopping", route_id=route.route_id)
                    return
                report.listed += len(page)
                known = self.state.get_many(route.route_id, [f.path for f in page])
                writes: list[ScanState] = []
                pendings: list[PendingDelivery] = []
                for listed in page:
                    old = known.get(listed.path)
                    new = self._one(route, session, listed, old, now, budget, report, pendings)
                    if new is not None and new != old:
                        writes.append(new)
                if pendings:
                    self.state.add_pending(route.route_id, pendings)
                if writes:
                    self.state.put_many(route.route_id, writes)
                    report.state_writes += len(writes)
        except ListingFailed as error:
            self._listing_failed(route, error, report)
            return
        finally:
            session.close()
        if route.scan_error is not None and self.app.record_scan(route.route_id, None):
            logger.info("listing works again", route_id=route.route_id)

    def _listing_failed(self, route: RouteView, error: BaseException, report: TickReport) -> None:
        reason = safe_reason(error)
        report.listing_failures += 1
        logger.warning("listing failed", route_id=route.route_id, reason=reason)
        if route.scan_error != reason:
            self.app.record_scan(route.route_id, reason)

    def _one(
        self,
        route: RouteView,
        session: SourceSession,
        listed: ListedFile,
        old: ScanState | None,
        now: float,
        budget: list[int],
        report: TickReport,
        pendings: list[PendingDelivery],
    ) -> ScanState | None:
        """One listed entry; whatever goes wrong with it is that entry's FileSkipped, and the
        scan goes on with the next one."""
        if listed.error is not None:
            return self._skip_entry(route, listed, old, now, report, "unreadable", listed.error)
        try:
            return self._evaluate(route, session, listed, old, now, budget, report, pendings)
        except Exception as error:
            logger.warning("file failed", route_id=route.route_id, path=listed.path)
            return self._skip_entry(route, listed, old, now, report, "error", safe_reason(error))

    def _skip_entry(
        self,
        route: RouteView,
        listed: ListedFile,
        old: ScanState | None,
        now: float,
        report: TickReport,
        reason: str,
        detail: str,
    ) -> ScanState | None:
        """Record (once per version and reason) that this entry could not be handled; it is
        looked at again on the next tick."""
        report.skip(reason)
        first_seen = old.first_seen if old is not None else now
        modified_at = utc(listed.mtime) if listed.mtime else None  # unreadable: no mtime
        candidate = _candidate(route, listed, first_seen, modified_at)
        self.app.record_skip(route, candidate, reason, detail)
        return old

    def _evaluate(
        self,
        route: RouteView,
        session: SourceSession,
        listed: ListedFile,
        old: ScanState | None,
        now: float,
        budget: list[int],
        report: TickReport,
        pendings: list[PendingDelivery],
    ) -> ScanState | None:
        definition = route.definition
        source, stable = definition.source, definition.stable
        relpath = _relpath(route, listed.path)
        name = relpath.rsplit("/", 1)[-1]
        if _is_marker(name, stable.done_marker):
            return None
        new = (
            ScanState(listed.path, listed.size, listed.mtime, 1, now)
            if old is None
            else old.observe(listed.size, listed.mtime)
        )
        new = replace(new, checks=min(new.checks, stable.checks))
        grew = old is not None and (old.size, old.mtime) != (listed.size, listed.mtime)
        candidate = _candidate(route, listed, new.first_seen, utc(listed.mtime))
        version = candidate.file_version

        def decide(reason: str, detail: str | None = None) -> ScanState:
            report.skip(reason)
            if new.decided != f"{version}|{reason}":
                self.app.record_skip(route, candidate, reason, detail)
            return replace(new, decided=f"{version}|{reason}")

        if new.decided.startswith(f"{version}|") and new.decided.split("|")[1] in (
            "dispatched",
            "duplicate",
            "invalid_path",
        ):
            return new  # decided for this version already: nothing to do, nothing to write
        if not source.matches(relpath):
            return decide("pattern", f"{name!r} does not match {source.pattern!r}")
        if source.min_size is not None and listed.size < source.min_size:
            return decide("too_small", f"{listed.size} < min_size {source.min_size}")
        if source.max_size is not None and listed.size > source.max_size:
            return decide("too_large", f"{listed.size} > max_size {source.max_size}")
        young = now - listed.mtime < stable.min_age_seconds
        if new.checks < stable.checks or young:
            if grew or (young and new.checks >= stable.checks):
                return decide(
                    "unstable",
                    f"size/mtime changed since the last listing (now {listed.size} bytes)"
                    if grew
                    else f"younger than min_age {stable.min_age}",
                )
            return new  # first sight: wait for the next observation (no event)
        if stable.done_marker:
            marker = _marker_path(listed.path, stable.done_marker)
            if not session.exists(marker):
                return decide("not_done", f"waiting for {marker}")
        if budget[0] <= 0:
            report.skip("limit")
            return new  # eligible, over this tick's dispatch limit: next tick
        result = self.app.dispatch(route, candidate, when=utc(listed.mtime))
        if result.outcome == "dispatched":
            budget[0] -= 1
            report.dispatched += 1
            pendings.append(PendingDelivery(listed.path, version, result.job_ids))
            return replace(new, decided=f"{version}|dispatched")
        report.skip(result.outcome)
        if result.outcome == "refused":
            return new  # retried next tick (the ledger recorded why, once)
        return replace(new, decided=f"{version}|{result.outcome}")

    # -- delivery outcome and post-action ------------------------------------------------------

    def settle(self, route: RouteView, report: TickReport) -> None:
        """Dispatched versions whose jobs are all final get their outcome; failed ones stay
        watched (a page per tick, round robin) so that a retry (POST /routes/{id}/files/retry)
        or a redrive of their job (POST /jobs/{id}/redrive) is followed to its end: every job
        id is resolved through its redrive chain to the newest job."""
        pending = self.state.pending(route.route_id, self.policy.settle_limit)
        cursor = self._watch_cursor.get(route.route_id)
        watched, after = self.state.watching(route.route_id, self.policy.watch_limit, cursor)
        self._watch_cursor[route.route_id] = after
        if not pending and not watched:
            return
        sessions: list[SourceSession] = []
        try:
            for item in pending:
                self._settle_one(route, item, report, sessions, watched=False)
            for item in watched:
                self._settle_one(route, item, report, sessions, watched=True)
        finally:
            for session in sessions:
                session.close()

    def _settle_one(
        self,
        route: RouteView,
        item: PendingDelivery,
        report: TickReport,
        sessions: list[SourceSession],
        *,
        watched: bool,
    ) -> None:
        definition = route.definition
        latest = [latest_job(self.job_status, job_id) for job_id in item.job_ids]
        if any(state is None for _, state in latest):
            return
        job_ids = [job_id for job_id, _ in latest]
        states = [state for _, state in latest if state is not None]
        failed = [
            (job_id, s.error_code or s.status, s.error_message or s.status)
            for job_id, s in zip(job_ids, states, strict=True)
            if s.status in FINAL_BAD
        ]
        if failed:
            self.app.settle(route.route_id, item.path, item.file_version, failed=failed)
            if not watched:
                self.state.watch(route.route_id, item)  # a retry or redrive may recover it
                report.settled += 1
            return
        if not all(s.status == FINAL_OK for s in states):
            return  # not final yet (or a retry / redrive is running)
        appended = self.app.settle(route.route_id, item.path, item.file_version, job_ids=job_ids)
        if definition.expect is not None:  # counted once per version, also on a re-settle
            report.sla_events += len(
                self.expectations.delivered(
                    route,
                    item.path,
                    _relpath(route, item.path),
                    item.file_version,
                    _delivered_at(states, self.clock()),
                )
            )
        if definition.post_action != PostAction.NONE and not self._run_post_action(
            route, item, appended, sessions
        ):
            return  # the post-action is another settler's (or waits for crash recovery)
        if watched:
            self.state.unwatch(route.route_id, item)
        else:
            self.state.remove_pending(route.route_id, item)
        report.settled += 1

    def _run_post_action(
        self,
        route: RouteView,
        item: PendingDelivery,
        appended: bool,
        sessions: list[SourceSession],
    ) -> bool:
        """Exactly once: FileDelivered is the claim (a conditional append): the settler that
        appended it runs the post-action. One that finds it appended by someone else runs it
        only when that is older than :data:`POST_ACTION_RECOVERY_SECONDS` (its settler died
        between the two). True when the post-action is recorded as done."""
        ledger = self.app.ledger(route.route_id, item.path)
        if ledger is None:
            return False
        outcome = ledger.outcome(item.file_version)
        if outcome == "post_action_completed":
            return True
        if outcome != "delivered":
            return False
        if not appended and self.clock() - ledger.modified_on.timestamp() < (
            POST_ACTION_RECOVERY_SECONDS
        ):
            return False
        definition = route.definition
        if not sessions:
            endpoint = self.endpoints.get(definition.source.endpoint_id)
            if endpoint is None:
                return False
            sessions.append(self.sources.open(endpoint))
        marker = item.job_ids[0] if item.job_ids else route.route_id
        moved_to = _post_action(sessions[0], definition, item.path, marker)
        self.app.settle(
            route.route_id,
            item.path,
            item.file_version,
            post_action=(definition.post_action.value, moved_to),
        )
        return True


def _post_action(session: SourceSession, definition: Any, path: str, marker: str) -> str | None:
    """Delete or move the source (services/executor/post_actions.py: idempotent, and what a
    move writes is marked with ``marker``, a delivering job's id, so no route triggers on it)."""
    if definition.post_action == PostAction.DELETE:
        session.remove(path)
        return None
    destination = post_actions.destination(path, definition.move_to)
    session.move(path, destination, marker=marker)
    return destination


def _delivered_at(states: list[Any], fallback: float) -> datetime:
    """When the last fan-out job of a delivery finished (from the jobs' final events), so that
    an SLA deadline is judged by delivery time, not by when the settler ran."""
    finished = [s.finished_at for s in states if getattr(s, "finished_at", None)]
    if not finished:
        return utc(fallback)
    at = max(datetime.fromisoformat(f) for f in finished)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _guarded(files: Iterable[ListedFile]) -> Iterator[ListedFile]:
    """The listing itself: any failure of it is a :class:`ListingFailed` (the route's, not a
    file's)."""
    try:
        yield from files
    except ListingFailed:
        raise
    except Exception as error:
        raise ListingFailed(safe_reason(error)) from None


def _marker_path(path: str, template: str) -> str:
    directory, _, name = path.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    marker = template.format(name=name, stem=stem)
    return f"{directory}/{marker}" if directory else marker


def _is_marker(name: str, template: str | None) -> bool:
    if not template:
        return False
    names = template_fields(template)
    suffix = template.split("}", 1)[-1] if template.startswith("{") and len(names) == 1 else ""
    return bool(suffix) and name.endswith(suffix)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def build_scanner(
    *,
    settings: RoutesSettings | None = None,
    app: RoutesApplication | None = None,
    routes: RouteDirectory | None = None,
    sources: SourceOpener | None = None,
    state: ScanStateStore | None = None,
    job_status: JobStatusReader | None = None,
) -> Scanner:
    settings = settings or RoutesSettings()
    app = app or build_application(settings=settings)
    if sources is None:
        from services.routes.adapters import EndpointSourceOpener

        sources = EndpointSourceOpener(settings.endpoints)
    if job_status is None:
        from services.routes.adapters import DynamoJobStatusReader

        job_status = DynamoJobStatusReader(settings.jobs)
    return Scanner(
        app=app,
        routes=route_directory(settings, routes),
        endpoints=app.endpoints,
        sources=sources,
        state=scan_state(settings, state),
        job_status=job_status,
        policy=ScannerPolicy(
            dispatch_limit=settings.dispatch_limit,
            workers=settings.scan_workers,
            lease_seconds=settings.scan_lease_seconds,
            late_after_seconds=settings.late_after_seconds,
        ),
        expectations=Expectations(app, grace_seconds=settings.sla_grace_seconds),
    )


def tick_messages(settings: RoutesSettings | None = None) -> Iterator[None]:
    """One item per tick message on the tick queue (long poll; messages are deleted)."""
    import boto3

    settings = settings or RoutesSettings()
    if not settings.tick_queue_url:
        raise SystemExit("FERRY_ROUTES_TICK_QUEUE_URL is not set")
    sqs = boto3.client("sqs")
    while True:
        response = sqs.receive_message(
            QueueUrl=settings.tick_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=20
        )
        messages = response.get("Messages", [])
        if not messages:
            time.sleep(0.1)
            continue
        for message in messages:
            sqs.delete_message(
                QueueUrl=settings.tick_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        yield None  # several queued ticks collapse into one


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.routes.scanner")
    parser.add_argument("--once", action="store_true", help="run one tick and exit")
    args = parser.parse_args(argv)
    scanner = build_scanner()
    if args.once:
        logger.info("tick", report=scanner.tick(force=True).__dict__)
        return 0
    for _ in tick_messages():
        report = scanner.tick(wait=False)  # listings run on; the next tick skips those in flight
        logger.info("tick", report=report.__dict__)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
