"""e2e tests: the local stack (``ferry up`` / ``ferry demo``) driven through the CLI and HTTP API."""

from __future__ import annotations

import pytest

from tests.support.sshd import sftp_dir, sshd

__all__ = ["sftp_dir", "sshd"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: runs the local stack in subprocesses (tens of seconds)"
    )
