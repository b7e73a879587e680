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
single tick and exits.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeVar

from aws_lambda_powertools import Logger

from events.contract import EndpointStatus, PostAction
from services.routes.application import Candidate, RoutesApplication, RouteView, utc
from services.routes.definition import cron_matches, every_seconds, template_fields
from services.routes.ports import (
    EndpointDirectory,
    JobStatusReader,
    ListedFile,
    PendingDelivery,
    RouteDirectory,
    ScanState,
    ScanStateStore,
    SourceOpener,
    SourceSession,
)

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

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


@dataclass(frozen=True)
class ScannerPolicy:
    dispatch_limit: int = 100  # jobs-creating files per route per tick (backpressure)
    settle_limit: int = 200  # pending deliveries checked per route per tick


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
    ) -> None:
        self.app = app
        self.routes = routes
        self.endpoints = endpoints
        self.sources = sources
        self.state = state
        self.job_status = job_status
        self.policy = policy or ScannerPolicy()
        self.clock = clock

    # -- the tick ----------------------------------------------------------------------------

    def tick(self, now: float | None = None, *, force: bool = False) -> TickReport:
        now = self.clock() if now is None else now
        report = TickReport()
        for route_id, customer_id, definition in self.routes.enabled_routes("schedule"):
            route = RouteView.of(route_id, customer_id, definition)
            if force or self.due(route, now):
                try:
                    self.scan(route, now, report)
                except Exception:  # one broken route must not stop the others
                    logger.exception("scan failed", route_id=route_id)
        for trigger in ("schedule", "event"):
            for route_id, customer_id, definition in self.routes.enabled_routes(trigger):
                route = RouteView.of(route_id, customer_id, definition)
                try:
                    self.settle(route, report)
                except Exception:
                    logger.exception("settle failed", route_id=route_id)
        return report

    def due(self, route: RouteView, now: float) -> bool:
        trigger = route.definition.trigger
        last = self.state.last_tick(route.route_id)
        if trigger.every is not None:
            return last is None or now - last >= every_seconds(trigger.every) - 0.5
        assert trigger.cron is not None
        if last is not None and int(last // 60) == int(now // 60):
            return False
        return cron_matches(trigger.cron, datetime.fromtimestamp(now, UTC))

    # -- listing and deciding -----------------------------------------------------------------

    def scan(self, route: RouteView, now: float, report: TickReport) -> None:
        source = route.definition.source
        endpoint = self.endpoints.get(source.endpoint_id)
        if endpoint is None or endpoint.status == EndpointStatus.DISABLED:
            logger.warning("source endpoint unavailable", route_id=route.route_id)
            return
        self.state.set_last_tick(route.route_id, now)
        report.routes_scanned += 1
        session = self.sources.open(endpoint)
        budget = [self.policy.dispatch_limit]
        try:
            files = session.iter_files(source.path, source.recursive)
            for page in _pages(files, PAGE):
                report.listed += len(page)
                known = self.state.get_many(route.route_id, [f.path for f in page])
                writes: list[ScanState] = []
                pendings: list[PendingDelivery] = []
                for listed in page:
                    old = known.get(listed.path)
                    new = self._evaluate(route, session, listed, old, now, budget, report, pendings)
                    if new is not None and new != old:
                        writes.append(new)
                if pendings:
                    self.state.add_pending(route.route_id, pendings)
                if writes:
                    self.state.put_many(route.route_id, writes)
                    report.state_writes += len(writes)
        finally:
            session.close()

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
        base = source.path.rstrip("/") + "/" if source.path else ""
        relpath = listed.path[len(base) :]
        name = relpath.rsplit("/", 1)[-1]
        if _is_marker(name, stable.done_marker):
            return None
        version = file_version(listed.size, listed.mtime, listed.etag)
        new = (
            ScanState(listed.path, listed.size, listed.mtime, 1, now)
            if old is None
            else old.observe(listed.size, listed.mtime)
        )
        new = replace(new, checks=min(new.checks, stable.checks))
        grew = old is not None and (old.size, old.mtime) != (listed.size, listed.mtime)
        candidate = Candidate(
            path=listed.path,
            relpath=relpath,
            size=listed.size,
            modified_at=utc(listed.mtime),
            file_version=version,
            key_parts=(listed.path, version),
            first_seen_at=utc(new.first_seen),
        )

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
        pending = self.state.pending(route.route_id, self.policy.settle_limit)
        if not pending:
            return
        session: SourceSession | None = None
        definition = route.definition
        try:
            for item in pending:
                states = [self.job_status.get(job_id) for job_id in item.job_ids]
                if any(s is None for s in states):
                    continue
                failed = [
                    (job_id, s.error_code or s.status, s.error_message or s.status)
                    for job_id, s in zip(item.job_ids, states, strict=True)
                    if s is not None and s.status in FINAL_BAD
                ]
                if failed:
                    self.app.settle(route.route_id, item.path, item.file_version, failed=failed)
                elif all(s is not None and s.status == FINAL_OK for s in states):
                    if definition.post_action == PostAction.NONE:
                        self.app.settle(route.route_id, item.path, item.file_version)
                    else:
                        if session is None:
                            endpoint = self.endpoints.get(definition.source.endpoint_id)
                            if endpoint is None:
                                return
                            session = self.sources.open(endpoint)
                        moved_to = _post_action(session, definition, item.path)
                        self.app.settle(
                            route.route_id,
                            item.path,
                            item.file_version,
                            post_action=(definition.post_action.value, moved_to),
                        )
                else:
                    continue  # not final yet
                self.state.remove_pending(route.route_id, item)
                report.settled += 1
        finally:
            if session is not None:
                session.close()


def _post_action(session: SourceSession, definition: Any, path: str) -> str | None:
    if definition.post_action == PostAction.DELETE:
        session.remove(path)
        return None
    name = path.rsplit("/", 1)[-1]
    destination = f"{definition.move_to.rstrip('/')}/{name}"
    session.move(path, destination)
    return destination


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.routes.scanner")
    parser.add_argument("--once", action="store_true", help="run one tick and exit")
    args = parser.parse_args(argv)
    from services.routes.bootstrap import build_scanner, tick_messages

    scanner = build_scanner()
    if args.once:
        logger.info("tick", report=scanner.tick(force=True).__dict__)
        return 0
    for _ in tick_messages():
        report = scanner.tick()
        logger.info("tick", report=report.__dict__)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
