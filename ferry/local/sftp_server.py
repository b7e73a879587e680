"""An embedded SFTP server for ``ferry demo`` (asyncssh), serving one local folder.

Not used by the tests (they run a real OpenSSH sshd, tests/support/sshd.py) and not for
production: it listens on 127.0.0.1 only, has one user, and confines SFTP paths to ``root``
with asyncssh's ``chroot`` path mapping (``/`` is ``root``; no shell, exec, SCP or forwarding).

Keys live in ``data_dir`` and survive restarts, so a pinned host key stays valid:
``sftp_host_ed25519`` (the server's host key) and ``sftp_client_ed25519`` (+ ``.pub``, the one
authorized client key). A password is optional.

    python -m ferry.local.sftp_server --data-dir D --root R [--port P] [--password PW]

prints the connection details as one JSON line, then serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

__all__ = ["EmbeddedSftpServer", "start_sftp_server"]

HOST_KEY_FILE = "sftp_host_ed25519"
CLIENT_KEY_FILE = "sftp_client_ed25519"
DEFAULT_USERNAME = "ferry"


def _ensure_key(path: Path, comment: str) -> asyncssh.SSHKey:
    """Load the ed25519 key at ``path``, generating it (0600, + ``.pub``) the first time."""
    if path.exists():
        return asyncssh.read_private_key(path)
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(key.export_private_key())
    tmp.chmod(0o600)
    tmp.replace(path)
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key())
    return key


class _OneUserServer(asyncssh.SSHServer):
    def __init__(
        self, username: str, client_key: asyncssh.SSHKey, password: str | None, owner: Any
    ) -> None:
        self._username = username
        self._client_key = client_key
        self._password = password
        self._owner = owner
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._owner._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._owner._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True  # always require authentication

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self._username and key.public_data == self._client_key.public_data

    def password_auth_supported(self) -> bool:
        return self._password is not None

    def validate_password(self, username: str, password: str) -> bool:
        if self._password is None or username != self._username:
            return False
        return hmac.compare_digest(password.encode(), self._password.encode())


@dataclass
class EmbeddedSftpServer:
    """A running embedded server. ``stop()`` closes the listener and every connection."""

    host: str
    port: int
    username: str
    private_key_text: str = field(repr=False)
    private_key_path: Path
    host_key_line: str
    host_key_fingerprint: str
    root: Path
    password: str | None = field(default=None, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _acceptor: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _connections: set[asyncssh.SSHServerConnection] = field(default_factory=set, repr=False)

    def details(self) -> dict[str, Any]:
        """Connection details for humans and scripts (the key as a path, not its text)."""
        return {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "private_key_path": str(self.private_key_path),
            "password": self.password,
            "host_key": self.host_key_line,
            "host_key_fingerprint": self.host_key_fingerprint,
            "root": str(self.root),
        }

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def shutdown() -> None:
            self._acceptor.close()
            for conn in list(self._connections):
                conn.close()
            await self._acceptor.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(10)

    def __enter__(self) -> EmbeddedSftpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sftp_server(
    data_dir: Path,
    root: Path,
    port: int = 0,
    *,
    username: str = DEFAULT_USERNAME,
    password: str | None = None,
    host: str = "127.0.0.1",
) -> EmbeddedSftpServer:
    """Start serving ``root`` on ``host:port`` (0 = a free port) in a background thread."""
    data_dir = Path(data_dir)
    root = Path(root).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    host_key = _ensure_key(data_dir / HOST_KEY_FILE, "ferry-demo-sftp-host")
    client_key = _ensure_key(data_dir / CLIENT_KEY_FILE, "ferry-demo-sftp-client")
    host_key_line = host_key.export_public_key().decode().strip()

    server = EmbeddedSftpServer(
        host=host,
        port=port,
        username=username,
        private_key_text=client_key.export_private_key().decode(),
        private_key_path=data_dir / CLIENT_KEY_FILE,
        host_key_line=host_key_line,
        host_key_fingerprint=host_key.get_fingerprint("sha256"),
        root=root,
        password=password,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="ferry-demo-sftpd", daemon=True)
    thread.start()

    def sftp_factory(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(chan, chroot=os.fsencode(root))

    async def listen() -> Any:
        return await asyncssh.listen(
            host,
            port,
            server_factory=lambda: _OneUserServer(username, client_key, password, server),
            server_host_keys=[host_key],
            sftp_factory=sftp_factory,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            kbdint_auth=False,
            reuse_address=True,
        )

    try:
        acceptor = asyncio.run_coroutine_threadsafe(listen(), loop).result(15)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        raise
    server.port = acceptor.get_port()
    server._loop, server._acceptor, server._thread = loop, acceptor, thread
    return server


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Ferry's embedded demo SFTP server")
    ap.add_argument("--data-dir", type=Path, required=True, help="keys are kept here")
    ap.add_argument("--root", type=Path, required=True, help="the folder to serve")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--username", default=DEFAULT_USERNAME)
    ap.add_argument("--password", default=None)
    args = ap.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = start_sftp_server(
        args.data_dir,
        args.root,
        args.port,
        username=args.username,
        password=args.password,
        host=args.host,
    )
    print(json.dumps(server.details()), flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
