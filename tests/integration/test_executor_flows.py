"""The four flows end to end: moto server over HTTP + a real OpenSSH sshd."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from events.contract import Flow
from tests.integration.executor_harness import MiB, Stack, sha256
from tests.support.sshd import SshdServer

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def stack(aws_env: dict[str, str], sshd: SshdServer, sftp_dir: Path) -> Stack:
    return Stack(aws_env, sshd, sftp_dir)


def put_source(stack: Stack, flow: Flow, data: bytes, name: str = "in/data.bin") -> tuple[str, str]:
    if flow.value.startswith("S3"):
        stack.s3.put_object(Bucket=stack.src_bucket, Key=name, Body=data)
        return stack.s3_src, name
    assert stack.sftp_dir is not None and stack.sshd is not None
    path = stack.sftp_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stack.sshd.chown_to_user(path.parent)
    stack.sshd.chown_to_user(path)
    return stack.sftp_ep, name


def target_of(stack: Stack, flow: Flow, name: str = "out/result.bin") -> tuple[str, str]:
    return (stack.s3_dst if flow.value.endswith("S3") else stack.sftp_ep), name


def read_target(stack: Stack, flow: Flow, name: str = "out/result.bin") -> bytes:
    if flow.value.endswith("S3"):
        return stack.get_s3(stack.dst_bucket, name)
    assert stack.sftp_dir is not None
    return (stack.sftp_dir / name).read_bytes()


SIZES = {"empty": 0, "1KB": 1000, "multi": 12 * MiB + 12345}


@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
@pytest.mark.parametrize("flow", list(Flow), ids=[f.value for f in Flow])
def test_flow_moves_the_bytes_with_the_expected_events(stack: Stack, flow: Flow, size: int) -> None:
    data = os.urandom(size)
    job_id = stack.queue_job(flow, put_source(stack, flow, data), target_of(stack, flow))

    results = stack.drain(stack.executor())

    assert results == ["succeeded"]
    assert sha256(read_target(stack, flow)) == sha256(data)
    events = stack.events(job_id)
    types = [e.detail_type() for e in events]
    assert types[0] == "LeaseAcquired"
    # the heartbeat's LeaseRenewed may land anywhere (timing): the order of the rest is fixed
    steps = [t for t in types if t != "LeaseRenewed"]
    assert steps[-3:] == ["TransferVerified", "PostActionCompleted", "LeaseReleased"]
    assert events[-1].outcome == "succeeded"
    verified = next(e for e in events if e.detail_type() == "TransferVerified")
    assert verified.size == size and verified.sha256 == sha256(data)
    started = [e for e in events if e.detail_type() == "TransferStarted"]
    chunks = [e for e in events if e.detail_type() == "ChunkCommitted"]
    legs = 2 if flow == Flow.SFTP_TO_SFTP else 1
    assert [s.leg for s in started] == list(range(1, legs + 1))
    assert sum(s.chunk_count for s in started) == len(chunks)
    for leg in range(1, legs + 1):
        leg_chunks = [c for c in chunks if c.leg == leg]
        assert leg_chunks[-1].bytes_committed == size
        assert sum(c.length for c in leg_chunks) == size
    if size >= 5 * MiB and flow != Flow.S3_TO_S3:
        assert len(chunks) >= 3 * legs
    if flow != Flow.S3_TO_S3:
        # every chunk digest is the source's
        first = [c for c in chunks if c.leg == 1]
        assert all(c.sha256 == sha256(data[c.offset : c.offset + c.length]) for c in first)
    for bucket in (stack.dst_bucket, stack.names.staging_bucket):
        assert stack.incomplete_uploads(bucket) == []
    assert stack.s3.list_objects_v2(Bucket=stack.names.staging_bucket).get("KeyCount", 0) == 0
    if flow.value.endswith("SFTP"):
        assert stack.sftp_dir is not None
        assert [p.name for p in (stack.sftp_dir / "out").iterdir()] == ["result.bin"]


def test_s3_to_s3_multipart_copy_by_parts(stack: Stack) -> None:
    data = os.urandom(13 * MiB)
    job_id = stack.queue_job(
        Flow.S3_TO_S3, put_source(stack, Flow.S3_TO_S3, data), target_of(stack, Flow.S3_TO_S3)
    )
    assert stack.drain(stack.executor()) == ["succeeded"]
    assert stack.get_s3(stack.dst_bucket, "out/result.bin") == data
    chunks = [e for e in stack.events(job_id) if e.detail_type() == "ChunkCommitted"]
    # the parts are copied in parallel and each commits when done: any order, each once
    assert sorted(c.part_number for c in chunks) == [1, 2, 3]
    assert sorted(c.index for c in chunks) == [0, 1, 2]
    assert stack.incomplete_uploads(stack.dst_bucket) == []
