"""Replay from the event store, on in-memory adapters: the customer-and-time index of a scripted
two-customer history, a recording publisher, a state dict and a fake clock. Given a history,
when replayed (and interrupted, and resumed), then every event is sent exactly once, in version
order per stream, marked replayed, paced to the rate; Ferry's own bus and queues are refused."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOAggregateRecorder

from events.contract import FerryEvent
from ferry.errors import Invalid
from ferry.names import ResourceNames
from services.projections.replay import (
    Pacer,
    Publisher,
    PublishResult,
    ReplayFailed,
    ReplayPlan,
    StateStore,
    Target,
    check_target,
    plan,
    remaining,
    replay,
    start_state,
)
from services.projections.samples import History, to_stored
from tests.support.fakes.audit import InMemoryChainStore, InMemoryCustomerIndex

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SINCE, UNTIL = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)
QUEUE = Target("queue", "http://127.0.0.1:5000/123456789012/downstream-replay")
FERRY = [ResourceNames()]


class Scripted:
    """acme: two endpoints and three jobs (two succeed, one fails); globex: one job."""

    def __init__(self) -> None:
        self.recorder = POPOAggregateRecorder()
        h = History(start=START, step=timedelta(minutes=7))
        src, dst = h.endpoint("acme", endpoint_type="s3"), h.endpoint("acme")
        self.acme_jobs = [h.job("acme", src, dst), h.job("acme", src, dst, outcome="failed")]
        self.acme_jobs.append(h.job("acme", src, dst))
        g_src, g_dst = h.endpoint("globex"), h.endpoint("globex")
        self.globex_job = h.job("globex", g_src, g_dst)
        self.history = h
        by_stream: dict[str, list[StoredEvent]] = {}
        for event in h.events:
            by_stream.setdefault(event.stream_id, []).append(to_stored(event))
        for stored in by_stream.values():
            self.recorder.insert_events(stored)
        self.index = InMemoryCustomerIndex(InMemoryChainStore(self.recorder))

    def of(self, customer: str, kind: str | None = None) -> list[FerryEvent]:
        return [
            e
            for e in self.history.events
            if e.customer_id == customer and (kind is None or e.detail_type() == kind)
        ]


@pytest.fixture(scope="module")
def scripted() -> Scripted:
    return Scripted()


class RecordingPublisher(Publisher):
    """Accepts everything. ``fail_after``: once that many events were accepted, the rest of
    the call are failed entries and the next call raises (the process dies mid-batch).
    ``reject``: those event ids are answered as failed entries ``times`` times."""

    def __init__(self, fail_after: int | None = None, reject: Sequence[str] = (), times: int = 1):
        self.received: list[FerryEvent] = []
        self.calls: list[int] = []
        self.fail_after = fail_after
        self.dying = False
        self.rejections = {i: times for i in reject}

    def publish(self, events: Sequence[FerryEvent]) -> PublishResult:
        assert len(events) <= 10
        self.calls.append(len(events))
        sent, failed = [], {}
        if self.dying:
            raise ConnectionError("killed")
        for event in events:
            if self.fail_after is not None and len(self.received) >= self.fail_after:
                self.dying = True  # this call confirms what it took; the next one crashes
                failed[event.event_id] = "ServiceUnavailable: going down"
                continue
            if self.rejections.get(event.event_id, 0) > 0:
                self.rejections[event.event_id] -= 1
                failed[event.event_id] = "InternalError: try again"
                continue
            self.received.append(event)
            sent.append(event.event_id)
        return PublishResult(sent=sent, failed=failed)


class MemoryState(StateStore):
    def __init__(self) -> None:
        self.document: dict[str, Any] | None = None
        self.saves = 0

    def load(self) -> dict[str, Any] | None:
        return (
            None if self.document is None else dict(self.document, sent=list(self.document["sent"]))
        )

    def save(self, state: dict[str, Any]) -> None:
        self.document = dict(state, sent=list(state["sent"]))
        self.saves += 1

    def clear(self) -> None:
        self.document = None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _plan(customers: Sequence[str], types: Sequence[str] = ()) -> ReplayPlan:
    return plan(SINCE, UNTIL, customers, types, QUEUE, FERRY)


def _run(
    scripted: Scripted,
    replay_plan: ReplayPlan,
    publisher: RecordingPublisher,
    store: MemoryState,
    *,
    rate: float = 1000,
    clock: FakeClock | None = None,
    restart: bool = False,
) -> Any:
    clock = clock or FakeClock()
    state = start_state(replay_plan, store, restart=restart)
    return replay(
        scripted.index, publisher, store, replay_plan, state, rate=rate, clock=clock,
        sleep=clock.sleep,
    )  # fmt: skip


def _doc(store: MemoryState) -> dict[str, Any]:
    assert store.document is not None
    return store.document


def _ids(events: Sequence[FerryEvent]) -> list[str]:
    return [e.event_id for e in events]


def test_every_jobsucceeded_of_the_customer_once_marked_replayed(scripted: Scripted) -> None:
    publisher, store = RecordingPublisher(), MemoryState()
    report = _run(scripted, _plan(["acme"], ["JobSucceeded"]), publisher, store)
    expected = scripted.of("acme", "JobSucceeded")
    assert len(expected) == 2
    assert _ids(publisher.received) == _ids(expected)
    assert all(e.replayed for e in publisher.received)
    assert all(e.customer_id == "acme" for e in publisher.received)
    assert '"replayed":true' in publisher.received[0].model_dump_json()
    assert report.sent == 2 and report.total == 2 and _doc(store)["done"]


def test_all_types_in_version_order_per_stream_across_customers(scripted: Scripted) -> None:
    publisher, store = RecordingPublisher(), MemoryState()
    report = _run(scripted, _plan(["globex", "acme"]), publisher, store)
    expected = scripted.of("acme") + scripted.of("globex")  # customers in name order
    assert sorted(_ids(publisher.received)) == sorted(_ids(expected))
    assert len(set(_ids(publisher.received))) == len(publisher.received)
    assert [e.customer_id for e in publisher.received] == [e.customer_id for e in expected]
    per_stream: dict[str, list[int]] = {}
    for event in publisher.received:
        per_stream.setdefault(event.stream_id, []).append(event.version)
    for stream, versions in per_stream.items():
        assert versions == sorted(versions), stream
        assert versions == [e.version for e in expected if e.stream_id == stream]
    assert report.out_of_order == 0
    assert max(publisher.calls) == 10


def test_detail_type_filter_keeps_only_those_types(scripted: Scripted) -> None:
    publisher = RecordingPublisher()
    _run(scripted, _plan(["acme"], ["JobFailed", "EndpointRegistered"]), publisher, MemoryState())
    kinds = [e.detail_type() for e in publisher.received]
    assert sorted(set(kinds)) == ["EndpointRegistered", "JobFailed"]
    assert kinds.count("JobFailed") == 1 and kinds.count("EndpointRegistered") == 2


@pytest.mark.parametrize("after", [3, 10, 14, 27])
@pytest.mark.parametrize("resume_rate", [1000, 1])  # batches of 10, then of 1
def test_a_crash_mid_batch_then_resume_sends_nothing_twice(
    scripted: Scripted, after: int, resume_rate: float
) -> None:
    replay_plan, store = _plan(["acme"]), MemoryState()
    crashing = RecordingPublisher(fail_after=after)
    with pytest.raises(ConnectionError):
        _run(scripted, replay_plan, crashing, store)
    assert len(crashing.received) == after
    assert _doc(store)["total_sent"] == after and not _doc(store)["done"]
    expected = _ids(scripted.of("acme"))
    state = start_state(replay_plan, store, restart=False)
    assert remaining(scripted.index, replay_plan, state) == len(expected) - after
    resumed = RecordingPublisher()
    report = _run(scripted, replay_plan, resumed, store, rate=resume_rate)
    both = _ids(crashing.received) + _ids(resumed.received)
    assert sorted(both) == sorted(expected) and len(both) == len(set(both))
    assert report.sent == len(expected) - after and report.total == len(expected)
    again = RecordingPublisher()
    assert _run(scripted, replay_plan, again, store).sent == 0 and again.received == []
    restarted = RecordingPublisher()
    _run(scripted, replay_plan, restarted, store, restart=True)
    assert _ids(restarted.received) == expected  # --restart: the whole replay again, in order


def test_failed_entries_are_retried_and_never_counted(scripted: Scripted) -> None:
    acme = scripted.of("acme")
    flaky = [acme[1].event_id, acme[12].event_id]
    publisher, store = RecordingPublisher(reject=flaky, times=2), MemoryState()
    report = _run(scripted, _plan(["acme"]), publisher, store)
    assert sorted(_ids(publisher.received)) == sorted(_ids(acme))
    assert report.sent == len(acme) == _doc(store)["total_sent"]


@pytest.mark.parametrize("resume_rate", [1000, 1])  # batches of 10, then of 1
def test_entries_failing_every_attempt_stop_the_replay_and_resume_later(
    scripted: Scripted, resume_rate: float
) -> None:
    acme = scripted.of("acme")
    replay_plan, store = _plan(["acme"]), MemoryState()
    stubborn = RecordingPublisher(reject=[acme[15].event_id], times=99)
    with pytest.raises(ReplayFailed) as failure:
        _run(scripted, replay_plan, stubborn, store)
    assert acme[15].event_id in failure.value.failed
    assert acme[15].event_id not in _ids(stubborn.received)
    assert _doc(store)["total_sent"] == len(stubborn.received)
    later = RecordingPublisher()
    _run(scripted, replay_plan, later, store, rate=resume_rate)
    assert _ids(later.received)[0] == acme[15].event_id
    both = _ids(stubborn.received) + _ids(later.received)
    assert sorted(both) == sorted(_ids(acme)) and len(both) == len(set(both))


def test_the_rate_is_honoured_on_a_fake_clock(scripted: Scripted) -> None:
    clock, publisher = FakeClock(), RecordingPublisher()
    sent_at: list[tuple[float, int]] = []
    original = publisher.publish

    def timed(events: Sequence[FerryEvent]) -> PublishResult:
        sent_at.append((clock.now, len(events)))
        return original(events)

    publisher.publish = timed  # type: ignore[method-assign]
    n = len(scripted.of("acme"))
    _run(scripted, _plan(["acme"]), publisher, MemoryState(), rate=5, clock=clock)
    assert {size for _, size in sent_at[:-1]} == {5}  # batches of the rate when below 10
    started = sent_at[0][0]
    done = 0
    for at, size in sent_at:
        assert at - started >= done / 5 - 1e-9  # never ahead of 5 events/s
        done += size
    assert sent_at[-1][0] - started == pytest.approx((n - sent_at[-1][1]) / 5)


def test_the_pacer_waits_only_for_what_is_owed() -> None:
    clock = FakeClock()
    pacer = Pacer(10, clock, clock.sleep)
    pacer.wait(10)
    assert clock.slept == []
    clock.now += 0.4
    pacer.wait(10)
    assert clock.slept == [pytest.approx(0.6)]
    clock.now += 5  # idle: no burst credit beyond the next batch
    pacer.wait(10)
    assert clock.slept == [pytest.approx(0.6)]


@pytest.mark.parametrize(
    ("target", "option"),
    [
        (Target("bus", "ferry-bus"), "--to-bus"),
        (Target("bus", "arn:aws:events:us-east-1:123456789012:event-bus/ferry-bus"), "--to-bus"),
        (Target("bus", "default"), "--to-bus"),
        (Target("bus", "staging-bus"), "--to-bus"),  # the deployment prefix "staging"
        (Target("queue", "http://127.0.0.1:5000/123456789012/ferry-executor"), "--to-queue"),
        (Target("queue", "https://sqs.x.amazonaws.com/1/ferry-projections-dlq"), "--to-queue"),
        (Target("queue", "https://sqs.x.amazonaws.com/1/staging-notifications"), "--to-queue"),
        (Target("queue", "ferry-executor"), "--to-queue"),  # not a URL
        (Target("bus", "a bus"), "--to-bus"),
    ],
)
def test_ferry_own_targets_and_malformed_ones_are_refused(target: Target, option: str) -> None:
    with pytest.raises(Invalid) as refused:
        check_target(target, [ResourceNames(), ResourceNames("staging")])
    assert refused.value.field == option and option in refused.value.message


def test_a_downstream_target_is_accepted_and_bad_arguments_name_their_field() -> None:
    check_target(Target("bus", "acme-audit"), FERRY)
    check_target(Target("queue", "https://sqs.x.amazonaws.com/1/ferry-executor-copy"), FERRY)
    cases = [
        ((UNTIL, SINCE, ["acme"], [], QUEUE), "since"),
        ((None, UNTIL, ["acme"], [], QUEUE), "since"),
        ((SINCE, datetime(2026, 3, 31), ["acme"], [], QUEUE), "until"),
        ((SINCE, UNTIL, ["acme"], ["JobSucceded"], QUEUE), "--detail-type"),
        ((SINCE, UNTIL, ["acme"], [], Target("bus", "ferry-bus")), "--to-bus"),
    ]
    for args, name in cases:
        with pytest.raises(Invalid) as bad:
            plan(*args, FERRY)
        assert bad.value.field == name


def test_a_state_of_another_replay_is_refused_and_rate_is_checked(scripted: Scripted) -> None:
    store = MemoryState()
    _run(scripted, _plan(["acme"], ["JobSucceeded"]), RecordingPublisher(), store)
    with pytest.raises(Invalid) as other:
        start_state(_plan(["acme"]), store, restart=False)
    assert other.value.field == "--state"
    with pytest.raises(Invalid) as rate:
        _run(scripted, _plan(["globex"]), RecordingPublisher(), MemoryState(), rate=0)
    assert rate.value.field == "--rate"
