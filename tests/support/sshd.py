"""A real OpenSSH sshd on 127.0.0.1 for integration tests and benchmarks (needs root).

``SshdServer`` generates a host key and client keys in a temporary directory, makes sure a test
account exists (``ferrysftp``, created with ``useradd`` when missing, given a known password),
writes an sshd_config following /work/shared/FIELD-NOTES.md and runs ``/usr/sbin/sshd -D`` on a
free port, logging to ``log_path`` (LogLevel VERBOSE) so tests can count sessions and failures.

``stop()`` kills the listener *and* every live session (a crash, as far as clients can tell);
``start()`` brings it back on the same port with the same keys.

Remote paths are plain absolute paths of this machine (no chroot): ``root`` is a directory the
test user owns, and the test process (root) can inspect what a transfer wrote directly.

Pytest fixtures (register them from tests/conftest.py, see ``sshd`` below):

- ``sshd``: session-scoped, started once per test session (per xdist worker).
- ``sftp_dir``: a fresh directory under ``sshd.root`` per test, owned by the test user.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
TEST_USER = "ferrysftp"
TEST_PASSWORD = "ferry-test-password-1"  # a throwaway account on a throwaway machine
KEY_PASSPHRASE = "ferry-test-passphrase"
_USER_LOCK = Path("/tmp/ferry-sshd-user.lock")
#: What the tests allow-list for SFTP egress (this sshd listens on 127.0.0.1).
EGRESS_ALLOW_VARIABLE = "FERRY_EGRESS_ALLOW"
TEST_EGRESS_ALLOW = "127.0.0.0/8"


def _run(*args: str, input_text: str | None = None) -> str:
    proc = subprocess.run(args, input=input_text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fingerprint_of_public_key_line(line: str) -> str:
    """``ssh-ed25519 AAAA... comment`` → ``SHA256:<base64, unpadded>`` (as ssh-keygen -l shows)."""
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def ensure_test_user(username: str = TEST_USER, password: str = TEST_PASSWORD) -> pwd.struct_passwd:
    """Create the account if missing and (re)set its password. Idempotent, safe across processes."""
    with open(_USER_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            pwd.getpwnam(username)
        except KeyError:
            _run("useradd", "-m", "-s", "/bin/sh", username)
        # A useradd account is locked under `UsePAM no`; a password unlocks it (and enables
        # the password-auth tests).
        _run("chpasswd", input_text=f"{username}:{password}\n")
        return pwd.getpwnam(username)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class SshdServer:
    """One OpenSSH sshd on 127.0.0.1, its keys, its test account and its log."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        username: str = TEST_USER,
        password: str = TEST_PASSWORD,
        port: int = 0,
        password_auth: bool = True,
        sftp_log_level: str | None = None,
    ) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("SshdServer needs root (it runs sshd and manages a test account)")
        self.username = username
        self.password = password
        self.port = port or free_port()
        self.password_auth = password_auth
        # e.g. "INFO": the SFTP server logs every open/rename/remove to ``sftp_log_path`` (the
        # chaos suite counts renames). internal-sftp can only log to syslog (absent here), so
        # this runs OpenSSH's sftp-server with -e through a wrapper that appends stderr to a file.
        self.sftp_log_level = sftp_log_level
        self.dir = Path(tempfile.mkdtemp(prefix="ferry-sshd-"))
        self.dir.chmod(0o755)  # the test user reads its authorized_keys and walks to root/
        self.log_path = self.dir / "sshd.log"
        self.config_path = self.dir / "sshd_config"
        self.root = self.dir / "root"
        self._proc: subprocess.Popen[bytes] | None = None
        self._setup()

    # --- one-time setup ------------------------------------------------------------------
    def _keygen(self, name: str, *args: str, passphrase: str = "") -> Path:
        path = self.dir / name
        _run(SSH_KEYGEN, "-q", "-N", passphrase, "-C", f"ferry-test-{name}", "-f", str(path), *args)
        return path

    def _setup(self) -> None:
        account = ensure_test_user(self.username, self.password)
        self.uid, self.gid = account.pw_uid, account.pw_gid

        host_key = self._keygen("host_ed25519", "-t", "ed25519")
        self.host_key_line = host_key.with_suffix(".pub").read_text().strip()
        self.host_key_fingerprint = fingerprint_of_public_key_line(self.host_key_line)

        self.private_key_path = self._keygen("client_ed25519", "-t", "ed25519")
        self.rsa_private_key_path = self._keygen(
            "client_rsa", "-t", "rsa", "-b", "2048", "-m", "PEM"
        )
        self.encrypted_private_key_path = self._keygen(
            "client_ed25519_enc", "-t", "ed25519", passphrase=KEY_PASSPHRASE
        )
        self.key_passphrase = KEY_PASSPHRASE
        self.private_key_text = self.private_key_path.read_text()
        self.rsa_private_key_text = self.rsa_private_key_path.read_text()
        self.encrypted_private_key_text = self.encrypted_private_key_path.read_text()
        # A key the server does NOT trust, for the wrong-key tests.
        self.untrusted_private_key_text = self._keygen("untrusted", "-t", "ed25519").read_text()

        authorized = self.dir / f"authorized_keys.{self.username}"
        authorized.write_text(
            "".join(
                p.with_suffix(".pub").read_text()
                for p in (
                    self.private_key_path,
                    self.rsa_private_key_path,
                    self.encrypted_private_key_path,
                )
            )
        )
        os.chown(authorized, self.uid, self.gid)
        authorized.chmod(0o600)

        self.root.mkdir(mode=0o755)
        os.chown(self.root, self.uid, self.gid)

        self.config_path.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {self.host}",
                    f"HostKey {host_key}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.dir}/authorized_keys.%u",
                    f"AllowUsers {self.username}",
                    "PermitRootLogin no",
                    "PubkeyAuthentication yes",
                    f"PasswordAuthentication {'yes' if self.password_auth else 'no'}",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "UseDNS no",
                    "MaxStartups 100",
                    "MaxSessions 100",
                    "MaxAuthTries 10",
                    f"Subsystem sftp {self._sftp_subsystem()}",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )

    @property
    def sftp_log_path(self) -> Path:
        return self.dir / "sftp.log"

    def _sftp_subsystem(self) -> str:
        if not self.sftp_log_level:
            return "internal-sftp"
        wrapper = self.dir / "sftp-logged.sh"
        log = f"-e -l {self.sftp_log_level} 2>>{self.sftp_log_path}"
        wrapper.write_text(f"#!/bin/sh\nexec {SFTP_SERVER} {log}\n")
        wrapper.chmod(0o755)
        self.sftp_log_path.touch()
        os.chown(self.sftp_log_path, self.uid, self.gid)  # the session runs as the test user
        return str(wrapper)

    def sftp_log_text(self) -> str:
        try:
            return self.sftp_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> SshdServer:
        if self.running:
            return self
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege-separation directory
        self._proc = subprocess.Popen(
            [SSHD, "-D", "-f", str(self.config_path), "-E", str(self.log_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    # sshd speaks first: a banner proves it's sshd, not a port squatter.
                    s.settimeout(2.0)
                    if s.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd did not accept on port {self.port}:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, *, kill_sessions: bool = True) -> None:
        """Stop the listener and (by default) kill every live session, like a server crash."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill_sessions:
            # Freeze the listener so it forks no new session while we collect its children.
            os.kill(proc.pid, signal.SIGSTOP)
            for pid in _descendants(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os.kill(proc.pid, signal.SIGKILL)
        else:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> SshdServer:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SshdServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # --- helpers for tests ------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def count_log(self, needle: str) -> int:
        return self.log_text().count(needle)

    def accepted_logins(self) -> int:
        """Successful authentications so far (``Accepted publickey|password for ...``)."""
        return sum(
            1
            for line in self.log_text().splitlines()
            if "Accepted " in line and f" for {self.username} from " in line
        )

    def make_dir(self, name: str | None = None, *, owner_is_user: bool = True) -> Path:
        """A new directory under ``root`` (owned by the test user unless told otherwise)."""
        path = self.root / (name or uuid.uuid4().hex[:12])
        path.mkdir(mode=0o755, parents=True)
        if owner_is_user:
            os.chown(path, self.uid, self.gid)
        return path

    def chown_to_user(self, path: Path) -> None:
        os.chown(path, self.uid, self.gid)

    def __repr__(self) -> str:
        return f"SshdServer({self.username}@{self.host}:{self.port}, running={self.running})"


# --- pytest fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sshd() -> Iterator[SshdServer]:
    """A real OpenSSH sshd for the whole test session. Tests that stop it must start it again."""
    if os.geteuid() != 0 or not os.path.exists(SSHD):
        pytest.skip("needs root and OpenSSH sshd at /usr/sbin/sshd")
    server = SshdServer()
    server.start()
    # Ferry's egress policy refuses loopback unless allow-listed (services/executor/egress.py):
    # the tests allow it where they use this sshd (a test may narrow it with monkeypatch).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(EGRESS_ALLOW_VARIABLE, TEST_EGRESS_ALLOW)
        try:
            yield server
        finally:
            server.cleanup()


@pytest.fixture
def sftp_dir(sshd: SshdServer) -> Iterator[Path]:
    """A fresh directory the test user owns; its path is also its remote SFTP path."""
    path = sshd.make_dir()
    yield path
    if not sshd.running:  # a test stopped sshd and failed before restarting it
        sshd.start()
    shutil.rmtree(path, ignore_errors=True)
