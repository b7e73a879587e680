"""The executor's SFTP adapter against a real OpenSSH sshd on loopback (and the demo server)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ferry.local.sftp_server import start_sftp_server
from services.executor.egress import EgressPolicy, parse_allow_list
from services.executor.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    EgressDenied,
    HostKeyMismatch,
    HostNotFound,
    InvalidConfiguration,
    PermissionDenied,
    SourceNotFound,
    TargetChanged,
    TargetExists,
    TransferTimeout,
)
from services.executor.sftp import (
    SftpCredentials,
    SftpSession,
    SftpTarget,
    connect,
    fingerprint_of_key_line,
)
from tests.support.sshd import EGRESS_ALLOW_VARIABLE, TEST_EGRESS_ALLOW, SshdServer

MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def target_of(server: SshdServer, host_key: str | None = None) -> SftpTarget:
    return SftpTarget(server.host, server.port, host_key or server.host_key_line)


def key_creds(server: SshdServer) -> SftpCredentials:
    return SftpCredentials(server.username, private_key=server.private_key_text)


def auth_attempts(server: SshdServer) -> int:
    """Lines where sshd considered credentials (Accepted/Failed/Postponed ... for USER from)."""
    return server.count_log(f" for {server.username} from ")


@pytest.fixture(scope="module")
def session(sshd: SshdServer) -> Iterator[SftpSession]:
    with connect(target_of(sshd), key_creds(sshd)) as s:
        yield s


@pytest.fixture(scope="module")
def own_sshd() -> Iterator[SshdServer]:
    """A private sshd for tests that stop and restart it."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with pytest.MonkeyPatch.context() as patch, SshdServer() as server:
        patch.setenv(EGRESS_ALLOW_VARIABLE, TEST_EGRESS_ALLOW)
        yield server


def write_file(session: SftpSession, path: str, data: bytes, piece: int = 8 * MiB) -> None:
    with session.open_write(path) as w:
        for i in range(0, len(data), piece):
            w.write(data[i : i + piece])
            w.flush()
        assert w.tell() == len(data) == w.acknowledged


# --- data ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1000, 5 * MiB + 7])
def test_write_then_read_roundtrip(session: SftpSession, sftp_dir: Path, size: int) -> None:
    data = os.urandom(size)
    path = f"{sftp_dir}/file-{size}.bin"

    write_file(session, path, data, piece=2 * MiB)

    assert sha(Path(path).read_bytes()) == sha(data)
    assert b"".join(session.read_stream(path, block_size=1 * MiB)) == data
    st = session.stat(path)
    assert st is not None and st.size == size and not st.is_dir and st.mtime > 0
    assert session.read_range_sha256(path, 0, size) == sha(data)


def test_read_stream_from_offset_in_bounded_blocks(session: SftpSession, sftp_dir: Path) -> None:
    data = os.urandom(3 * MiB + 123)
    path = sftp_dir / "src.bin"
    path.write_bytes(data)

    blocks = list(session.read_stream(str(path), offset=MiB + 5, block_size=256 * 1024))

    assert b"".join(blocks) == data[MiB + 5 :]
    assert all(len(b) == 256 * 1024 for b in blocks[:-1]) and 0 < len(blocks[-1]) <= 256 * 1024
    assert list(session.read_stream(str(path), offset=len(data))) == []
    assert list(session.read_stream(str(path), offset=len(data) + 10)) == []
    assert session.read_range_sha256(str(path), 1000, 4096) == sha(data[1000:5096])


def test_read_stream_limited_to_a_length(session: SftpSession, sftp_dir: Path) -> None:
    data = os.urandom(2 * MiB)
    path = sftp_dir / "src.bin"
    path.write_bytes(data)

    blocks = list(session.read_stream(str(path), 100, block_size=300_000, length=MiB))

    assert b"".join(blocks) == data[100 : 100 + MiB]
    assert [len(b) for b in blocks] == [300_000] * 3 + [MiB - 900_000]


def test_read_stream_follows_a_growing_file(session: SftpSession, sftp_dir: Path) -> None:
    path = sftp_dir / "growing.bin"
    first, more = os.urandom(MiB), os.urandom(MiB + 3)
    path.write_bytes(first)

    with session.read_stream(str(path), block_size=256 * 1024) as stream:
        got = next(stream)
        with open(path, "ab") as f:
            f.write(more)
        got += b"".join(stream)

    assert got == first + more


def test_read_stream_closed_early_releases_the_file(session: SftpSession, sftp_dir: Path) -> None:
    path = sftp_dir / "src.bin"
    path.write_bytes(os.urandom(4 * MiB))

    with session.read_stream(str(path), block_size=64 * 1024) as stream:
        first = next(stream)

    assert len(first) == 64 * 1024
    assert list(stream) == []
    assert session.stat(str(path)) is not None  # the session is still usable


def test_resume_write_at_offset_truncates_the_rest(session: SftpSession, sftp_dir: Path) -> None:
    path = f"{sftp_dir}/partial.bin"
    old = os.urandom(3 * MiB)
    write_file(session, path, old)
    new = os.urandom(MiB + 17)

    with session.open_write(path, offset=MiB) as w:
        assert w.tell() == MiB
        w.write(new)
        w.flush()

    assert Path(path).read_bytes() == old[:MiB] + new


def test_resume_needs_the_committed_prefix(session: SftpSession, sftp_dir: Path) -> None:
    path = f"{sftp_dir}/short.bin"
    write_file(session, path, b"x" * 100)

    with pytest.raises(TargetChanged):
        session.open_write(path, offset=101)
    with pytest.raises(TargetChanged):
        session.open_write(f"{sftp_dir}/gone.bin", offset=5)


def test_writer_accepts_bytearray_and_memoryview(session: SftpSession, sftp_dir: Path) -> None:
    path = f"{sftp_dir}/views.bin"
    buf = bytearray(b"a" * 1000)
    with session.open_write(path) as w:
        w.write(buf)
        buf[:] = b"b" * 1000  # the writer copied it: reusing the buffer is safe
        w.write(memoryview(buf)[:10])
    assert Path(path).read_bytes() == b"a" * 1000 + b"b" * 10


# --- namespace -----------------------------------------------------------------------------------
def test_rename_overwrite_true_replaces(session: SftpSession, sftp_dir: Path) -> None:
    (sftp_dir / "a").write_bytes(b"new")
    (sftp_dir / "b").write_bytes(b"old")

    session.rename(f"{sftp_dir}/a", f"{sftp_dir}/b", overwrite=True)

    assert (sftp_dir / "b").read_bytes() == b"new" and not (sftp_dir / "a").exists()


def test_rename_overwrite_false_refuses_an_existing_target(
    session: SftpSession, sftp_dir: Path
) -> None:
    (sftp_dir / "a").write_bytes(b"new")
    (sftp_dir / "b").write_bytes(b"old")

    with pytest.raises(TargetExists) as err:
        session.rename(f"{sftp_dir}/a", f"{sftp_dir}/b", overwrite=False)

    assert err.value.code == "TARGET_EXISTS" and not err.value.transient
    assert (sftp_dir / "a").read_bytes() == b"new" and (sftp_dir / "b").read_bytes() == b"old"
    session.rename(f"{sftp_dir}/a", f"{sftp_dir}/c", overwrite=False)
    assert (sftp_dir / "c").read_bytes() == b"new"


def test_rename_of_a_missing_source(session: SftpSession, sftp_dir: Path) -> None:
    with pytest.raises(SourceNotFound):
        session.rename(f"{sftp_dir}/nope", f"{sftp_dir}/x", overwrite=True)


def test_makedirs_remove_and_missing_files(session: SftpSession, sftp_dir: Path) -> None:
    session.makedirs(f"{sftp_dir}/a/b/c")
    session.makedirs(f"{sftp_dir}/a/b/c")  # idempotent
    st = session.stat(f"{sftp_dir}/a/b")
    assert st is not None and st.is_dir
    (sftp_dir / "a" / "f").write_bytes(b"1")

    session.remove(f"{sftp_dir}/a/f")
    session.remove(f"{sftp_dir}/a/f", missing_ok=True)

    assert session.stat(f"{sftp_dir}/a/f") is None
    with pytest.raises(SourceNotFound):
        session.remove(f"{sftp_dir}/a/f")
    with pytest.raises(SourceNotFound) as err:
        session.read_stream(f"{sftp_dir}/missing.bin")
    assert err.value.code == "SOURCE_NOT_FOUND" and not err.value.transient


def test_permission_denied(sshd: SshdServer, session: SftpSession, sftp_dir: Path) -> None:
    locked = sftp_dir / "root-only"
    locked.mkdir(mode=0o755)  # owned by root: the sftp user may list it, not write in it
    secret = sftp_dir / "secret.bin"
    secret.write_bytes(b"s")
    secret.chmod(0o600)

    with pytest.raises(PermissionDenied) as err:
        session.open_write(f"{locked}/x.bin")
    assert err.value.code == "PERMISSION_DENIED" and not err.value.transient
    with pytest.raises(PermissionDenied):
        session.read_stream(str(secret))
    with pytest.raises(PermissionDenied):
        session.makedirs(f"{locked}/sub")


@pytest.fixture
def many_dir(sftp_dir: Path) -> Iterator[Path]:
    """On tmpfs when there is one: creating thousands of files on a busy disk takes seconds."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else sftp_dir
    path = Path(tempfile.mkdtemp(prefix="ferry-many-", dir=base))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_iter_dir_streams_thousands_of_entries(
    session: SftpSession, sftp_dir: Path, many_dir: Path
) -> None:
    big = many_dir
    names = {f"f{i:05d}.txt" for i in range(3000)}
    for name in names:
        (big / name).write_bytes(b"x" * 3)
    (big / "sub").mkdir()

    entries = list(session.iter_dir(str(big)))

    assert {e.name for e in entries} == names | {"sub"}
    assert all(e.size == 3 and not e.is_dir for e in entries if e.name != "sub")
    assert [e.is_dir for e in entries if e.name == "sub"] == [True]
    first = next(iter(session.iter_dir(str(big))))  # abandoning the iterator early is fine
    assert first.name
    with pytest.raises(SourceNotFound):
        list(session.iter_dir(f"{sftp_dir}/nope"))


# --- connecting, pinning, authenticating ---------------------------------------------------------
def test_password_rsa_pem_and_encrypted_keys_authenticate(sshd: SshdServer) -> None:
    for creds in (
        SftpCredentials(sshd.username, password=sshd.password),
        SftpCredentials(sshd.username, private_key=sshd.rsa_private_key_text),
        SftpCredentials(
            sshd.username,
            private_key=sshd.encrypted_private_key_text,
            passphrase=sshd.key_passphrase,
        ),
    ):
        with connect(target_of(sshd, sshd.host_key_fingerprint), creds) as s:
            assert s.stat(str(sshd.root)) is not None


@pytest.mark.parametrize("form", ["line", "fingerprint"])
def test_host_key_mismatch_sends_no_credentials(
    sshd: SshdServer, sftp_dir: Path, form: str
) -> None:
    other_line = (sshd.dir / "untrusted.pub").read_text().strip()  # a valid key, not the host's
    pinned = other_line if form == "line" else fingerprint_of_key_line(other_line)
    before = auth_attempts(sshd)

    with pytest.raises(HostKeyMismatch) as err:
        connect(target_of(sshd, pinned), SftpCredentials(sshd.username, password=sshd.password))

    assert err.value.code == "HOST_KEY_MISMATCH" and not err.value.transient
    assert sshd.password not in str(err.value)
    time.sleep(0.3)  # let sshd log whatever it saw
    assert auth_attempts(sshd) == before
    assert list(sftp_dir.iterdir()) == []


def test_fingerprint_of_key_line_matches_ssh_keygen(sshd: SshdServer) -> None:
    assert fingerprint_of_key_line(sshd.host_key_line) == sshd.host_key_fingerprint
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(sshd.dir / "host_ed25519.pub")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split()[1] == sshd.host_key_fingerprint


@pytest.mark.parametrize(
    "creds_of",
    [
        lambda s: SftpCredentials(s.username, password="wrong-password"),
        lambda s: SftpCredentials(s.username, private_key=s.untrusted_private_key_text),
        lambda s: SftpCredentials(
            s.username, private_key=s.encrypted_private_key_text, passphrase="bad-pass-7"
        ),
        lambda s: SftpCredentials("nobody-here", password=s.password),
    ],
    ids=["wrong-password", "wrong-key", "wrong-passphrase", "unknown-user"],
)
def test_authentication_failures_are_fast_and_permanent(
    sshd: SshdServer, creds_of: Callable[[SshdServer], SftpCredentials]
) -> None:
    creds = creds_of(sshd)
    started = time.monotonic()

    with pytest.raises(AuthenticationFailed) as err:
        connect(target_of(sshd), creds)

    assert time.monotonic() - started < 3.0
    assert err.value.code == "AUTH_FAILED" and not err.value.transient
    for secret in (creds.password, creds.passphrase, creds.private_key):
        assert not secret or secret not in str(err.value)


def test_credentials_never_show_secrets(sshd: SshdServer) -> None:
    creds = SftpCredentials(
        sshd.username, private_key=sshd.private_key_text, passphrase="pp", password="pw-123"
    )
    assert "pw-123" not in repr(creds) and "PRIVATE KEY" not in repr(creds)
    assert "pp" not in repr(creds).replace(sshd.username, "")


def test_bad_configuration(sshd: SshdServer) -> None:
    with pytest.raises(InvalidConfiguration):
        connect(target_of(sshd, "not a key"), key_creds(sshd))
    with pytest.raises(InvalidConfiguration):
        connect(target_of(sshd), SftpCredentials(sshd.username, private_key="garbage"))
    with pytest.raises(InvalidConfiguration):
        connect(target_of(sshd), SftpCredentials(sshd.username))


def test_unresponsive_server_times_out() -> None:
    with socket.socket() as listener:  # accepts TCP, never speaks SSH
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TransferTimeout) as err:
            connect(
                SftpTarget("127.0.0.1", port, "SHA256:" + "A" * 43),
                SftpCredentials("u", password="p"),
                timeout=1.0,
            )
        assert time.monotonic() - started < 5.0
        assert err.value.transient


# --- egress policy and stable connect errors --------------------------------------------------
class ConnectRecorder:
    """Records every ``socket.connect`` of this process (a Python audit hook: asyncio's
    sock_connect and asyncssh both go through ``socket.connect``)."""

    _installed: ConnectRecorder | None = None

    def __init__(self) -> None:
        self.active = False
        self.addresses: list[tuple[Any, ...]] = []

    @classmethod
    def get(cls) -> ConnectRecorder:
        if cls._installed is None:
            recorder = cls()

            def hook(event: str, args: tuple[Any, ...]) -> None:
                if recorder.active and event == "socket.connect":
                    recorder.addresses.append(tuple(args[1]))

            sys.addaudithook(hook)  # audit hooks cannot be removed: gated by ``active``
            cls._installed = recorder
        return cls._installed

    def __enter__(self) -> ConnectRecorder:
        self.addresses = []
        self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False

    def to_port(self, port: int) -> list[tuple[Any, ...]]:
        return [a for a in self.addresses if len(a) >= 2 and a[1] == port]


def connections_logged(server: SshdServer) -> int:
    return server.count_log("Connection from ")


@pytest.mark.parametrize("allow", ["", "127.0.0.2/32", "10.0.0.0/8,::1/128"])
def test_egress_policy_refuses_the_sshd_without_opening_a_socket(
    sshd: SshdServer, monkeypatch: pytest.MonkeyPatch, allow: str
) -> None:
    """The test sshd on 127.0.0.1 with an allow-list that excludes it (or none at all)."""
    monkeypatch.setenv(EGRESS_ALLOW_VARIABLE, allow)
    before = connections_logged(sshd)
    with ConnectRecorder.get() as recorder, pytest.raises(EgressDenied) as err:
        connect(target_of(sshd), key_creds(sshd), timeout=3)
    assert err.value.code == "EGRESS_DENIED" and not err.value.transient
    assert err.value.message == "127.0.0.1 is not reachable under Ferry's egress policy"
    assert recorder.to_port(sshd.port) == [] and recorder.addresses == []
    time.sleep(0.3)  # sshd logs a connection as soon as it accepts one
    assert connections_logged(sshd) == before


@pytest.mark.parametrize("host", ["localhost", "127.1", "2130706433", "::ffff:127.0.0.1"])
def test_other_spellings_of_the_sshd_address_are_refused_too(
    sshd: SshdServer, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv(EGRESS_ALLOW_VARIABLE, "127.0.0.2/32")
    with ConnectRecorder.get() as recorder, pytest.raises(EgressDenied):
        connect(SftpTarget(host, sshd.port, sshd.host_key_line), key_creds(sshd), timeout=3)
    assert recorder.addresses == []


def test_allow_listed_mapped_ipv6_form_reaches_the_sshd(sshd: SshdServer) -> None:
    """``::ffff:127.0.0.1`` is judged as 127.0.0.1 (allow-listed here) and connects over it."""
    with (
        ConnectRecorder.get() as recorder,
        connect(
            SftpTarget("::ffff:127.0.0.1", sshd.port, sshd.host_key_line), key_creds(sshd)
        ) as s,
    ):
        assert s.stat(str(sshd.root)) is not None
    assert [a[0] for a in recorder.to_port(sshd.port)] == ["::ffff:127.0.0.1"]


def test_connect_goes_to_the_checked_address_only_dns_rebinding(sshd: SshdServer) -> None:
    """A name that answers 127.0.0.1 (allowed) first and 127.0.0.3 (refused) afterwards: each
    connect resolves exactly once and the socket goes to the address that was checked. The
    name is ``.invalid``: had asyncssh resolved it itself, the first connect would fail."""
    calls: list[str] = []
    answers = iter(["127.0.0.1", "127.0.0.3"])

    def rebinding(host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    policy = EgressPolicy(parse_allow_list("127.0.0.1/32"), resolver=rebinding)
    target = SftpTarget("rebind.invalid", sshd.port, sshd.host_key_line)
    with ConnectRecorder.get() as recorder:
        with connect(target, key_creds(sshd), egress=policy) as s:
            assert s.stat(str(sshd.root)) is not None
        assert calls == ["rebind.invalid"]
        assert recorder.to_port(sshd.port) == [("127.0.0.1", sshd.port)]

        with pytest.raises(EgressDenied) as err:
            connect(target, key_creds(sshd), egress=policy)
        assert "rebind.invalid" in err.value.message
        assert calls == ["rebind.invalid"] * 2
        assert recorder.to_port(sshd.port) == [("127.0.0.1", sshd.port)]  # nothing new


def test_unresolvable_host_is_host_not_found() -> None:
    with pytest.raises(HostNotFound) as err:
        connect(
            SftpTarget("no-such-host.invalid", 22, "SHA256:" + "A" * 43),
            SftpCredentials("u", password="p"),
        )
    assert err.value.code == "HOST_NOT_FOUND"
    assert err.value.message == "no-such-host.invalid could not be resolved"


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
def test_pinned_key_of_another_type_is_host_key_mismatch(
    sshd: SshdServer, tmp_path: Path, key_type: str
) -> None:
    """The sshd has only an ed25519 host key; a pin of another type is a mismatch (not a
    key-exchange failure), and no credential is sent."""
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", key_type, "-f", str(key)], check=True)
    before = auth_attempts(sshd)
    with pytest.raises(HostKeyMismatch) as err:
        connect(target_of(sshd, key.with_suffix(".pub").read_text()), key_creds(sshd))
    assert err.value.code == "HOST_KEY_MISMATCH" and not err.value.transient
    assert sshd.host_key_fingerprint.removeprefix("SHA256:") in err.value.message
    time.sleep(0.3)
    assert auth_attempts(sshd) == before


def _one_shot_server(reply: bytes) -> tuple[socket.socket, threading.Thread]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(reply)
            time.sleep(0.5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (b"SSH-1.5-OldServer\r\n", "PROTOCOL_ERROR"),
        (b"SSH-2.0-Garbage\r\n" + b"\x00\x00\x00\x0c\x0a\x14" + b"\xff" * 64, "PROTOCOL_ERROR"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "CONNECTION_FAILED"),
    ],
    ids=["ssh1", "garbage-kex", "http-then-close"],
)
def test_non_ssh_servers_get_stable_codes_and_fixed_messages(reply: bytes, code: str) -> None:
    listener, thread = _one_shot_server(reply)
    port = listener.getsockname()[1]
    try:
        with pytest.raises(ConnectionFailed) as err:
            connect(
                SftpTarget("127.0.0.1", port, "SHA256:" + "A" * 43),
                SftpCredentials("u", password="p"),
                timeout=3,
            )
    finally:
        listener.close()
        thread.join(2)
    assert err.value.code == code, err.value
    assert err.value.message in (
        f"127.0.0.1:{port} did not complete an SSH handshake",
        f"could not connect to 127.0.0.1:{port}",
    )


def test_connect_errors_carry_no_library_or_os_text(own_sshd: SshdServer) -> None:
    own_sshd.stop()
    try:
        with pytest.raises(ConnectionFailed) as err:
            connect(target_of(own_sshd), key_creds(own_sshd))
    finally:
        own_sshd.start()
    for text in ("Errno", "Connect call failed", "Connection lost", "refused)"):
        assert text not in err.value.message


# --- server outages ------------------------------------------------------------------------------
def test_stopped_server_then_restart(own_sshd: SshdServer) -> None:
    own_sshd.stop()
    try:
        with pytest.raises(ConnectionFailed) as err:
            connect(target_of(own_sshd), key_creds(own_sshd))
        assert err.value.code == "CONNECTION_REFUSED" and err.value.transient
        assert err.value.message == f"127.0.0.1:{own_sshd.port} refused the connection"
    finally:
        own_sshd.start()
    with connect(target_of(own_sshd), key_creds(own_sshd)) as s:
        assert s.stat(str(own_sshd.root)) is not None


def test_server_dies_mid_write_then_resume(own_sshd: SshdServer) -> None:
    work = own_sshd.make_dir()
    path = f"{work}/upload.part"
    first, second = os.urandom(4 * MiB), os.urandom(4 * MiB)
    s = connect(target_of(own_sshd), key_creds(own_sshd), op_timeout=10)
    w = s.open_write(path)
    w.write(first)
    w.flush()
    committed = w.acknowledged

    own_sshd.stop()
    started = time.monotonic()
    with pytest.raises(ConnectionFailed):
        for _ in range(8):
            w.write(second)
            w.flush()
    assert time.monotonic() - started < 5.0
    w.abort()
    s.close()
    own_sshd.start()

    with connect(target_of(own_sshd), key_creds(own_sshd)) as s2:
        with s2.open_write(path, offset=committed) as w2:
            w2.write(second)
        assert s2.read_range_sha256(path, 0, 8 * MiB) == sha(first + second)


def test_server_dies_mid_read(own_sshd: SshdServer) -> None:
    work = own_sshd.make_dir()
    (work / "big.bin").write_bytes(os.urandom(16 * MiB))
    s = connect(target_of(own_sshd), key_creds(own_sshd), op_timeout=10)
    stream = s.read_stream(f"{work}/big.bin", block_size=MiB, read_ahead=2)
    next(stream)

    own_sshd.stop()
    try:
        with pytest.raises(ConnectionFailed):
            for _ in stream:
                pass
    finally:
        s.close()
        own_sshd.start()


def test_concurrent_sessions_from_threads(sshd: SshdServer, sftp_dir: Path) -> None:
    errors: list[BaseException] = []
    payloads = {i: os.urandom(MiB + i) for i in range(4)}

    def worker(i: int) -> None:
        try:
            with connect(target_of(sshd), key_creds(sshd)) as s:
                write_file(s, f"{sftp_dir}/t{i}.bin", payloads[i], piece=256 * 1024)
                assert b"".join(s.read_stream(f"{sftp_dir}/t{i}.bin")) == payloads[i]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


# --- the demo's embedded server ------------------------------------------------------------------
def test_embedded_server_serves_a_chrooted_folder(tmp_path: Path) -> None:
    root = tmp_path / "served"
    with start_sftp_server(tmp_path / "data", root, password="demo-pw") as srv:
        target = SftpTarget(srv.host, srv.port, srv.host_key_line)
        with connect(target, SftpCredentials(srv.username, private_key=srv.private_key_text)) as s:
            s.makedirs("/inbox")
            write_file(s, "/inbox/a.bin", b"hello" * 1000)
            s.rename("/inbox/a.bin", "/inbox/b.bin", overwrite=False)
            assert [e.name for e in s.iter_dir("/inbox")] == ["b.bin"]
            assert b"".join(s.read_stream("/inbox/b.bin")) == b"hello" * 1000
            assert s.stat("/../../etc/passwd") is None  # confined to root
        with connect(
            SftpTarget(srv.host, srv.port, srv.host_key_fingerprint),
            SftpCredentials(srv.username, password="demo-pw"),
        ) as s:
            assert s.stat("/inbox/b.bin") is not None
        with pytest.raises(AuthenticationFailed):
            connect(target, SftpCredentials(srv.username, password="nope"))
        line = srv.host_key_line
    assert (root / "inbox" / "b.bin").read_bytes() == b"hello" * 1000

    with start_sftp_server(tmp_path / "data", root) as again:  # keys persist in data_dir
        assert again.host_key_line == line


def test_embedded_server_command_line(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ferry.local.sftp_server",
            "--data-dir",
            str(tmp_path / "d"),
            "--root",
            str(tmp_path / "r"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        details = json.loads(proc.stdout.readline())
        creds = SftpCredentials(
            details["username"], private_key=Path(details["private_key_path"]).read_text()
        )
        with connect(SftpTarget("127.0.0.1", details["port"], details["host_key"]), creds) as s:
            assert list(s.iter_dir("/")) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
