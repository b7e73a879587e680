"""Failures, leases and the endpoint semaphore against a real sshd and moto server."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

from events.contract import Flow
from tests.integration.executor_harness import KiB, MiB, Stack, sha256
from tests.integration.test_executor_flows import put_source, read_target, target_of
from tests.support.sshd import SshdServer

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def stack(aws_env: dict[str, str], sshd: SshdServer, sftp_dir: Path) -> Stack:
    return Stack(aws_env, sshd, sftp_dir)


def failures(stack: Stack, job_id: str) -> list:
    return [e for e in stack.events(job_id) if e.detail_type() == "TransferAttemptFailed"]


def test_sshd_stopped_mid_transfer_fails_transient_then_the_retry_resumes(
    stack: Stack, sshd: SshdServer, tmp_path: Path
) -> None:
    data = os.urandom(24 * MiB)
    source = put_source(stack, Flow.S3_TO_SFTP, data)
    job_id = stack.queue_job(Flow.S3_TO_SFTP, source, target_of(stack, Flow.S3_TO_SFTP))
    assert stack.sftp_dir is not None
    temp = stack.sftp_dir / "out" / ".result.bin.ferry-part"

    def stop_when_half_written() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if temp.exists() and temp.stat().st_size >= 2 * MiB:
                sshd.stop()
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=stop_when_half_written)
    watcher.start()
    stats = tmp_path / "stats.jsonl"
    try:
        first = stack.drain(stack.executor(stats_file=stats))
    finally:
        watcher.join()
        sshd.start()
    assert first == ["retry"], stack.types(job_id)
    [failed] = failures(stack, job_id)
    assert failed.transient is True and failed.error_code in ("CONNECTION_FAILED", "TIMEOUT")
    committed = failed.bytes_committed
    assert 0 < committed < len(data)
    assert temp.exists()

    # the process manager would schedule the retry: re-deliver the job as attempt 2
    stack.queue_job(
        Flow.S3_TO_SFTP, source, target_of(stack, Flow.S3_TO_SFTP), job_id=job_id, attempt=2
    )
    assert stack.drain(stack.executor(stats_file=stats)) == ["succeeded"]
    assert sha256(read_target(stack, Flow.S3_TO_SFTP)) == sha256(data)
    second = [json.loads(x) for x in stats.read_text().splitlines()][-1]
    assert second["source_bytes"] <= len(data) - committed + 256 * KiB
    assert not temp.exists()


@pytest.mark.parametrize("kind", ["wrong_key", "wrong_password"])
def test_wrong_credentials_fail_permanently_and_quickly(
    stack: Stack, sshd: SshdServer, kind: str
) -> None:
    secret = (
        {"username": sshd.username, "private_key": sshd.untrusted_private_key_text}
        if kind == "wrong_key"
        else {"username": sshd.username, "password": "not-the-password"}
    )
    bad = stack.endpoint_sftp(secret=secret)
    job_id = stack.queue_job(
        Flow.S3_TO_SFTP, put_source(stack, Flow.S3_TO_SFTP, b"x" * 1000), (bad, "out/f.bin")
    )
    started = time.monotonic()
    assert stack.drain(stack.executor()) == ["failed"]
    assert time.monotonic() - started < 10
    [failed] = failures(stack, job_id)
    assert failed.error_code == "AUTH_FAILED" and failed.transient is False
    assert "not-the-password" not in failed.error_message
    assert "PRIVATE KEY" not in failed.error_message
    assert stack.released(job_id) == "failed"


def test_host_key_mismatch_fails_and_writes_nothing(stack: Stack) -> None:
    wrong = "SHA256:" + base64.b64encode(b"\x01" * 32).decode().rstrip("=")
    bad = stack.endpoint_sftp(host_key=wrong)
    job_id = stack.queue_job(
        Flow.S3_TO_SFTP, put_source(stack, Flow.S3_TO_SFTP, b"x" * 1000), (bad, "out/f.bin")
    )
    assert stack.drain(stack.executor()) == ["failed"]
    [failed] = failures(stack, job_id)
    assert failed.error_code == "HOST_KEY_MISMATCH" and failed.transient is False
    assert stack.sftp_dir is not None and not (stack.sftp_dir / "out").exists()


@pytest.mark.parametrize("allow", ["", "127.0.0.2/32"])
def test_egress_denied_fails_permanently_without_connecting(
    stack: Stack, sshd: SshdServer, monkeypatch: pytest.MonkeyPatch, allow: str
) -> None:
    """The test sshd (127.0.0.1) with an allow-list that excludes it: the job fails with
    EGRESS_DENIED, nothing is written and sshd never sees a connection."""
    monkeypatch.setenv("FERRY_EGRESS_ALLOW", allow)
    connections = sshd.count_log("Connection from ")
    job_id = stack.queue_job(
        Flow.S3_TO_SFTP,
        put_source(stack, Flow.S3_TO_SFTP, b"x" * 1000),
        target_of(stack, Flow.S3_TO_SFTP),
    )
    assert stack.drain(stack.executor()) == ["failed"]
    [failed] = failures(stack, job_id)
    assert failed.error_code == "EGRESS_DENIED" and failed.transient is False
    assert failed.error_message.endswith("127.0.0.1 is not reachable under Ferry's egress policy")
    assert stack.released(job_id) == "failed"
    assert stack.sftp_dir is not None and not (stack.sftp_dir / "out").exists()
    time.sleep(0.3)
    assert sshd.count_log("Connection from ") == connections


def test_refused_connection_is_transient_with_a_fixed_message(
    stack: Stack, sshd: SshdServer
) -> None:
    job_id = stack.queue_job(
        Flow.SFTP_TO_S3,
        put_source(stack, Flow.SFTP_TO_S3, b"y" * 1000),
        target_of(stack, Flow.SFTP_TO_S3),
    )
    sshd.stop()
    try:
        assert stack.drain(stack.executor()) == ["retry"]
    finally:
        sshd.start()
    [failed] = failures(stack, job_id)
    assert failed.error_code == "CONNECTION_REFUSED" and failed.transient is True
    assert failed.error_message.endswith(f"127.0.0.1:{sshd.port} refused the connection")
    assert "Errno" not in failed.error_message and "Connect call" not in failed.error_message


def test_source_missing_is_permanent(stack: Stack) -> None:
    job_id = stack.queue_job(
        Flow.S3_TO_SFTP, (stack.s3_src, "no/such.bin"), target_of(stack, Flow.S3_TO_SFTP)
    )
    assert stack.drain(stack.executor()) == ["failed"]
    [failed] = failures(stack, job_id)
    assert failed.error_code == "SOURCE_NOT_FOUND" and failed.transient is False


@pytest.mark.parametrize("flow", [Flow.S3_TO_SFTP, Flow.SFTP_TO_S3], ids=lambda f: f.value)
def test_overwrite_false_and_target_exists_fails_without_touching_it(
    stack: Stack, flow: Flow
) -> None:
    target = target_of(stack, flow)
    if flow.value.endswith("S3"):
        stack.s3.put_object(Bucket=stack.dst_bucket, Key=target[1], Body=b"old")
    else:
        assert stack.sftp_dir is not None
        (stack.sftp_dir / "out").mkdir()
        (stack.sftp_dir / "out" / "result.bin").write_bytes(b"old")
    job_id = stack.queue_job(flow, put_source(stack, flow, b"new" * 1000), target)
    assert stack.drain(stack.executor()) == ["failed"]
    assert failures(stack, job_id)[0].error_code == "TARGET_EXISTS"
    assert read_target(stack, flow) == b"old"


def test_post_action_move_after_success(stack: Stack) -> None:
    data = os.urandom(5000)
    source = put_source(stack, Flow.SFTP_TO_S3, data, name="in/a.bin")
    job_id = stack.queue_job(
        Flow.SFTP_TO_S3,
        source,
        target_of(stack, Flow.SFTP_TO_S3),
        post_action="move",
        move_to="done",
    )
    assert stack.drain(stack.executor()) == ["succeeded"]
    assert stack.sftp_dir is not None
    assert not (stack.sftp_dir / "in" / "a.bin").exists()
    assert (stack.sftp_dir / "done" / "a.bin").read_bytes() == data
    [done] = [e for e in stack.events(job_id) if e.detail_type() == "PostActionCompleted"]
    assert done.action == "move" and done.moved_to == str(stack.sftp_dir / "done" / "a.bin")


def test_cancelled_job_stops_and_cleans_up(stack: Stack) -> None:
    data = os.urandom(48 * MiB)
    # paced (about 6 s for the file) so that the cancel lands mid-transfer however fast the
    # machine moves the bytes: unpaced, a CI run finished the 48 MiB before the watcher saw the
    # first ChunkCommitted
    job_id = stack.queue_job(
        Flow.SFTP_TO_S3,
        put_source(stack, Flow.SFTP_TO_S3, data),
        target_of(stack, Flow.SFTP_TO_S3),
        bandwidth_limit=8 * MiB,
    )

    def cancel_after_first_chunk() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "ChunkCommitted" in stack.types(job_id):
                stack.set_job_status(job_id, "CANCELLED")
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=cancel_after_first_chunk)
    watcher.start()
    try:
        result = stack.drain(stack.executor(chunk_size=5 * MiB, heartbeat_seconds=0.1))
    finally:
        watcher.join()
    assert result == ["cancelled"]
    assert stack.released(job_id) == "cancelled"
    assert stack.incomplete_uploads(stack.dst_bucket) == []


def test_two_executors_one_job_one_transfer(stack: Stack) -> None:
    data = os.urandom(2 * MiB)
    source = put_source(stack, Flow.S3_TO_SFTP, data)
    job_id = stack.queue_job(Flow.S3_TO_SFTP, source, target_of(stack, Flow.S3_TO_SFTP))
    # at-least-once delivery: the same job arrives twice, two executors take one each
    stack.queue_job(Flow.S3_TO_SFTP, source, target_of(stack, Flow.S3_TO_SFTP), job_id=job_id)
    first, second = stack.receive(), stack.receive()
    assert first is not None and second is not None
    a, b = stack.executor(executor_id="A"), stack.executor(executor_id="B")
    results: dict[str, str] = {}
    ta = threading.Thread(target=lambda: results.__setitem__("A", a.handle(first)))
    tb = threading.Thread(target=lambda: results.__setitem__("B", b.handle(second)))
    for t in (ta, tb):
        t.start()
    for t in (ta, tb):
        t.join()
    assert sorted(results.values())[-1] == "succeeded"
    assert list(results.values()).count("succeeded") == 1
    types = stack.types(job_id)
    assert types.count("TransferStarted") == 1 and types.count("TransferVerified") == 1
    acquired = [e for e in stack.events(job_id) if e.detail_type() == "LeaseAcquired"]
    assert len({e.owner_id for e in acquired}) == 1
    assert sha256(read_target(stack, Flow.S3_TO_SFTP)) == sha256(data)


def _max_overlap(log: str, user: str) -> int:
    """Sessions open at once, from sshd's log (Accepted … port N / Disconnected … port N)."""
    open_ports: set[str] = set()
    peak = 0
    for line in log.splitlines():
        m = re.search(rf"Accepted \S+ for {user} from \S+ port (\d+)", line)
        if m:
            open_ports.add(m.group(1))
            peak = max(peak, len(open_ports))
            continue
        m = re.search(
            r"(?:Disconnected from user \S+|Connection closed by user \S+|Close session: user \S+ from) \S+ port (\d+)",
            line,
        )
        if m:
            open_ports.discard(m.group(1))
    return peak


def test_max_concurrency_one_never_two_sessions_at_once(stack: Stack, sshd: SshdServer) -> None:
    limited = stack.endpoint_sftp(max_concurrency=1)
    offset = len(sshd.log_text())
    jobs = []
    for i in range(5):
        data = os.urandom(1 * MiB)
        src = put_source(stack, Flow.S3_TO_SFTP, data, name=f"in/{i}.bin")
        jobs.append((stack.queue_job(Flow.S3_TO_SFTP, src, (limited, f"out/{i}.bin")), data))
    stop = threading.Event()
    executors = [stack.executor(stop, executor_id=f"E{i}", concurrency=3) for i in range(2)]
    threads = [threading.Thread(target=e.run) for e in executors]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 90
        while not all(stack.released(j) == "succeeded" for j, _ in jobs):
            assert time.monotonic() < deadline
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    for i, (_, data) in enumerate(jobs):
        assert stack.sftp_dir is not None
        assert (stack.sftp_dir / "out" / f"{i}.bin").read_bytes() == data
    log = sshd.log_text()[offset:]
    assert log.count("Accepted ") >= 5
    assert _max_overlap(log, sshd.username) == 1


def test_retry_not_due_is_deferred_and_a_finished_job_is_dropped(stack: Stack) -> None:
    from datetime import UTC, datetime, timedelta

    from events.contract import JobRetryScheduled, JobSpec, Location, TransferOptions

    data = os.urandom(3000)
    source = put_source(stack, Flow.S3_TO_SFTP, data)
    job_id = stack.queue_job(Flow.S3_TO_SFTP, source, target_of(stack, Flow.S3_TO_SFTP))
    assert stack.drain(stack.executor()) == ["succeeded"]
    spec = JobSpec(
        flow=Flow.S3_TO_SFTP,
        source=Location(endpoint_id=source[0], path=source[1]),
        target=Location(endpoint_id=stack.sftp_ep, path="out/later.bin"),
        options=TransferOptions(),
    )

    def retry(job: str, at: datetime) -> JobRetryScheduled:
        return JobRetryScheduled(
            event_id=job,
            stream_id=job,
            version=3,
            occurred_at=datetime.now(UTC),
            customer_id=stack.customer_id,
            correlation_id=job,
            job_id=job,
            spec=spec,
            attempt=2,
            next_attempt_at=at,
            error_code="CONNECTION_FAILED",
            error_message="reset",
        )

    executor = stack.executor()
    later = "11111111-2222-4333-8444-555555555555"
    stack.send(retry(later, datetime.now(UTC) + timedelta(hours=1)))
    msg = stack.receive()
    assert msg is not None and executor.handle(msg) == "not-due"
    stack.send(retry(job_id, datetime.now(UTC) - timedelta(seconds=1)))
    msg = stack.receive()
    assert msg is not None and executor.handle(msg) == "finished"
    assert stack.types(job_id).count("LeaseAcquired") == 1
