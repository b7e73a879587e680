"""Several SSH connections per SFTP target (issue 10, part 3): a file of several chunks is written
over ``sftp_connections`` connections when the endpoint's max_concurrency has free slots — each
connection holds one slot — and over one otherwise. Real OpenSSH sshd, moto server."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from events.contract import Flow
from services.executor.adapters import DynamoSemaphore
from tests.integration.executor_harness import Stack, sha256
from tests.support.sshd import SshdServer

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def stack(aws_env: dict[str, str], sshd: SshdServer, sftp_dir: Path) -> Stack:
    return Stack(aws_env, sshd, sftp_dir)


def s3_to_sftp(stack: Stack, size: int, max_concurrency: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    stack.s3.put_object(Bucket=stack.src_bucket, Key="in/c.bin", Body=data)
    target = stack.endpoint_sftp(max_concurrency=max_concurrency)
    job_id = stack.queue_job(Flow.S3_TO_SFTP, (stack.s3_src, "in/c.bin"), (target, "out/c.bin"))
    return job_id, data


class CountingEndpoints:
    """The executor's own endpoint access, counting the SSH sessions it opens and each chunk
    file's ``write_at`` calls (the sessions and writes are real: sshd answers them)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.sessions = 0
        self.writes: Counter[int] = Counter()  # session number → chunk writes
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def sftp(self, ep: Any) -> Any:
        session = self.real.sftp(ep)
        with self.lock:
            self.sessions += 1
            number = self.sessions
        counter = self

        class Session:
            def __getattr__(self, name: str) -> Any:
                return getattr(session, name)

            def open_chunks(self, path: str, *, create: bool) -> Any:
                file = session.open_chunks(path, create=create)

                class File:
                    def __getattr__(self, name: str) -> Any:
                        return getattr(file, name)

                    def write_at(self, offset: int, data: bytes) -> None:
                        file.write_at(offset, data)
                        with counter.lock:
                            counter.writes[number] += 1

                return File()

        return Session()


@pytest.mark.parametrize(
    ("max_concurrency", "size", "sessions"),
    [(4, 8 * 256 * 1024 + 7, 2), (1, 8 * 256 * 1024 + 7, 1), (4, 100_000, 1)],
    ids=["slots-free", "one-slot", "one-chunk"],
)
def test_connections_follow_the_free_slots_and_the_file_size(
    stack: Stack, max_concurrency: int, size: int, sessions: int
) -> None:
    job_id, data = s3_to_sftp(stack, size, max_concurrency)
    executor = stack.executor()  # 256 KiB chunks: 9 chunks, or 1
    counting = CountingEndpoints(executor.endpoints)
    executor.endpoints = counting

    assert stack.drain(executor) == ["succeeded"]

    assert stack.sftp_dir is not None
    assert sha256((stack.sftp_dir / "out" / "c.bin").read_bytes()) == sha256(data)
    assert counting.sessions == sessions
    chunks = [e for e in stack.events(job_id) if e.detail_type() == "ChunkCommitted"]
    assert sum(counting.writes.values()) == len(chunks)
    if sessions == 2:  # chunk i on connection i mod 2
        assert counting.writes == Counter({1: 5, 2: 4})
    assert not list((stack.sftp_dir / "out").glob(".*.ferry-part"))


def test_the_extra_connection_holds_a_slot_of_its_own_while_the_job_runs(stack: Stack) -> None:
    """With max_concurrency 2 the job takes both slots, so a second job to the same endpoint
    waits for a slot instead of exceeding the endpoint's connection limit."""
    job_id, data = s3_to_sftp(stack, 8 * 256 * 1024 + 7, 2)
    executor = stack.executor()
    held: list[int] = []
    real_attempt = executor._attempt
    semaphore = DynamoSemaphore(stack.names.leases_table)

    def attempt(
        message: Any, job: Any, transfer: Any, cancelled: bool, slots: Any, h: str, customer: str
    ) -> str:
        endpoint_id = job.spec.target.endpoint_id
        held.append(sum(1 for e, _ in slots if e == endpoint_id))
        assert semaphore.try_acquire(endpoint_id, 2, "someone-else", 5) is None  # both taken
        return real_attempt(message, job, transfer, cancelled, slots, h, customer)

    executor._attempt = attempt  # type: ignore[method-assign]
    assert stack.drain(executor) == ["succeeded"]
    assert held == [2]
    assert stack.sftp_dir is not None
    assert sha256((stack.sftp_dir / "out" / "c.bin").read_bytes()) == sha256(data)
    assert stack.released(job_id) == "succeeded"


def test_semaphore_skip_takes_another_slot_for_the_same_holder(stack: Stack) -> None:
    semaphore = DynamoSemaphore(stack.names.leases_table)
    assert semaphore.try_acquire("ep", 3, "h", 5) == 0
    assert semaphore.try_acquire("ep", 3, "h", 5) == 0  # idempotent for its own slot
    assert semaphore.try_acquire("ep", 3, "h", 5, skip={0}) == 1
    assert semaphore.try_acquire("ep", 3, "other", 5) == 2
    assert semaphore.try_acquire("ep", 3, "h", 5, skip={0, 1}) is None
    semaphore.release("ep", 1, "h")
    assert semaphore.try_acquire("ep", 3, "other", 5, skip={2}) == 1
