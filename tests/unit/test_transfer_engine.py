"""The transfer engine on in-memory ports (tests/support/fakes/transfer.py), with the real
Transfer aggregate on eventsourcing's in-memory persistence: chunks commit out of order, a
resume moves only the missing chunks (holes included), a failure or cancel stops the reader
within K chunks, and at most K chunks are ever held."""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import timedelta
from typing import Any

import pytest

from events.contract import Flow, JobSpec, Location, TransferOptions
from events.translate import stream_events
from services.executor import errors
from services.executor.application import TransferApplication
from services.executor.domain import Transfer
from services.executor.transfer import Cancelled, EngineSettings, RunContext, TransferRun
from services.executor.transfer.pipeline import move_chunks, runs
from tests.support.fakes.transfer import MemoryEndpoints, MemorySink, MemorySource

KiB = 1024
CHUNK = 64 * KiB
K = 3


class World:
    def __init__(self) -> None:
        self.app = TransferApplication()
        self.t = Transfer.open(
            job_id="job-1",
            customer_id="c1",
            owner_id="A",
            region="r",
            attempt=1,
            lease_for=timedelta(seconds=60),
        )
        self.app.save(self.t)
        self.lock = threading.Lock()
        self.cancel = threading.Event()

    def record(self, fn: Any) -> Any:
        with self.lock:
            result = fn(self.t)
            self.app.save(self.t)
            return result

    def run(self) -> TransferRun:
        ctx = RunContext(record=self.record, cancelled=self.cancel.is_set)
        spec = JobSpec(
            flow=Flow.S3_TO_SFTP,
            source=Location(endpoint_id="src", path="a.bin"),
            target=Location(endpoint_id="dst", path="b.bin"),
            options=TransferOptions(),
        )
        settings = EngineSettings(
            chunk_size=CHUNK,
            single_put_threshold=0,
            copy_part_threshold=1 << 30,
            copy_part_size=5 << 20,
            staging_bucket="staging",
            chunks_in_flight=K,
        )
        return TransferRun(
            transfer=self.t, spec=spec, endpoints=MemoryEndpoints(), settings=settings, ctx=ctx
        )

    def committed(self) -> list[int]:
        return [
            e.index
            for e in stream_events(self.app.recorder, self.t.id)
            if e.detail_type() == "ChunkCommitted"
        ]


def test_chunks_commit_out_of_order_as_each_is_durable_and_the_digest_is_the_files() -> None:
    # Given a 10-chunk file whose chunk 0 is slow to write
    world = World()
    data = os.urandom(10 * CHUNK - 7)
    source = MemorySource(data)
    run = world.run()
    sink = MemorySink(run.ctx, source=source, delay=lambda i: 0.15 if i == 0 else 0.01)

    # When the leg runs
    size, digest, _ = run.move_leg(1, 1, source, sink)

    # Then later chunks were committed before chunk 0, every chunk once, and the file is whole
    order = world.committed()
    assert sorted(order) == list(range(10)) and order != sorted(order)
    assert order.index(0) > 0
    assert sink.file == data and size == len(data)
    assert digest == hashlib.sha256(data).hexdigest()
    # K writes in flight at once, never more; at most K chunks held; one streaming read
    assert sink.max_in_flight == K and source.max_live <= K
    assert source.reads == [(0, len(data))]
    # the progress counts committed bytes, whatever the order
    events = [
        e
        for e in stream_events(world.app.recorder, world.t.id)
        if e.detail_type() == "ChunkCommitted"
    ]
    assert [e.chunks_committed for e in events] == list(range(1, 11))
    assert events[-1].bytes_committed == len(data)


def test_a_resume_moves_only_the_missing_chunks_holes_included() -> None:
    # Given an attempt whose writes of chunks 2 and 5 failed while the others landed
    world = World()
    data = os.urandom(8 * CHUNK)
    source = MemorySource(data)
    run = world.run()
    failing = {2, 5}

    def fail(index: int) -> None:
        if index in failing:
            raise errors.ConnectionFailed("write failed")

    sink = MemorySink(run.ctx, source=source, fail=fail)
    with pytest.raises(errors.ConnectionFailed):
        run.move_leg(1, 1, source, sink)
    leg = world.t.legs[1]
    assert 2 in leg.missing() and 5 in leg.missing()
    first_attempt = set(world.committed())

    # When the next attempt runs against what the first one left (the writes work now)
    failing.clear()
    again = MemorySource(data)
    sink.source = again
    _, digest, _ = world.run().move_leg(1, 1, again, sink)

    # Then it read exactly the missing chunks, one streaming read per run of them
    missing = [i for i in range(8) if i not in first_attempt]
    assert again.bytes_read == len(missing) * CHUNK
    assert again.reads == [(i * CHUNK, n * CHUNK) for i, n in runs(missing)]
    assert sorted(world.committed()) == list(range(8))
    # and the file and its digest (re-read from the target, not the source) are exact
    assert sink.file == data and digest == hashlib.sha256(data).hexdigest()


def test_a_changed_source_restarts_the_leg_from_nothing() -> None:
    world = World()
    data = os.urandom(4 * CHUNK)
    run = world.run()
    sink = MemorySink(
        run.ctx,
        fail=lambda i: (_ for _ in ()).throw(errors.ConnectionFailed("x")) if i == 3 else None,
    )
    with pytest.raises(errors.ConnectionFailed):
        run.move_leg(1, 1, MemorySource(data), sink)
    changed = os.urandom(4 * CHUNK)
    sink.fail = lambda i: None
    source = MemorySource(changed, version="v2")
    _, digest, _ = world.run().move_leg(1, 1, source, sink)
    assert sink.discarded == 1 and source.bytes_read == len(changed)
    assert sink.file == changed and digest == hashlib.sha256(changed).hexdigest()


def test_a_cancel_at_a_commit_point_stops_the_reader_within_k_chunks_and_publishes_nothing() -> (
    None
):
    world = World()
    data = os.urandom(40 * CHUNK)
    source = MemorySource(data)
    run = world.run()

    def slow_then_cancel(index: int) -> float:
        if index == 4:
            world.cancel.set()
        return 0.01

    sink = MemorySink(run.ctx, source=source, delay=slow_then_cancel)
    with pytest.raises(Cancelled):
        run.move_leg(1, 1, source, sink)
    assert sink.file is None and not sink.published and not run.ctx.publishing
    committed = len(world.committed())
    # what was read beyond the commits: the chunks in flight when the cancel was seen
    assert source.bytes_read <= (committed + 2 * K) * CHUNK < len(data)


def test_an_empty_file_is_one_empty_chunk() -> None:
    world = World()
    run = world.run()
    source = MemorySource(b"")
    sink = MemorySink(run.ctx, source=source)
    size, digest, _ = run.move_leg(1, 1, source, sink)
    assert (size, digest, sink.file) == (0, hashlib.sha256(b"").hexdigest(), b"")
    assert world.committed() == [0]


@pytest.mark.parametrize("data", [b"", b"x" * 1000], ids=["empty", "small"])
def test_a_cancel_right_after_a_single_put_published_the_file_is_too_late(data: bytes) -> None:
    """The single PUT is the publish: a cancel seen at the chunk's commit point after it must
    not turn the job CANCELLED while the file is at the target (a CI run caught an empty
    SFTP→S3 file CANCELLED but delivered)."""
    world = World()
    run = world.run()
    source = MemorySource(data)
    sink = MemorySink(run.ctx, source=source, single_put=True, on_publish=world.cancel.set)
    size, digest, _ = run.move_leg(1, 1, source, sink)
    assert (size, sink.file) == (len(data), data) and digest == hashlib.sha256(data).hexdigest()
    assert run.ctx.publishing and run.may_have_delivered and world.committed() == [0]


def test_the_pipeline_raises_the_first_failure_and_holds_at_most_k_chunks() -> None:
    held = [0]
    peak = [0]
    lock = threading.Lock()
    handled: list[int] = []

    def read(offset: int, length: int, chunk: int) -> Any:
        for at in range(offset, offset + length, chunk):
            with lock:
                held[0] += 1
                peak[0] = max(peak[0], held[0])
            yield b"x" * min(chunk, offset + length - at)

    def handle(index: int, offset: int, length: int, data: bytes | None) -> None:
        try:
            if index == 6:
                raise errors.RemoteServerError("boom")
            handled.append(index)
        finally:
            with lock:
                held[0] -= 1

    with pytest.raises(errors.RemoteServerError):
        move_chunks(
            todo=list(range(100)),
            span=lambda i: (i * 10, 10),
            chunk_size=10,
            k=K,
            handle=handle,
            read=read,
        )
    assert peak[0] <= K
    assert max(handled) < 6 + 2 * K  # the reader stopped soon after the failure


@pytest.mark.parametrize("block", [1, 7, 333, 1000, 4096])
@pytest.mark.parametrize("chunk", [10, 256, 1000, 3000])
def test_sftp_blocks_are_regrouped_into_exact_chunks(block: int, chunk: int) -> None:
    from services.executor.transfer.sftp import regroup

    data = os.urandom(2500)
    pieces = list(regroup(iter([data[i : i + block] for i in range(0, len(data), block)]), chunk))
    assert b"".join(pieces) == data
    assert all(len(p) == chunk for p in pieces[:-1]) and 0 < len(pieces[-1]) <= chunk
