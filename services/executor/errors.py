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
    "HostKeyMismatch",
    "IntegrityMismatch",
    "InvalidConfiguration",
    "PermissionDenied",
    "RemoteServerError",
    "SourceNotFound",
    "TargetChanged",
    "TargetExists",
    "Throttled",
    "TransferError",
    "TransferTimeout",
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
