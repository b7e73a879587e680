"""Replay: re-publish historic events from the event store to a new consumer (``ferry replay``).

The history is read from the customer-and-time index (the :class:`CustomerIndex` port of
``services.projections.audit``, paged by ``audit_export``'s reader), so the order is the index's:
(time, stream, version) within each customer, customers one after another in name order; within
a stream that is version order. Each event is published as a copy with ``detail.replayed = true``
(same ``event_id``) through a :class:`Publisher` (SQS or EventBridge in ``replay_adapters``), in
batches of at most 10, paced to ``rate`` events per second by a clock and a sleeper.

Resumable: a :class:`StateStore` keeps, after every publish call, the cursor (the customer and
the index position up to which everything is sent) and the ids sent beyond it (a partly
confirmed batch). A rerun of the same replay skips what is below the cursor and those ids, so
an interrupted replay sends nothing twice and loses nothing, except for one window: a process
killed after a publish call returned and before its state was written (a few milliseconds)
resends that batch; the copies have the same ``event_id``.

Refused targets: Ferry's own bus and queues (``ferry.names``), so a replay can never be fed
back into Ferry's own consumers.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlparse

from events.contract import EVENT_TYPES, FerryEvent
from events.translate import detail_type_of_topic, event_id_for, to_integration
from ferry.errors import Invalid
from ferry.names import ResourceNames
from services.projections.audit import CustomerIndex
from services.projections.audit_export import _index_items, _stored, export_window

__all__ = [
    "BATCH",
    "DEFAULT_RATE",
    "MAX_RATE",
    "Pacer",
    "PublishResult",
    "Publisher",
    "ReplayFailed",
    "ReplayPlan",
    "ReplayState",
    "StateStore",
    "Target",
    "check_target",
    "ferry_queue_names",
    "plan",
    "replay",
    "replayed_copy",
]

BATCH = 10  # SendMessageBatch and PutEvents take at most 10 entries
DEFAULT_RATE = 100.0
MAX_RATE = 10_000.0
ATTEMPTS = 5  # per batch: failed entries are retried this many times, then the replay stops
STATE_FORMAT = "ferry-replay-state-v1"


# --------------------------------------------------------------------------- ports


@dataclass(frozen=True)
class PublishResult:
    """What one publish call confirmed: the event ids accepted, and the failed ones (id ->
    the service's error code and message)."""

    sent: list[str]
    failed: dict[str, str] = field(default_factory=dict)


class Publisher(Protocol):
    def publish(self, events: Sequence[FerryEvent]) -> PublishResult:
        """Publish at most :data:`BATCH` events in one call. A raised exception means nothing
        of this call is confirmed (the replay stops; a rerun resends the unconfirmed ones)."""
        ...


class StateStore(Protocol):
    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any]) -> None:
        """Persist ``state`` durably before returning (a crash right after keeps it)."""
        ...

    def clear(self) -> None: ...


class ReplayFailed(Exception):
    """Entries still failing after :data:`ATTEMPTS` tries; what was confirmed is in the state."""

    def __init__(self, failed: dict[str, str]) -> None:
        first = next(iter(failed.items()))
        super().__init__(
            f"{len(failed)} event(s) not accepted after {ATTEMPTS} attempts "
            f"(first: {first[0]}: {first[1]}); rerun to resume"
        )
        self.failed = failed


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Target:
    kind: str  # "queue" | "bus"
    value: str  # queue URL | bus name or ARN

    @property
    def option(self) -> str:
        return "--to-queue" if self.kind == "queue" else "--to-bus"


def ferry_queue_names(names: ResourceNames) -> set[str]:
    """Every SQS queue of a Ferry deployment (each ``*_queue`` of :class:`ResourceNames`) and
    its dead-letter queue."""
    queues = {str(getattr(names, attr)) for attr in dir(ResourceNames) if attr.endswith("_queue")}
    return queues | {names.dlq(q) for q in queues}


def check_target(target: Target, deployments: Iterable[ResourceNames]) -> None:
    """:class:`Invalid` naming the option when ``target`` is malformed or one of Ferry's own
    (its bus or any of its queues, in any of ``deployments``)."""
    names = list(deployments)
    value = target.value.strip()
    if target.kind == "queue":
        parsed = urlparse(value)
        parts = [p for p in parsed.path.split("/") if p]
        if parsed.scheme not in ("http", "https") or not parsed.netloc or len(parts) != 2:
            raise Invalid(
                "--to-queue: an SQS queue URL such as "
                "https://sqs.eu-west-1.amazonaws.com/123456789012/audit-replay",
                field="--to-queue",
            )
        queue = parts[1]
        if any(queue in ferry_queue_names(n) for n in names):
            raise Invalid(
                f"--to-queue: {queue} is one of Ferry's own queues: replay to a new "
                "consumer's queue, never into Ferry",
                field="--to-queue",
            )
        return
    bus = value.rsplit("event-bus/", 1)[-1] if value.startswith("arn:") else value
    if not bus or "/" in bus or " " in bus:
        raise Invalid("--to-bus: an event bus name or ARN", field="--to-bus")
    if any(bus == n.bus for n in names):
        raise Invalid(
            f"--to-bus: {bus} is Ferry's own bus: replay to a new consumer's bus, never into "
            "Ferry (its rules would act on history again)",
            field="--to-bus",
        )
    if bus == "default":
        raise Invalid(
            "--to-bus: not the account's default bus (Ferry's S3 rules listen there): name "
            "the consumer's bus",
            field="--to-bus",
        )


@dataclass(frozen=True)
class ReplayPlan:
    since: str
    until: str
    customers: tuple[str, ...]
    detail_types: tuple[str, ...]
    target: Target
    scope: str | None = None  # "every customer": the customers are fixed by the first run

    @property
    def key(self) -> str:
        """The replay's identity: its state only resumes the same replay."""
        body = json.dumps(
            {
                "since": self.since,
                "until": self.until,
                "customers": self.scope or list(self.customers),
                "detail_types": list(self.detail_types),
                "target": [self.target.kind, self.target.value],
            },
            sort_keys=True,
        )
        return hashlib.sha256(body.encode()).hexdigest()


def plan(
    since: datetime | None,
    until: datetime | None,
    customers: Sequence[str],
    detail_types: Sequence[str],
    target: Target,
    deployments: Iterable[ResourceNames],
    *,
    scope: str | None = None,
) -> ReplayPlan:
    """Validate a replay's arguments (:class:`Invalid` naming the field) into a plan.
    ``scope`` names the replay instead of ``customers`` (e.g. "*" for every customer, whose
    list a resumed run takes from the state)."""
    low, high = export_window(since, until)
    unknown = sorted(set(detail_types) - set(EVENT_TYPES))
    if unknown:
        raise Invalid(
            f"--detail-type: unknown detail-type {unknown[0]!r} (see docs/events.md)",
            field="--detail-type",
        )
    check_target(target, deployments)
    return ReplayPlan(
        low, high, tuple(sorted(set(customers))), tuple(sorted(set(detail_types))), target, scope
    )


# --------------------------------------------------------------------------- state


@dataclass
class ReplayState:
    key: str
    customers: list[str]
    position: int = 0  # index into customers
    cursor: str | None = None  # at_key: everything of customers[position] up to it is done
    sent: list[str] = field(default_factory=list)  # ids sent beyond the cursor
    total_sent: int = 0
    done: bool = False
    format: str = STATE_FORMAT

    @classmethod
    def of(cls, document: dict[str, Any]) -> ReplayState:
        return cls(**{k: document[k] for k in cls.__dataclass_fields__ if k in document})


# --------------------------------------------------------------------------- pacing


class Pacer:
    """At most ``rate`` events per second on average: a call for ``n`` events waits until the
    previous calls' share of time has passed (the first batch goes at once)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self._next: float | None = None

    def wait(self, n: int) -> None:
        now = self.clock()
        if self._next is not None and self._next > now:
            self.sleep(self._next - now)
            now = self.clock()
        start = max(now, self._next) if self._next is not None else now
        self._next = start + n / self.rate


# --------------------------------------------------------------------------- the replay


def replayed_copy(event: FerryEvent) -> FerryEvent:
    return event.model_copy(update={"replayed": True})


@dataclass
class Progress:
    """What a replay did: ``sent`` in this run, ``total`` over every run of it, ``skipped``
    (already sent by an interrupted run), ``out_of_order`` (a stream's version below one
    already sent: never expected, reported if the index ever disagrees with version order)."""

    sent: int = 0
    total: int = 0
    skipped: int = 0
    scanned: int = 0
    out_of_order: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["events_per_second"] = round(self.sent / self.seconds, 1) if self.seconds else None
        return out


def _matches(item: dict[str, Any], customer: str, detail_types: Sequence[str]) -> bool:
    if str(item.get("customer_id", customer)) != customer:
        return False  # never another customer's (the index partition is the customer's)
    kind = detail_type_of_topic(str(item["topic"]))
    return kind is not None and (not detail_types or kind in detail_types)


def remaining(index: CustomerIndex, replay_plan: ReplayPlan, state: ReplayState) -> int:
    """How many events the replay has still to send from ``state`` (one index pass, no
    decoding: for the progress bar)."""
    count = 0
    already = set(state.sent)
    for position in range(state.position, len(state.customers)):
        customer = state.customers[position]
        cursor = state.cursor if position == state.position else None
        for item in _index_items(index, customer, cursor or replay_plan.since, replay_plan.until):
            if cursor is not None and str(item["at_key"]) <= cursor:
                continue
            event_id = event_id_for(str(item["stream_id"]), int(item["version"]))
            if _matches(item, customer, replay_plan.detail_types) and event_id not in already:
                count += 1
    return count


def start_state(replay_plan: ReplayPlan, store: StateStore, *, restart: bool) -> ReplayState:
    """The state to run from: the stored one of this replay, or a fresh one (``restart``, or
    none stored). :class:`Invalid` if the stored state belongs to another replay."""
    if restart:
        store.clear()
    document = store.load()
    if document is None:
        state = ReplayState(key=replay_plan.key, customers=list(replay_plan.customers))
        store.save(asdict(state))
        return state
    if document.get("format") != STATE_FORMAT or document.get("key") != replay_plan.key:
        raise Invalid(
            "--state: the state file belongs to another replay (other period, customers, "
            "types or target): pass --restart to start over or another --state",
            field="--state",
        )
    return ReplayState.of(document)


def replay(
    index: CustomerIndex,
    publisher: Publisher,
    store: StateStore,
    replay_plan: ReplayPlan,
    state: ReplayState,
    *,
    rate: float = DEFAULT_RATE,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """Publish every event of the plan not yet sent according to ``state`` (which is saved in
    ``store`` after every publish call). Raises :class:`ReplayFailed` when entries keep failing
    and lets a publisher's exception through; the state then holds what was confirmed."""
    if not 0 < rate <= MAX_RATE:
        raise Invalid(
            f"--rate: events per second, more than 0 and at most {MAX_RATE:g}", field="--rate"
        )
    pacer = Pacer(rate, clock, sleep)
    size = max(1, min(BATCH, int(rate)))
    report = Progress(total=state.total_sent)
    started = clock()
    heads: dict[str, int] = {}
    already = set(state.sent)

    def save() -> None:
        store.save(asdict(state))

    def send(batch: list[tuple[str, FerryEvent]]) -> None:
        # a batch may pass ``size`` by the rest of one append (see below): calls of ``size``
        for start in range(0, len(batch), size):
            send_part(batch[start : start + size])

    def send_part(batch: list[tuple[str, FerryEvent]]) -> None:
        pending = {e.event_id: e for _, e in batch}
        for attempt in range(ATTEMPTS):
            if attempt:
                sleep(min(5.0, 0.2 * 2**attempt))
            pacer.wait(len(pending))
            result = publisher.publish([replayed_copy(e) for e in pending.values()])
            confirmed = [i for i in result.sent if i in pending]
            for event_id in confirmed:
                del pending[event_id]
            state.sent.extend(confirmed)
            state.total_sent += len(confirmed)
            report.sent += len(confirmed)
            report.total = state.total_sent
            save()  # right after the call: what was confirmed is never sent again
            if progress is not None:
                progress(report)
            if not pending:
                return
            failed = {i: result.failed.get(i, "not confirmed") for i in pending}
        raise ReplayFailed(failed)

    while not state.done:
        if state.position >= len(state.customers):
            state.done, state.cursor, state.sent = True, None, []
            save()
            break
        customer = state.customers[state.position]
        cursor = state.cursor
        batch: list[tuple[str, FerryEvent]] = []
        passed: set[str] = set()  # ids of ``already`` met while scanning
        for item in _index_items(index, customer, cursor or replay_plan.since, replay_plan.until):
            at_key = str(item["at_key"])
            if cursor is not None and at_key <= cursor:
                continue
            if len(batch) >= size and at_key != batch[-1][0]:
                # a full batch goes out where a new index entry starts: the events of one
                # append share their entry's at_key, and the cursor must never split them
                send(batch)
                sent_now = {e.event_id for _, e in batch}
                # everything scanned is at or below the new cursor: keep only the ids of an
                # interrupted run's batch that lie beyond it (not scanned yet)
                state.cursor = batch[-1][0]
                state.sent = [i for i in state.sent if i not in passed and i not in sent_now]
                already = set(state.sent)
                batch = []
                save()
            report.scanned += 1
            if not _matches(item, customer, replay_plan.detail_types):
                continue
            event = to_integration(_stored(item, bytes(item["state"])))
            if event is None or event.customer_id != customer:
                continue
            if heads.get(event.stream_id, 0) >= event.version:
                report.out_of_order += 1
            heads[event.stream_id] = max(heads.get(event.stream_id, 0), event.version)
            if event.event_id in already:
                report.skipped += 1
                passed.add(event.event_id)
            else:
                batch.append((at_key, event))
        if batch:
            send(batch)
        state.position += 1
        state.cursor, state.sent = None, []
        already = set()
        save()
    report.seconds = clock() - started
    return report
