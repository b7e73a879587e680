"""Ferry's one error scheme: plain exception classes, no HTTP in sight.

Domain and application layers raise these (or subclasses of them named for the service:
``class JobNotFound(NotFound)``); ``ferry.api`` maps each base class to an HTTP status in exactly
one table (``ferry.api.HTTP_STATUS``). Every error carries a stable machine ``code``, a human
``message`` that never contains a secret or a raw library exception text, and the request
``field`` at fault where there is one (dotted: ``source.path``).
"""

from __future__ import annotations


class FerryError(Exception):
    """Base of every error a caller may see. Subclass one of the kinds below, not this."""

    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class BadRequest(FerryError):
    """The request cannot be read at all (not JSON, too deep, wrong encoding)."""

    code = "bad_request"


class Unauthorized(FerryError):
    """No credentials, or credentials that are unknown, revoked or expired."""

    code = "unauthorized"


class Forbidden(FerryError):
    """Known caller, not allowed to do this (a read-scoped key on a mutating route)."""

    code = "forbidden"


class NotFound(FerryError):
    """No such resource *for this caller* (another customer's resource is not found too)."""

    code = "not_found"


class Conflict(FerryError):
    """The resource's state forbids this now (already final, name taken, in use)."""

    code = "conflict"


class PayloadTooLarge(FerryError):
    code = "payload_too_large"


class UnsupportedMediaType(FerryError):
    code = "unsupported_media_type"


class Invalid(FerryError):
    """The request is readable but a field's value is not acceptable."""

    code = "validation_error"


class TooManyRequests(FerryError):
    """A limit of the caller's is reached; ``retry_after``: seconds to wait before trying again
    (the Retry-After header)."""

    code = "too_many_requests"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int,
        field: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message, field=field, code=code)
        self.retry_after = max(1, int(retry_after))
