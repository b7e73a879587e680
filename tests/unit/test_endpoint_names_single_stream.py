"""Endpoint names stay unique per customer without transactions (MRSC global tables): the
name claim is appended first, then the endpoint's event, then the claim is confirmed; a claim
whose holder is not a live endpoint with that name is taken over only after the grace period.
Against the single-stream in-memory recorder (tests/support/single_stream.py), which refuses an
append over two streams as the DynamoDB store does; crashes and racing writers are
interleaved between the appends through its hooks."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.contract import EndpointConfig, EndpointType
from services.endpoints.application import NAME_CLAIM_GRACE, EndpointsApplication, Registration
from services.endpoints.domain import Endpoint, EndpointName, EndpointNameTaken, name_claim_id
from tests.support.fakes.endpoints import InMemorySecretStore
from tests.support.single_stream import SINGLE_STREAM, Crash, SingleStreamRecorder

CUSTOMER = "cust-a"
AFTER_GRACE = NAME_CLAIM_GRACE + timedelta(seconds=1)


@dataclass
class Clock:
    """Real time plus ``ahead`` (claim events carry the real time of their append)."""

    ahead: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def secrets() -> InMemorySecretStore:
    return InMemorySecretStore()


@pytest.fixture
def app(clock: Clock, secrets: InMemorySecretStore) -> EndpointsApplication:
    return EndpointsApplication(
        secrets=secrets, env=SINGLE_STREAM, is_reserved_bucket=lambda b: False, clock=clock
    )


def recorder(app: EndpointsApplication) -> SingleStreamRecorder:
    assert isinstance(app.recorder, SingleStreamRecorder)
    return app.recorder


def register(app: EndpointsApplication, name: str) -> Endpoint:
    registration = Registration(
        name=name,
        direction="BOTH",
        max_concurrency=1,
        config=EndpointConfig(type=EndpointType.S3, bucket="customer-bucket"),
    )
    return app.register(customer_id=CUSTOMER, actor="key-1", registration=registration)


def rename(app: EndpointsApplication, endpoint: Endpoint, name: str, **more: Any) -> Endpoint:
    return app.update(
        customer_id=CUSTOMER,
        endpoint_id=endpoint.id,
        actor="key-1",
        changes={"name": name, **more},
    )


def claim(app: EndpointsApplication, name: str) -> EndpointName:
    found: object = app.repository.get(name_claim_id(CUSTOMER, name))
    assert isinstance(found, EndpointName)
    return found


def live(app: EndpointsApplication, name: str) -> list[Endpoint]:
    """Every endpoint ever appended that is not retired and has ``name`` now."""
    found = []
    for stream in set(recorder(app).appended):
        aggregate: object = app.repository.get(stream)
        if isinstance(aggregate, Endpoint) and not aggregate.retired and aggregate.name == name:
            found.append(aggregate)
    return found


# --- the protocol's appends ------------------------------------------------------------------
def test_a_registration_claims_then_registers_then_confirms(app: EndpointsApplication) -> None:
    endpoint = register(app, "inbox")
    claim_id = name_claim_id(CUSTOMER, "inbox")
    assert recorder(app).appended == [claim_id, endpoint.id, claim_id]
    assert claim(app, "inbox").holder == str(endpoint.id)


def test_a_rename_within_the_same_name_key_touches_no_claim(app: EndpointsApplication) -> None:
    endpoint = register(app, "inbox")
    appended = len(recorder(app).appended)
    rename(app, endpoint, "INBOX")
    assert recorder(app).appended[appended:] == [endpoint.id]


def test_a_rename_releases_the_old_name(app: EndpointsApplication) -> None:
    first = register(app, "inbox")
    rename(app, first, "landing")
    assert claim(app, "inbox").holder is None
    assert claim(app, "landing").holder == str(first.id)
    with pytest.raises(EndpointNameTaken):
        register(app, "landing")
    second = register(app, "inbox")  # free at once: no grace period for a released name
    assert claim(app, "inbox").holder == str(second.id)


def test_retiring_releases_the_name(app: EndpointsApplication) -> None:
    first = register(app, "inbox")
    app.retire(customer_id=CUSTOMER, endpoint_id=first.id, actor="key-1")
    assert claim(app, "inbox").holder is None
    second = register(app, "inbox")
    assert [e.id for e in live(app, "inbox")] == [second.id]


# --- races: exactly one endpoint per name ----------------------------------------------------
def test_racing_registrations_on_threads_make_one_endpoint(app: EndpointsApplication) -> None:
    barrier = threading.Barrier(6)
    outcomes: list[object] = []

    def racer() -> None:
        barrier.wait()
        try:
            outcomes.append(register(app, "raced"))
        except Exception as error:
            outcomes.append(error)

    threads = [threading.Thread(target=racer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [o for o in outcomes if isinstance(o, Endpoint)]
    assert len(winners) == 1, outcomes
    assert sum(isinstance(o, EndpointNameTaken) for o in outcomes) == 5, outcomes
    assert [e.id for e in live(app, "raced")] == [winners[0].id]


def test_a_registration_in_flight_is_not_taken_over(app: EndpointsApplication) -> None:
    # Given a registration between its claim and its endpoint event, a second one of the name
    losers: list[EndpointNameTaken] = []

    def second() -> None:
        try:
            register(app, "inbox")
        except EndpointNameTaken as taken:
            losers.append(taken)

    recorder(app).before_append(2, second)
    first = register(app, "inbox")
    # Then the second one is refused (the claim is younger than the grace period)
    assert len(losers) == 1 and losers[0].field == "name"
    assert [e.id for e in live(app, "inbox")] == [first.id]


def test_a_slow_registration_taken_over_is_retired_and_refused(
    app: EndpointsApplication, clock: Clock, secrets: InMemorySecretStore
) -> None:
    # Given a registration so slow between its claim and its endpoint event that the grace
    # period passes, and another registration of the name meanwhile (which takes it over)
    taker: list[Endpoint] = []

    def later_registration() -> None:
        clock.ahead = AFTER_GRACE
        taker.append(register(app, "inbox"))

    recorder(app).before_append(2, later_registration)
    # When the slow one writes its endpoint event and tries to confirm its claim
    with pytest.raises(EndpointNameTaken) as refused:
        register(app, "inbox")
    # Then it lost: its endpoint is retired (a normal domain event), its answer is 409 name
    assert refused.value.field == "name"
    assert [e.id for e in live(app, "inbox")] == [taker[0].id]
    assert claim(app, "inbox").holder == str(taker[0].id)
    streams: list[object] = [app.repository.get(s) for s in set(recorder(app).appended)]
    assert sum(isinstance(a, Endpoint) and a.retired for a in streams) == 1


def test_a_take_over_that_read_the_holder_too_early_loses_to_its_confirmation(
    app: EndpointsApplication, clock: Clock
) -> None:
    # Given registration A paused between its claim and its endpoint event, past the grace
    # period, and registration B that found A's endpoint missing and decided to take over
    a_paused, a_go = threading.Event(), threading.Event()
    outcome: list[object] = []

    def pause() -> None:
        a_paused.set()
        a_go.wait(timeout=10)

    def registration_a() -> None:
        try:
            outcome.append(register(app, "inbox"))
        except Exception as error:  # pragma: no cover - reported below
            outcome.append(error)

    recorder(app).before_append(2, pause)
    thread_a = threading.Thread(target=registration_a)
    thread_a.start()
    assert a_paused.wait(timeout=10)
    clock.ahead = AFTER_GRACE

    def a_finishes_first() -> None:  # just before B's take-over is appended
        a_go.set()
        thread_a.join(timeout=10)

    recorder(app).before_append(1, a_finishes_first)
    # When B's take-over is appended after A wrote its endpoint and confirmed the claim
    with pytest.raises(EndpointNameTaken):
        register(app, "inbox")
    # Then A keeps the name: one live endpoint, the claim is A's
    assert len(outcome) == 1 and isinstance(outcome[0], Endpoint), outcome
    assert [e.id for e in live(app, "inbox")] == [outcome[0].id]
    assert claim(app, "inbox").holder == str(outcome[0].id)


def test_a_slow_rename_taken_over_is_reverted_and_refused(
    app: EndpointsApplication, clock: Clock
) -> None:
    # Given endpoint E "inbox" renamed to "landing" (and its concurrency changed) so slowly
    # that "landing" is taken over between E's claim and E's event
    endpoint = register(app, "inbox")
    taker: list[Endpoint] = []

    def later_registration() -> None:
        clock.ahead = AFTER_GRACE
        taker.append(register(app, "landing"))

    # E's appends: refresh "inbox" (1), claim "landing" (2), EndpointUpdated (3), ...
    recorder(app).before_append(3, later_registration)
    with pytest.raises(EndpointNameTaken):
        rename(app, endpoint, "landing", max_concurrency=3)
    # Then E's update is reverted (name and concurrency), E keeps "inbox" validly
    current = app.get(endpoint.id)
    assert (current.name, current.max_concurrency, current.retired) == ("inbox", 1, False)
    assert claim(app, "inbox").holder == str(endpoint.id)
    assert [e.id for e in live(app, "landing")] == [taker[0].id]
    # and "inbox" stays E's even after the grace period
    with pytest.raises(EndpointNameTaken):
        register(app, "inbox")


# --- crashes: a name is never blocked for ever ----------------------------------------------
def test_a_crash_between_claim_and_endpoint_blocks_the_name_for_the_grace_period_only(
    app: EndpointsApplication, clock: Clock, secrets: InMemorySecretStore
) -> None:
    # Given a registration that died after its claim (its clean-up appends failed too)
    recorder(app).crash_on(2, times=2)
    with pytest.raises(Crash):
        register(app, "inbox")
    assert claim(app, "inbox").holder is not None  # an orphan claim: no such endpoint
    assert not secrets.names  # the secret-less S3 registration left no secret either
    # When the name is registered again within the grace period: refused
    clock.ahead = NAME_CLAIM_GRACE - timedelta(seconds=5)
    with pytest.raises(EndpointNameTaken):
        register(app, "inbox")
    # After the grace period: the orphan claim is taken over, one endpoint has the name
    clock.ahead = AFTER_GRACE
    endpoint = register(app, "inbox")
    assert claim(app, "inbox").holder == str(endpoint.id)
    assert [e.id for e in live(app, "inbox")] == [endpoint.id]


def test_a_crash_before_a_rename_releases_the_old_name(
    app: EndpointsApplication, clock: Clock
) -> None:
    # Given E renamed "inbox" → "landing", the process gone before "inbox" was released
    endpoint = register(app, "inbox")
    # E's appends: refresh "inbox" (1), claim "landing" (2), EndpointUpdated (3),
    # confirm "landing" (4), release "inbox" (5)
    recorder(app).crash_on(5)
    assert rename(app, endpoint, "landing").name == "landing"  # the rename itself is done
    assert claim(app, "inbox").holder == str(endpoint.id)  # left behind
    with pytest.raises(EndpointNameTaken):
        register(app, "inbox")  # within the grace period
    clock.ahead = AFTER_GRACE
    other = register(app, "inbox")
    assert [e.id for e in live(app, "inbox")] == [other.id]
    assert [e.id for e in live(app, "landing")] == [endpoint.id]


def test_a_crash_before_retire_releases_the_name(app: EndpointsApplication, clock: Clock) -> None:
    endpoint = register(app, "inbox")
    recorder(app).crash_on(2)  # EndpointRetired (1), release (2)
    app.retire(customer_id=CUSTOMER, endpoint_id=endpoint.id, actor="key-1")
    assert claim(app, "inbox").holder == str(endpoint.id)
    with pytest.raises(EndpointNameTaken):
        register(app, "inbox")
    clock.ahead = AFTER_GRACE
    other = register(app, "inbox")
    assert [e.id for e in live(app, "inbox")] == [other.id]


def test_a_valid_claim_is_never_taken_over(app: EndpointsApplication, clock: Clock) -> None:
    endpoint = register(app, "inbox")
    clock.ahead = timedelta(days=365)
    with pytest.raises(EndpointNameTaken):
        register(app, "INBOX ")  # the same name as claim ids normalise it
    assert [e.id for e in live(app, "inbox")] == [endpoint.id]


def test_two_renames_of_one_endpoint_to_one_name_keep_its_claim(app: EndpointsApplication) -> None:
    # Given a rename of E to "landing" that a second identical rename overtakes before E's event
    endpoint = register(app, "inbox")
    overtaken: list[Endpoint] = []
    # the first rename's appends: refresh "inbox" (1), claim "landing" (2), EndpointUpdated (3)
    recorder(app).before_append(3, lambda: overtaken.append(rename(app, endpoint, "landing")))
    # When the first one's EndpointUpdated then fails (the second appended first)
    with pytest.raises(Exception, match="changed concurrently"):
        rename(app, endpoint, "landing")
    # Then E is "landing" and still holds its claim (the failed one released nothing it shared)
    assert app.get(endpoint.id).name == "landing"
    assert claim(app, "landing").holder == str(endpoint.id)
    assert claim(app, "inbox").holder is None
