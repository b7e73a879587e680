"""The asyncssh tuning against the suite's real OpenSSH sshd: same bytes, both AEAD ciphers.

Ferry's adapter (``services.executor.sftp``, which installs the tuning at import) negotiates
aes128-gcm@openssh.com first; an asyncssh client limited to chacha20-poly1305 (the fallback)
round-trips too. Each side hashes what it wrote and what came back.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import asyncssh
import pytest

from services.executor import asyncssh_tuning
from services.executor.sftp import SftpCredentials, SftpTarget, connect
from tests.support.sshd import SshdServer

MiB = 1024 * 1024
DATA = os.urandom(6 * MiB + 123)


def test_ferry_adapter_round_trips_over_aes_gcm_with_the_tuning(
    sshd: SshdServer, sftp_dir: Path
) -> None:
    assert asyncssh_tuning.status().installed
    target = SftpTarget(sshd.host, sshd.port, sshd.host_key_line)
    with connect(target, SftpCredentials(sshd.username, private_key=sshd.private_key_text)) as s:
        assert s._conn.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
        assert s._conn.get_extra_info("recv_cipher") == "aes128-gcm@openssh.com"
        path = str(sftp_dir / "gcm.bin")
        with s.open_write(path) as w:
            for i in range(0, len(DATA), 1 * MiB):
                w.write(DATA[i : i + 1 * MiB])
            w.flush()
        back = b"".join(s.read_stream(path))
    assert (sftp_dir / "gcm.bin").read_bytes() == DATA
    assert hashlib.sha256(back).digest() == hashlib.sha256(DATA).digest()


async def _chacha_round_trip(sshd: SshdServer, path: str) -> tuple[str, bytes]:
    async with asyncssh.connect(
        sshd.host,
        sshd.port,
        username=sshd.username,
        client_keys=[asyncssh.import_private_key(sshd.private_key_text)],
        known_hosts=asyncssh.import_known_hosts(
            f"[{sshd.host}]:{sshd.port} {sshd.host_key_line}\n"
        ),
        encryption_algs=["chacha20-poly1305@openssh.com"],
        agent_path=None,
    ) as conn:
        cipher = str(conn.get_extra_info("send_cipher"))
        async with conn.start_sftp_client() as sftp:
            async with sftp.open(path, "wb") as f:
                await f.write(DATA)
            async with sftp.open(path, "rb") as f:
                back = await f.read()
    return cipher, bytes(back)


def test_chacha20_fallback_round_trips_with_the_tuning(sshd: SshdServer, sftp_dir: Path) -> None:
    assert asyncssh_tuning.status().installed
    cipher, back = asyncio.run(_chacha_round_trip(sshd, str(sftp_dir / "chacha.bin")))
    assert cipher == "chacha20-poly1305@openssh.com"
    assert (sftp_dir / "chacha.bin").read_bytes() == DATA
    assert back == DATA


if os.geteuid() != 0:  # pragma: no cover - the sshd fixture skips too
    pytest.skip("needs root", allow_module_level=True)
