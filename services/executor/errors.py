"""The executor's error taxonomy.

Every failure a transfer can meet is raised as a :class:`TransferError` carrying a stable
``code`` (published as ``error_code`` in events) and a ``transient`` flag: transient errors are
retried with backoff, permanent ones fail the job at once. Adapters translate library exceptions
into these classes in one place; nothing upstream matches on message text.

Messages never contain secrets (passwords, private keys, passphrases).
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "ConnectionFailed",
    "ConnectionRefused",
    "EgressDenied",
    "HostKeyMismatch",
    "HostNotFound",
    "IntegrityMismatch",
    "InvalidConfiguration",
    "PermissionDenied",
    "ProtocolFailure",
    "RemoteServerError",
    "SourceNotFound",
    "TargetChanged",
    "TargetExists",
    "Throttled",
    "TransferError",
    "TransferTimeout",
    "UnreachableHost",
    "public_message",
]


class TransferError(Exception):
    """Base class: a failure of one transfer step, with a stable code and a retry hint."""

    code: str = "TRANSFER_ERROR"
    transient: bool = False

    def __init__(
        self, message: str, *, code: str | None = None, transient: bool | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if transient is not None:
            self.transient = transient

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, code={self.code!r}, "
            f"transient={self.transient!r})"
        )


class AuthenticationFailed(TransferError):
    code = "AUTH_FAILED"
    transient = False


class HostKeyMismatch(TransferError):
    code = "HOST_KEY_MISMATCH"
    transient = False


class SourceNotFound(TransferError):
    code = "SOURCE_NOT_FOUND"
    transient = False


class PermissionDenied(TransferError):
    code = "PERMISSION_DENIED"
    transient = False


class TargetExists(TransferError):
    code = "TARGET_EXISTS"
    transient = False


class ConnectionFailed(TransferError):
    code = "CONNECTION_FAILED"
    transient = True


class TransferTimeout(TransferError):
    code = "TIMEOUT"
    transient = True

    @classmethod
    def connecting(cls, host: str, port: int) -> TransferTimeout:
        return cls(f"{host}:{port} did not answer in time")


class Throttled(TransferError):
    code = "THROTTLED"
    transient = True


class RemoteServerError(TransferError):
    code = "REMOTE_ERROR"
    transient = True


class IntegrityMismatch(TransferError):
    code = "INTEGRITY_MISMATCH"
    transient = True


class TargetChanged(TransferError):
    code = "TARGET_CHANGED"
    transient = True


class InvalidConfiguration(TransferError):
    code = "INVALID_CONFIGURATION"
    transient = False


# --- connecting: fixed messages, never the library's or the OS's text ---------------------------
# A customer chooses the host; what Ferry reports about a failed connection must not turn it
# into a network scanner (no "[Errno 111] Connect call failed", no "Connection lost").
class EgressDenied(TransferError):
    """The host resolves to an address Ferry's egress policy refuses (services.executor.egress).
    No socket was opened."""

    code = "EGRESS_DENIED"
    transient = False

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} is not reachable under Ferry's egress policy")
        self.host = host


class HostNotFound(TransferError):
    code = "HOST_NOT_FOUND"
    transient = False

    def __init__(self, host: str, *, transient: bool = False) -> None:
        super().__init__(f"{host} could not be resolved", transient=transient)
        self.host = host


class ConnectionRefused(ConnectionFailed):
    code = "CONNECTION_REFUSED"
    transient = True

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"{host}:{port} refused the connection")


class UnreachableHost(ConnectionFailed):
    """Unreachable network/host, reset or lost connection while connecting."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"could not connect to {host}:{port}")


class ProtocolFailure(ConnectionFailed):
    """The peer is not a usable SSH server (bad version banner, no common algorithm, a
    protocol violation during the handshake)."""

    code = "PROTOCOL_ERROR"
    transient = False

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"{host}:{port} did not complete an SSH handshake")


#: The message a verdict carries for each code of a failed SFTP check: fixed text, with only
#: the endpoint's own host and port filled in.
_FIXED_MESSAGES = {
    "EGRESS_DENIED": "{host} is not reachable under Ferry's egress policy",
    "HOST_NOT_FOUND": "{host} could not be resolved",
    "CONNECTION_REFUSED": "{host}:{port} refused the connection",
    "CONNECTION_FAILED": "could not connect to {host}:{port}",
    "TIMEOUT": "{host}:{port} did not answer in time",
    "PROTOCOL_ERROR": "{host}:{port} did not complete an SSH handshake",
    "HOST_KEY_MISMATCH": "the host key of {host}:{port} does not match the pinned host_key",
    "AUTH_FAILED": "authentication as the endpoint's username failed",
    "PERMISSION_DENIED": "the server denied access to base_path",
    "SOURCE_NOT_FOUND": "base_path does not exist",
    "INVALID_CONFIGURATION": "the endpoint's SFTP settings or credentials are not usable",
    "CREDENTIALS_UNAVAILABLE": "the endpoint's credentials could not be read",
    "REMOTE_ERROR": "the SFTP server reported an error",
}


def public_message(code: str, *, host: str = "", port: int | None = None) -> str:
    """The fixed message for ``code`` (an SFTP check's verdict): no exception text at all."""
    template = _FIXED_MESSAGES.get(code, "the SFTP check failed")
    return template.format(host=host or "the host", port=port if port is not None else 22)
