"""Bandwidth caps (services/executor/transfer/throttle.py): the pacer on a fake clock, the
budget (cap ÷ holders, the lowest limit wins, re-rated pacers), the pipeline hook with K chunks
in flight, and ``bandwidth_limit`` at the API boundaries (endpoints, POST /transfers)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from events.contract import TransferOptions
from services.endpoints.schemas import InvalidRequest, parse_patch, parse_registration
from services.executor.transfer.pipeline import move_chunks
from services.executor.transfer.throttle import Pacer, Throttle, endpoint_shares

MB = 1_000_000


class FakeClock:
    """Time moves only when the pacer sleeps; ``on_sleep`` runs at each sleep (a heartbeat)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.on_sleep: Any = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, _cond: threading.Condition, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()


def paced(rate: float | None) -> tuple[Pacer, FakeClock]:
    clock = FakeClock()
    return Pacer(rate, clock=clock, sleep=clock.sleep), clock


# --- the pacer --------------------------------------------------------------------------------
def test_unlimited_never_waits() -> None:
    pacer, clock = paced(None)
    for _ in range(100):
        assert pacer.take(16 * MB)
    assert clock.sleeps == []


def test_a_rate_is_kept_chunk_by_chunk_without_a_first_burst() -> None:
    pacer, clock = paced(10 * MB)
    start = clock.now
    pacer.take(1 * MB)
    assert clock.now - start == pytest.approx(0.1)  # the first chunk waits for its bytes too
    for _ in range(9):
        pacer.take(1 * MB)
    assert clock.now - start == pytest.approx(1.0)  # 10 MB at 10 MB/s


def test_an_idle_pause_earns_one_chunk_at_most() -> None:
    pacer, clock = paced(10 * MB)
    pacer.take(1 * MB)
    clock.now += 60  # nothing to move for a minute
    before = clock.now
    pacer.take(1 * MB)
    assert clock.now == before  # the one chunk the bucket holds
    for _ in range(10):
        pacer.take(1 * MB)
    assert clock.now - before == pytest.approx(1.0)  # then the rate again


def test_time_spent_reading_counts_towards_the_next_chunk() -> None:
    pacer, clock = paced(10 * MB)
    pacer.take(1 * MB)
    clock.now += 0.08  # reading and handing the chunk over took 80 ms
    before = clock.now
    pacer.take(1 * MB)
    assert clock.now - before == pytest.approx(0.02)


def test_lifting_the_cap_mid_wait_releases_the_reader_at_once() -> None:
    pacer, clock = paced(1 * MB)
    clock.on_sleep = lambda: pacer.set_rate(None)  # the heartbeat lifts it during the wait
    start = clock.now
    assert pacer.take(16 * MB)  # would be 16 s at 1 MB/s
    assert clock.now - start == pytest.approx(0.25)  # one wait slice
    clock.on_sleep = None
    before = clock.now
    pacer.take(16 * MB)
    assert clock.now == before  # and nothing is owed afterwards


def test_changing_the_rate_mid_wait_re_times_what_is_owed() -> None:
    pacer, clock = paced(1 * MB)
    changed: list[float] = []

    def heartbeat() -> None:
        if not changed:
            changed.append(clock.now)
            pacer.set_rate(2 * MB)

    clock.on_sleep = heartbeat
    start = clock.now
    pacer.take(1 * MB)
    # 0.25 s at 1 MB/s earned 0.25 MB; the 0.75 MB left take 0.375 s at 2 MB/s
    assert clock.now - start == pytest.approx(0.625)


def test_a_stopped_reader_gives_its_reservation_back() -> None:
    pacer, clock = paced(1 * MB)
    assert not pacer.take(10 * MB, stopped=lambda: clock.now - 100.0 >= 0.5)
    before = clock.now
    pacer.take(1 * MB)  # 0.5 MB earned while waiting; owes 0.5 MB, not the 10 MB given back
    assert clock.now - before == pytest.approx(0.5, abs=1e-6)


def test_a_check_that_raises_stops_the_wait() -> None:
    pacer, clock = paced(1 * MB)

    def lease_lost() -> None:
        if clock.now - 100.0 >= 0.5:
            raise RuntimeError("lease lost")

    with pytest.raises(RuntimeError, match="lease lost"):
        pacer.take(10 * MB, check=lease_lost)
    assert clock.now - 100.0 < 1.0


def test_a_rate_is_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(0)
    with pytest.raises(ValueError):
        Pacer(None).set_rate(-5)


def test_lifting_wakes_a_reader_waiting_on_the_real_clock() -> None:
    pacer = Pacer(1 * MB)
    done = threading.Event()
    threading.Thread(target=lambda: (pacer.take(100 * MB), done.set()), daemon=True).start()
    time.sleep(0.1)
    assert not done.is_set()
    lifted = time.monotonic()
    pacer.set_rate(None)
    assert done.wait(2.0)
    assert time.monotonic() - lifted < 0.2


# --- the budget -------------------------------------------------------------------------------
def test_a_cap_is_shared_by_the_transfers_holding_the_endpoints_slots() -> None:
    asked: list[str] = []

    def holders(endpoint_id: str) -> int:
        asked.append(endpoint_id)
        return {"sftp": 2, "busy": 0}.get(endpoint_id, 1)

    limits = {"sftp": 20 * MB, "busy": 8 * MB, "s3": None}
    shares = endpoint_shares(
        ["s3", "sftp", "sftp", "busy"], limit_of=limits.__getitem__, holders=holders
    )
    assert shares == {"s3": None, "sftp": 10 * MB, "busy": 8 * MB}  # 0 holders: at least us
    assert asked == ["sftp", "busy"]  # uncapped endpoints cost no query


def test_the_lowest_of_job_limit_and_shares_wins_and_heartbeats_re_rate_pacers() -> None:
    throttle = Throttle(job_limit=15 * MB)
    throttle.set_shares({"src": None, "dst": 20 * MB})
    both = throttle.pacer(["src", "dst"])  # S3→SFTP: one leg touches both
    leg1, leg2 = throttle.pacer(["src"]), throttle.pacer(["dst"])  # SFTP→SFTP
    assert (both.rate, leg1.rate, leg2.rate) == (15 * MB, 15 * MB, 15 * MB)
    throttle.set_shares({"src": 4 * MB, "dst": 10 * MB})  # another transfer joined
    assert (both.rate, leg1.rate, leg2.rate) == (4 * MB, 4 * MB, 10 * MB)
    throttle.job_limit = None
    throttle.set_shares({"src": None, "dst": None})  # both caps lifted
    assert (both.rate, leg1.rate, leg2.rate) == (None, None, None)


def test_no_limit_anywhere_is_no_pacing() -> None:
    throttle = Throttle()
    throttle.set_shares({"a": None})
    assert throttle.rate(["a", "b"]) is None


# --- the pipeline hook ------------------------------------------------------------------------
def test_k_chunks_in_flight_together_keep_the_rate_and_at_most_k_are_held() -> None:
    chunk, count, k, rate = 50_000, 30, 4, 3 * MB  # 1.5 MB at 3 MB/s: 0.5 s
    pacer = Pacer(rate)
    held = [0, 0]  # now, peak
    lock = threading.Lock()
    data = bytes(chunk)

    def read(offset: int, length: int, size: int) -> Any:
        for _ in range(length // size):
            with lock:
                held[0] += 1
                held[1] = max(held[1], held[0])
            yield data

    def handle(index: int, offset: int, length: int, got: bytes | None) -> None:
        time.sleep(0.01)  # the write
        with lock:
            held[0] -= 1

    start = time.monotonic()
    move_chunks(
        todo=list(range(count)),
        span=lambda i: (i * chunk, chunk),
        chunk_size=chunk,
        k=k,
        handle=handle,
        read=read,
        pace=pacer.take,
    )
    elapsed = time.monotonic() - start
    measured = count * chunk / elapsed
    print(f"pipeline paced at {measured / MB:.2f} MB/s (cap {rate / MB:.0f} MB/s)")
    assert measured == pytest.approx(rate, rel=0.1)
    assert held[1] <= k


def test_a_failure_stops_a_reader_that_waits_for_its_bytes() -> None:
    pacer = Pacer(100_000)  # 1 s per chunk
    chunk = 100_000

    def handle(index: int, offset: int, length: int, got: bytes | None) -> None:
        raise OSError("target gone")

    start = time.monotonic()
    with pytest.raises(OSError, match="target gone"):
        move_chunks(
            todo=list(range(5)),
            span=lambda i: (i * chunk, chunk),
            chunk_size=chunk,
            k=2,
            handle=handle,
            read=lambda o, n, s: iter([bytes(chunk)] * (n // s)),
            pace=pacer.take,
        )
    assert time.monotonic() - start < 1.7  # the first chunk's wait, then one slice at most


# --- the boundaries ---------------------------------------------------------------------------
def _sftp(**extra: Any) -> dict[str, Any]:
    return {
        "name": "partner",
        "type": "s3",
        "direction": "OUTBOUND",
        "bucket": "partner-bucket",
        **extra,
    }


def test_an_endpoint_takes_a_bandwidth_limit_in_bytes_per_second() -> None:
    assert parse_registration(_sftp(bandwidth_limit=20 * MB)).bandwidth_limit == 20 * MB
    assert parse_registration(_sftp()).bandwidth_limit is None
    assert parse_patch({"bandwidth_limit": None}).bandwidth_limit is None  # lifts the cap
    assert parse_patch({"bandwidth_limit": 5 * MB}).bandwidth_limit == 5 * MB


@pytest.mark.parametrize("bad", [0, -1, 1000, 10**11, "20MB/s", 2.5e7, True])
def test_a_bad_bandwidth_limit_is_refused_naming_the_field(bad: Any) -> None:
    with pytest.raises(InvalidRequest) as found:
        parse_registration(_sftp(bandwidth_limit=bad))
    assert found.value.field == "bandwidth_limit"
    with pytest.raises(InvalidRequest) as patched:
        parse_patch({"bandwidth_limit": bad})
    assert patched.value.field == "bandwidth_limit"


def test_a_job_spec_without_a_limit_dumps_as_before() -> None:
    assert "bandwidth_limit" not in TransferOptions().model_dump(mode="json")
    assert TransferOptions(bandwidth_limit=MB).model_dump(mode="json")["bandwidth_limit"] == MB
