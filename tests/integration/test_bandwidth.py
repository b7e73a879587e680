"""Bandwidth caps against a real sshd and moto server: an SFTP endpoint's cap is shared by the
transfers of two executors (aggregate measured from the server side: the bytes the sshd has
written under the target directory, sampled over time — not the executor's counters), and
lifting the cap mid-transfer takes effect within one heartbeat."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from events.contract import Flow
from tests.integration.executor_harness import MiB, Stack
from tests.integration.test_executor_flows import put_source
from tests.support.sshd import SshdServer

# Rate assertions need the CPU to reach the cap: on a loaded 2-core CI run (two pytest workers
# beside the browser tests) the aggregate fell below it, so these run on demand (-m slow); the
# pacer and the share rules are in the default suite (tests/unit/test_throttle.py).
pytestmark = [pytest.mark.usefixtures("aws_env"), pytest.mark.slow]

MB = 1_000_000
HEARTBEAT = 0.5


@pytest.fixture
def stack(aws_env: dict[str, str], sshd: SshdServer, sftp_dir: Path) -> Stack:
    return Stack(aws_env, sshd, sftp_dir)


def _set_cap(stack: Stack, endpoint_id: str, cap: int | None) -> None:
    """What the endpoints projection writes for PATCH {"bandwidth_limit": ...}."""
    key = {"endpoint_id": {"S": endpoint_id}}
    if cap is None:
        stack.ddb.update_item(
            TableName=stack.names.endpoints_table,
            Key=key,
            UpdateExpression="REMOVE bandwidth_limit",
        )
    else:
        stack.ddb.update_item(
            TableName=stack.names.endpoints_table,
            Key=key,
            UpdateExpression="SET bandwidth_limit = :b",
            ExpressionAttributeValues={":b": {"N": str(cap)}},
        )


class ServerSide:
    """Samples the bytes written under a directory on the sshd side (allocated blocks, so the
    parallel writes at offsets of a sparse part file count as written, not as its size)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def written(self) -> int:
        total = 0
        for path in self.root.rglob("*"):
            try:
                st = path.stat()
            except FileNotFoundError:  # renamed under us
                continue
            if path.is_file():
                total += min(st.st_size, st.st_blocks * 512)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.written()))
            self._stop.wait(0.05)

    def __enter__(self) -> ServerSide:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic(), self.written()))

    def rate(self, low: float, high: float) -> float:
        """Bytes/s between the first samples at ``low`` and ``high`` bytes."""
        t0 = next(t for t, b in self.samples if b >= low)
        b0 = next(b for t, b in self.samples if b >= low)
        t1, b1 = next((t, b) for t, b in self.samples if b >= high)
        return (b1 - b0) / (t1 - t0)


def _run_executors(stack: Stack, jobs: list[str], n: int) -> None:
    stop = threading.Event()
    executors = [
        stack.executor(
            stop,
            executor_id=f"bw{i}",
            concurrency=1,
            chunk_size=1 * MiB,
            heartbeat_seconds=HEARTBEAT,
        )
        for i in range(n)
    ]
    threads = [threading.Thread(target=e.run, daemon=True) for e in executors]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 90
        while not all(stack.released(j) == "succeeded" for j in jobs):
            assert time.monotonic() < deadline, [stack.released(j) for j in jobs]
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()


def test_two_transfers_share_a_20_mb_s_cap_of_one_sftp_endpoint(
    stack: Stack, sftp_dir: Path
) -> None:
    cap, size = 20 * MB, 40 * MB
    target = stack.endpoint_sftp(max_concurrency=4)
    _set_cap(stack, target, cap)
    out = sftp_dir / "bw"
    out.mkdir()
    assert stack.sshd is not None
    stack.sshd.chown_to_user(out)
    data = [os.urandom(size) for _ in range(2)]
    sources = [
        put_source(stack, Flow.S3_TO_SFTP, d, name=f"in/bw{i}.bin") for i, d in enumerate(data)
    ]
    jobs = [
        stack.queue_job(Flow.S3_TO_SFTP, s, (target, f"bw/{i}.bin")) for i, s in enumerate(sources)
    ]
    with ServerSide(out) as server:
        _run_executors(stack, jobs, 2)
    for i, d in enumerate(data):
        assert (out / f"{i}.bin").read_bytes() == d
    total = 2 * size
    (t0, _), (t1, _) = (
        next(s for s in server.samples if s[1] > 0),
        next(s for s in server.samples if s[1] >= total),
    )
    aggregate = total / (t1 - t0)
    middle = server.rate(0.1 * total, 0.9 * total)
    print(
        f"\nserver-side aggregate {aggregate / MB:.2f} MB/s over {t1 - t0:.2f} s "
        f"(10-90 %: {middle / MB:.2f} MB/s), cap {cap / MB:.0f} MB/s, 2 executors"
    )
    assert aggregate == pytest.approx(cap, rel=0.10)


def test_lifting_the_cap_mid_transfer_takes_effect_within_one_heartbeat(
    stack: Stack, sftp_dir: Path
) -> None:
    cap, size = 5 * MB, 60 * MB
    target = stack.endpoint_sftp()
    _set_cap(stack, target, cap)
    out = sftp_dir / "lift"
    out.mkdir()
    assert stack.sshd is not None
    stack.sshd.chown_to_user(out)
    data = os.urandom(size)
    source = put_source(stack, Flow.S3_TO_SFTP, data, name="in/lift.bin")
    job = stack.queue_job(Flow.S3_TO_SFTP, source, (target, "lift/x.bin"))
    lifted: list[tuple[float, int]] = []

    def lift_later(server: ServerSide) -> None:
        while server.written() < 8 * MB:
            time.sleep(0.02)
        lifted.append((time.monotonic(), server.written()))
        _set_cap(stack, target, None)

    with ServerSide(out) as server:
        threading.Thread(target=lift_later, args=(server,), daemon=True).start()
        _run_executors(stack, [job], 1)
    assert (out / "x.bin").read_bytes() == data
    at, written = lifted[0]
    capped = server.rate(2 * MB, 8 * MB)
    # the lift took effect once the growth leaves the capped line by more than 3 chunks
    effect = next(t for t, b in server.samples if t > at and b - written > cap * (t - at) + 3 * MiB)
    after = server.rate(written + 10 * MB, size - 5 * MB)
    print(
        f"\ncapped {capped / MB:.2f} MB/s; lifted: effect after {effect - at:.2f} s "
        f"(heartbeat {HEARTBEAT} s), then {after / MB:.1f} MB/s"
    )
    assert capped == pytest.approx(cap, rel=0.15)
    assert effect - at <= HEARTBEAT + 0.5
    assert after > 2 * cap
