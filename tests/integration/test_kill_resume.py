"""kill -9 of an executor process at several points; a new executor process finishes the job
from the committed chunks, reading at most one chunk of the source again."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from events.contract import Flow, JobStatus
from tests.integration.executor_harness import KiB, MiB, Stack, sha256
from tests.integration.test_executor_flows import put_source, read_target, target_of
from tests.support.sshd import SshdServer

pytestmark = pytest.mark.usefixtures("aws_env")

FAST: dict[str, Any] = {"lease_seconds": 2, "heartbeat_seconds": 0.5}


@pytest.fixture
def stack(aws_env: dict[str, str], sshd: SshdServer, sftp_dir: Path) -> Stack:
    return Stack(aws_env, sshd, sftp_dir)


#: the executor's default chunks_in_flight (K)
K_IN_FLIGHT = 4


def _holes(chunks: list[Any]) -> list[tuple[int, int]]:
    """(leg, index) missing below the highest committed index of each leg: chunks a kill lost
    although later ones were committed (each was read, never committed)."""
    out = []
    for leg in {c.leg for c in chunks}:
        done = {c.index for c in chunks if c.leg == leg}
        out += [(leg, i) for i in range(max(done)) if i not in done]
    return out


def _stats(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# Each case costs two executor processes (~15-20 s on the shared 2-core machine): the default
# run covers every kill point on S3→SFTP plus the S3-target and two-leg resumes; the rest run
# with ``-m slow``.
_slow = pytest.mark.slow
CASES = [
    # flow, size, fault point, chunk size the flow uses
    pytest.param(Flow.S3_TO_SFTP, 3 * MiB + 100, "before_first_chunk", 256 * KiB, marks=_slow),
    (Flow.S3_TO_SFTP, 3 * MiB + 100, "after_chunk:5", 256 * KiB),
    (Flow.S3_TO_SFTP, 3 * MiB + 100, "before_publish", 256 * KiB),
    (Flow.S3_TO_SFTP, 3 * MiB + 100, "after_publish", 256 * KiB),
    (Flow.SFTP_TO_S3, 16 * MiB + 100, "after_chunk:2", 5 * MiB),
    pytest.param(Flow.SFTP_TO_S3, 16 * MiB + 100, "before_publish", 5 * MiB, marks=_slow),
    (Flow.SFTP_TO_S3, 16 * MiB + 100, "after_publish", 5 * MiB),
    (Flow.SFTP_TO_SFTP, 11 * MiB, "after_chunk:4", 5 * MiB),
    pytest.param(Flow.S3_TO_S3, 13 * MiB, "after_chunk:1", 5 * MiB, marks=_slow),
]


def _id(case: Any) -> str:
    values = case.values if hasattr(case, "values") else case
    return f"{values[0].value}-{values[2]}"


@pytest.mark.parametrize(("flow", "size", "fault", "chunk"), CASES, ids=[_id(c) for c in CASES])
def test_kill_9_then_another_executor_finishes(
    stack: Stack, tmp_path: Path, flow: Flow, size: int, fault: str, chunk: int
) -> None:
    data = os.urandom(size)
    job_id = stack.queue_job(flow, put_source(stack, flow, data), target_of(stack, flow))
    stats_a, stats_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"

    first = stack.spawn(fault=fault, executor_id="exec-A", stats_file=stats_a, **FAST)
    assert first.wait(timeout=60) == -signal.SIGKILL
    before = stack.events(job_id)
    committed = sum(e.length for e in before if e.detail_type() == "ChunkCommitted" and e.leg == 1)
    assert "LeaseReleased" not in [e.detail_type() for e in before]

    second = stack.spawn(executor_id="exec-B", stats_file=stats_b, **FAST)
    try:
        deadline = time.monotonic() + 60
        while stack.released(job_id) != "succeeded":
            assert time.monotonic() < deadline, stack.types(job_id)
            assert second.poll() is None
            time.sleep(0.3)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0

    assert sha256(read_target(stack, flow)) == sha256(data)
    events = stack.events(job_id)
    takeovers = [e for e in events if e.detail_type() == "LeaseAcquired" and e.owner_id == "exec-B"]
    assert takeovers and takeovers[0].takeover_from == "exec-A"
    assert events[-1].detail_type() == "LeaseReleased" and events[-1].outcome == "succeeded"
    verified = [e for e in events if e.detail_type() == "TransferVerified"]
    assert len(verified) == 1 and verified[0].sha256 == sha256(data)
    # bytes read from the source after the kill: only what was not committed (the missing
    # chunks, holes included) — and at most K chunks (the ones in flight) were lost by the kill
    [b] = [s for s in _stats(stats_b) if s["job_id"] == job_id]
    if flow != Flow.S3_TO_S3:
        assert b["source_bytes"] == size - committed, (b, committed)
        if fault.startswith("after_chunk"):
            read_a = [s for s in _stats(stats_a) if s["job_id"] == job_id]
            assert not read_a  # killed: it wrote no stats
            chunks_done = [e for e in before if e.detail_type() == "ChunkCommitted"]
            holes = _holes(chunks_done)
            assert len(holes) <= K_IN_FLIGHT, holes
    if fault == "after_publish":
        assert b["source_bytes"] == 0
    # exactly one file, no temp file, no incomplete upload, no staging object
    if flow.value.endswith("SFTP"):
        assert stack.sftp_dir is not None
        assert sorted(p.name for p in (stack.sftp_dir / "out").iterdir()) == ["result.bin"]
    for bucket in (stack.dst_bucket, stack.names.staging_bucket):
        assert stack.incomplete_uploads(bucket) == []
    assert stack.s3.list_objects_v2(Bucket=stack.names.staging_bucket).get("KeyCount", 0) == 0


def test_sigterm_abandons_the_chunk_in_flight_releases_the_lease_and_exits_0(
    stack: Stack, tmp_path: Path
) -> None:
    data = os.urandom(40 * MiB)
    flow = Flow.S3_TO_SFTP
    job_id = stack.queue_job(flow, put_source(stack, flow, data), target_of(stack, flow))
    proc = stack.spawn(executor_id="exec-T", **FAST)
    deadline = time.monotonic() + 60
    while "ChunkCommitted" not in stack.types(job_id):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    if stack.released(job_id) == "succeeded":  # finished before the signal was seen
        pytest.skip("the transfer finished before SIGTERM arrived")
    assert stack.released(job_id) == "abandoned"
    assert stack.drain(stack.executor(**FAST)) == ["succeeded"]
    assert sha256(read_target(stack, flow)) == sha256(data)
    acquired = [e for e in stack.events(job_id) if e.detail_type() == "LeaseAcquired"]
    assert acquired[-1].takeover_from is None  # released, not expired


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [("after_chunk:3", JobStatus.CANCELLED), ("after_publish", JobStatus.SUCCEEDED)],
    ids=["killed-before-publish", "killed-after-publish"],
)
def test_cancel_while_the_executor_is_dead_the_next_one_decides_by_the_target(
    stack: Stack, fault: str, outcome: JobStatus
) -> None:
    """kill -9 of the executor, then the cancel request: the lease is held by a dead process,
    so the job is not cancelled at once; the next executor takes over and the publish decides
    — killed before the rename → CANCELLED with the temp file removed; killed after it →
    SUCCEEDED with cancel_outcome too_late."""
    flow = Flow.S3_TO_SFTP
    data = os.urandom(3 * MiB + 100)
    job_id = stack.submit(flow, put_source(stack, flow, data), target_of(stack, flow))
    first = stack.spawn(fault=fault, executor_id="exec-A", **FAST)
    assert first.wait(timeout=60) == -signal.SIGKILL
    stack.process_manager(job_id)

    answer = stack.jobs().cancel(stack.customer_id, "key-test", job_id)

    assert answer.cancel_requested and not answer.status.is_final
    results = stack.drain(stack.executor(executor_id="exec-B", **FAST), timeout=60)
    job = stack.process_manager(job_id)
    assert job.status == outcome, (results, stack.types(job_id))
    assert stack.sftp_dir is not None
    out = sorted(p.name for p in (stack.sftp_dir / "out").iterdir())
    if outcome == JobStatus.CANCELLED:
        assert out == [] and stack.released(job_id) == "cancelled"
    else:
        assert out == ["result.bin"] and job.cancel_outcome == "too_late"
        assert sha256(read_target(stack, flow)) == sha256(data)
    takeovers = [e for e in stack.events(job_id) if e.detail_type() == "LeaseAcquired"]
    assert takeovers[-1].owner_id == "exec-B" and takeovers[-1].takeover_from == "exec-A"


@pytest.mark.parametrize("flow", [Flow.S3_TO_S3, Flow.SFTP_TO_S3], ids=lambda f: f.value)
def test_killed_between_a_single_object_write_and_its_commit_the_target_is_written_once(
    stack: Stack, flow: Flow
) -> None:
    """Found by the chaos suite (seed 11): an S3→S3 job killed after its CopyObject landed but
    before ChunkCommitted was recorded copied again after the takeover — two versions of the
    target. For a single PUT under ``IfNoneMatch`` the second write would fail TARGET_EXISTS
    while the file is there. The resumed attempt recognises its own write (the job's marker and
    the leg's size) and records the commit instead of writing again."""
    stack.s3.put_bucket_versioning(
        Bucket=stack.dst_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    data = os.urandom(200 * KiB)  # under the chunk and single-PUT sizes: one CopyObject / one PUT
    job_id = stack.queue_job(flow, put_source(stack, flow, data), target_of(stack, flow))

    first = stack.spawn(fault="after_write", executor_id="exec-A", **FAST)
    assert first.wait(timeout=60) == -signal.SIGKILL
    assert "ChunkCommitted" not in stack.types(job_id)

    second = stack.spawn(executor_id="exec-B", **FAST)
    try:
        deadline = time.monotonic() + 60
        while stack.released(job_id) not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, stack.types(job_id)
            time.sleep(0.3)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0

    assert stack.released(job_id) == "succeeded", stack.types(job_id)
    assert sha256(read_target(stack, flow)) == sha256(data)
    versions = stack.s3.list_object_versions(Bucket=stack.dst_bucket).get("Versions", [])
    assert len(versions) == 1, [(v["Key"], v["VersionId"]) for v in versions]
