"""The SFTP egress policy on the local stack: its validator allow-lists 127.0.0.0/8 (the demo
server, the test sshd), so an endpoint on the test sshd becomes ACTIVE, while the same sshd
named as ``::1`` (IPv6 loopback, outside the allow-list) is EGRESS_DENIED with the fixed
message. Only loopback addresses are ever named here."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.harness import Stack
from tests.support.sshd import SshdServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def add_sftp(stack: Stack, sshd: SshdServer, host: str, name: str) -> dict[str, Any]:
    created: dict[str, Any] = stack.cli_json(
        "endpoints", "add", "--name", name, "--type", "sftp", "--host", host,
        "--port", str(sshd.port), "--username", sshd.username, "--base-path", str(sshd.root),
        "--host-key", sshd.host_key_line, "--direction", "BOTH",
        "--private-key-file", str(sshd.private_key_path),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        found: dict[str, Any] = stack.cli_json("endpoints", "show", created["endpoint_id"])
        if found.get("status") != "PENDING_VALIDATION" or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_the_local_stack_reaches_loopback_sftp_and_refuses_the_rest(
    stack: Stack, sshd: SshdServer
) -> None:
    ok = add_sftp(stack, sshd, "127.0.0.1", "loopback-v4")
    assert ok["status"] == "ACTIVE", ok

    denied = add_sftp(stack, sshd, "::1", "loopback-v6")
    assert denied["status"] == "VALIDATION_FAILED", denied
    reason = str(denied.get("status_reason"))
    assert reason.startswith("EGRESS_DENIED"), reason
    # (without the policy this would be CONNECTION_REFUSED: sshd listens on 127.0.0.1 only)
    assert "::1 is not reachable under Ferry's egress policy" in reason
