"""The chaos suite (bench/chaos.py): kill -9 the executor, restart sshd and cancel jobs at random
instants across all four flows, then check every job against the bytes at its target.

- ``test_short_chaos_run_counts_zero``: the CI version (12 jobs up to 13 MiB, 3 kills, 1 sshd
  restart, about a quarter of the jobs cancelled), about 1-2 minutes here.
- ``test_long_chaos_run_counts_zero`` (``-m slow``): 200 jobs from 0 B to 64 MiB, 24 kills.
- ``test_the_checks_count_what_they_claim``: the counters themselves, against real targets made
  wrong on purpose (a file behind a CANCELLED job, a second S3 version, a second rename onto an
  SFTP name, a missing file, wrong bytes, a temp file, a staging object, an open multipart
  upload, an extra object), so a zero from the runs above means something.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import asyncssh
import boto3
import pytest

from bench.chaos import Case, Chaos, Plan, run_chaos
from ferry.names import ResourceNames
from tests.support.moto_server import unique_name
from tests.support.sshd import SshdServer

pytestmark = [
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd"),
        reason="needs root and OpenSSH sshd at /usr/sbin/sshd",
    ),
]


def _assert_zero(report: Any) -> None:
    print(report.format())
    assert report.problems() == {}, report.format()
    assert report.jobs == sum(report.statuses.values())


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_short_chaos_run_counts_zero(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    report = run_chaos(Plan.short(seed), tmp_path)
    _assert_zero(report)
    assert report.kills >= 2 and report.sshd_restarts == 1


@pytest.mark.slow
def test_long_chaos_run_counts_zero(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    report = run_chaos(Plan.long(seed), tmp_path)
    _assert_zero(report)
    assert report.kills >= 20 and report.jobs >= 200


# ------------------------------------------------------------------ the checks themselves
class FakeRun:
    """What Chaos.inspect uses of bench._local.LocalRun, on the test session's moto server and
    an sshd of this test with its SFTP operation log on; the API knows no job (404)."""

    def __init__(self, sshd: SshdServer) -> None:
        self.sshd = sshd
        self.names = ResourceNames(unique_name("chaos"))

    def client(self, service: str) -> Any:
        return boto3.client(service)  # type: ignore[call-overload]

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return 404, {}

    def sftp_dir(self, name: str) -> Path:
        return self.sshd.make_dir(name)


def _sftp_put_twice(sshd: SshdServer, final: Path, data: bytes) -> None:
    """Write the final name twice the way the executor does (temp file, then rename)."""

    async def put() -> None:
        async with (
            asyncssh.connect(
                sshd.host,
                port=sshd.port,
                username=sshd.username,
                client_keys=[str(sshd.private_key_path)],
                known_hosts=None,
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            for _ in range(2):
                temp = f"{final.parent}/.{final.name}.ferry-part"
                async with sftp.open(temp, "wb") as f:
                    await f.write(data)
                await sftp.posix_rename(temp, str(final))

    asyncio.run(put())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def logged_sshd() -> Any:
    with SshdServer(sftp_log_level="INFO") as server:
        yield server


def test_the_checks_count_what_they_claim(aws_env: dict[str, str], logged_sshd: Any) -> None:
    run = FakeRun(logged_sshd)
    plan = Plan.short(0)
    chaos = Chaos(run, plan, log=lambda _m: None)  # type: ignore[arg-type]
    chaos.src_bucket, chaos.dst_bucket = unique_name("csrc"), unique_name("cdst")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=chaos.dst_bucket)
    s3.put_bucket_versioning(Bucket=chaos.dst_bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket=run.names.staging_bucket)
    chaos.sftp_root = run.sftp_dir("chaos")
    dst = chaos.sftp_root / "dst"
    dst.mkdir()
    logged_sshd.chown_to_user(dst)

    good, other = b"the source bytes", b"something else"
    cases = [
        Case(0, "S3_TO_S3", 16, "src/0", "dst/ok.bin", _sha(good), job_id="j-ok"),
        Case(1, "S3_TO_SFTP", 16, "src/1", "dst/cancelled.bin", _sha(good), job_id="j-cancel"),
        Case(2, "SFTP_TO_S3", 16, "src/2", "dst/twice.bin", _sha(good), job_id="j-twice"),
        Case(3, "SFTP_TO_SFTP", 16, "src/3", "dst/missing.bin", _sha(good), job_id="j-lost"),
        Case(4, "S3_TO_S3", 16, "src/4", "dst/wrong.bin", _sha(good), job_id="j-wrong"),
        Case(5, "S3_TO_SFTP", 16, "src/5", "dst/renamed.bin", _sha(good), job_id="j-renamed"),
        Case(6, "SFTP_TO_S3", 16, "src/6", "dst/failed.bin", _sha(good), job_id="j-failed"),
    ]
    states = ["SUCCEEDED", "CANCELLED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED"]
    for case, state in zip(cases, [*states, "FAILED"], strict=True):
        case.status = state
    cases[6].error_code = None  # FAILED and no reason given
    chaos.cases = cases
    chaos.report.jobs = len(cases)

    s3.put_object(Bucket=chaos.dst_bucket, Key="dst/ok.bin", Body=good)
    (dst / "cancelled.bin").write_bytes(good)  # delivered, yet CANCELLED
    s3.put_object(Bucket=chaos.dst_bucket, Key="dst/twice.bin", Body=good)
    s3.put_object(Bucket=chaos.dst_bucket, Key="dst/twice.bin", Body=good)  # second version
    s3.put_object(Bucket=chaos.dst_bucket, Key="dst/wrong.bin", Body=other)
    _sftp_put_twice(logged_sshd, dst / "renamed.bin", good)  # two renames onto the name
    (dst / ".left.bin.ferry-part").write_bytes(b"partial")
    s3.put_object(Bucket=chaos.dst_bucket, Key="dst/nobody.bin", Body=good)  # no job names it
    s3.put_object(Bucket=run.names.staging_bucket, Key="staging/j-x", Body=good)
    s3.create_multipart_upload(Bucket=chaos.dst_bucket, Key="dst/open.bin")

    report = chaos.inspect()
    print(report.format())
    counts = dict(report.counts)
    assert counts == {
        "lying": 2,  # j-cancel (CANCELLED, file there) and j-lost (SUCCEEDED, none)
        "lost": 1,  # j-lost
        "duplicated": 3,  # j-twice (2 versions), j-renamed (2 renames), dst/nobody.bin
        "corrupt": 1,  # j-wrong
        "unexplained": 1,  # j-failed
        "temp_files": 1,
        "incomplete_uploads": 1,
        "staging_objects": 1,
    }, report.format()
    assert any("j-cancel" in d for d in report.findings["lying"])
    assert any("j-renamed" in d and "2 times" in d for d in report.findings["duplicated"])
    assert any("j-twice" in d and "2 versions" in d for d in report.findings["duplicated"])
