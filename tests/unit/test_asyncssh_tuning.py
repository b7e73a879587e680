"""services.executor.asyncssh_tuning: fewer packets and objects, same bytes on the wire's meaning.

An in-process asyncssh server on 127.0.0.1 (real sockets, real key exchange) echoes what the
client sends; the client's sent packets are counted through asyncssh's own packet logger hook.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from typing import Any

import asyncssh
import pytest
from asyncssh import connection as asyncssh_connection
from asyncssh.crypto.cipher import GCMCipher
from asyncssh.packet import SSHPacketLogger
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.executor import asyncssh_tuning

MSG_IGNORE = 2
MSG_CHANNEL_DATA = 94
PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)


@pytest.fixture
def tuned() -> Iterator[None]:
    was = asyncssh_tuning.status().installed
    got = asyncssh_tuning.install()
    assert got.installed, got.reason
    yield
    if not was:
        asyncssh_tuning.uninstall()


@pytest.fixture
def untuned() -> Iterator[None]:
    was = asyncssh_tuning.status().installed
    asyncssh_tuning.uninstall()
    yield
    if was:
        asyncssh_tuning.install()


class _Counter:
    """Packets the client connection sent (itself or its channels), by SSH message type."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: dict[int, int] = {}
        self.conn: Any = None
        original = SSHPacketLogger.log_sent_packet
        counter = self

        def log_sent_packet(logger: Any, pkttype: int, *args: Any, **kwargs: Any) -> None:
            conn = logger if isinstance(logger, asyncssh.SSHClientConnection) else None
            conn = conn or getattr(logger, "_conn", None)
            if conn is not None and conn is counter.conn:
                counter.sent[pkttype] = counter.sent.get(pkttype, 0) + 1
            original(logger, pkttype, *args, **kwargs)

        monkeypatch.setattr(SSHPacketLogger, "log_sent_packet", log_sent_packet)


async def _echo(process: asyncssh.SSHServerProcess[bytes]) -> None:
    digest = hashlib.sha256()
    while chunk := await process.stdin.read(65536):
        digest.update(chunk)
        process.stdout.write(chunk)
    process.stdout.write(b"sha256=" + digest.hexdigest().encode())
    process.exit(0)


async def _round_trip(cipher: str, counter: _Counter) -> tuple[bytes, str, str]:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        asyncssh.SSHServer,
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(
            client_key.export_public_key().decode()
        ),
        encryption_algs=[cipher],
        process_factory=_echo,
        encoding=None,
    )
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncssh.connect(
            "127.0.0.1",
            port,
            username="u",
            client_keys=[client_key],
            known_hosts=None,
            encryption_algs=[cipher],
            agent_path=None,
        ) as conn:
            counter.conn = conn
            negotiated = conn.get_extra_info("send_cipher")
            result = await conn.run(input=PAYLOAD, encoding=None, check=True)
            out = bytes(result.stdout or b"")
    finally:
        server.close()
        await server.wait_closed()
    echoed, _, tail = out.rpartition(b"sha256=")
    return echoed, tail.decode(), str(negotiated)


@pytest.mark.parametrize("cipher", ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"])
def test_no_ignore_packet_before_each_aead_packet(
    tuned: None, cipher: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = _Counter(monkeypatch)
    echoed, server_sha, negotiated = asyncio.run(_round_trip(cipher, counter))
    assert negotiated == cipher
    assert echoed == PAYLOAD
    assert server_sha == hashlib.sha256(PAYLOAD).hexdigest()
    assert counter.sent.get(MSG_CHANNEL_DATA, 0) > 50
    assert counter.sent.get(MSG_IGNORE, 0) == 0


def test_without_the_tuning_asyncssh_sends_one_ignore_per_packet(
    untuned: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = _Counter(monkeypatch)
    echoed, _, _ = asyncio.run(_round_trip("aes128-gcm@openssh.com", counter))
    assert echoed == PAYLOAD
    assert counter.sent.get(MSG_IGNORE, 0) >= counter.sent.get(MSG_CHANNEL_DATA, 0) > 50


def test_cbc_keeps_its_ignore_packets(tuned: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 4251 §9.3.1: the countermeasure stays where it matters."""
    counter = _Counter(monkeypatch)
    echoed, _, negotiated = asyncio.run(_round_trip("aes128-cbc", counter))
    assert negotiated == "aes128-cbc"
    assert echoed == PAYLOAD
    assert counter.sent.get(MSG_IGNORE, 0) >= counter.sent.get(MSG_CHANNEL_DATA, 0) > 50


def test_gcm_cipher_reuses_one_aesgcm_and_matches_the_reference(tuned: None) -> None:
    key, iv = os.urandom(16), os.urandom(12)
    sender, receiver = GCMCipher("aes128-gcm", key, iv), GCMCipher("aes128-gcm", key, iv)
    reference_iv = bytearray(iv)
    seen: set[int] = set()
    for n in range(40):
        header, data = n.to_bytes(4, "big"), os.urandom(1000 + n)
        ct, tag = sender.encrypt_and_sign(header, data)
        seen.add(id(sender.__dict__["_ferry_aesgcm"]))
        expected = AESGCM(key).encrypt(bytes(reference_iv), data, header)
        assert ct == header + expected[:-16] and tag == expected[-16:]
        assert receiver.verify_and_decrypt(header, ct[4:], tag) == data
        counter = (int.from_bytes(reference_iv[4:], "big") + 1) & 0xFFFFFFFFFFFFFFFF
        reference_iv[4:] = counter.to_bytes(8, "big")
    assert len(seen) == 1
    ct, tag = sender.encrypt_and_sign(b"hdr!", b"payload")
    assert receiver.verify_and_decrypt(b"hdr!", ct[4:], bytes(16)) is None  # a bad tag: refused


def test_install_is_idempotent_and_uninstall_restores(untuned: None) -> None:
    original = asyncssh_connection.SSHConnection.send_packet
    assert asyncssh_tuning.install().installed
    assert asyncssh_tuning.install().installed
    assert asyncssh_connection.SSHConnection.send_packet is not original
    asyncssh_tuning.uninstall()
    assert asyncssh_connection.SSHConnection.send_packet is original
    assert not asyncssh_tuning.status().installed


def test_an_untested_version_is_left_alone(untuned: None, monkeypatch: pytest.MonkeyPatch) -> None:
    original = asyncssh_connection.SSHConnection.send_packet
    monkeypatch.setattr(asyncssh, "__version__", "9.0.0")
    got = asyncssh_tuning.install()
    assert not got.installed and "9.0.0" in got.reason
    assert asyncssh_connection.SSHConnection.send_packet is original
