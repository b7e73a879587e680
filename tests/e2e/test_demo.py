"""``ferry demo --exit``: the README's first command runs every flow and stops cleanly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import PYTHON, REPO, clean_env, processes_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def test_demo_runs_every_flow_and_exits(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    argv = [
        PYTHON, "-m", "ferry.cli", "demo", "--exit", "--size-mb", "20",
        "--port", "0", "--moto-port", "0", "--sftp-port", "0",
        "--data-dir", str(data_dir), "--timeout", "240",
    ]  # fmt: skip
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=360,
        env=clean_env(COLUMNS="160"),
        cwd=REPO,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "demo succeeded" in output
    for flow in ("S3_TO_S3", "S3_TO_SFTP", "SFTP_TO_S3", "SFTP_TO_SFTP"):
        assert flow in output
    assert "JobSucceeded" in output  # the audit trail
    assert "Failure notification arrived by e-mail to ops@example.com" in output
    root = data_dir / "sftp-root"
    assert (root / "inbox" / "big.bin").stat().st_size == 20 * 1000 * 1000
    assert (root / "archive" / "photos.bin").read_bytes() == (
        root / "outbox" / "photos.bin"
    ).read_bytes()
    assert processes_of(data_dir) == []
