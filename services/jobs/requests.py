"""The jobs service's request model and the keys that decide whether a request repeats an
earlier one: ``TransferRequest`` (POST /transfers, validated at the edge and again by the
application), the path rule every request path obeys, the canonical request hash, the
Idempotency-Key scope and the automatic dedupe key (request + the source's content identity).

Pure: no I/O. ``services.jobs.application`` re-exports every name (its import path stays).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_serializer,
)

from events.contract import PostAction, VerifyMode
from ferry.validation import path_problem

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_PATH_LENGTH = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KEY_OK = re.compile(r"^[\x21-\x7e]{1,255}$")


def check_path(value: str, *, directory: bool = False) -> str:
    """A path relative to an endpoint's base path / prefix that cannot escape it.

    Raises ValueError with a human-readable reason.
    """
    if value == "":
        raise ValueError("must not be empty")
    if len(value) > MAX_PATH_LENGTH:
        raise ValueError(f"must be at most {MAX_PATH_LENGTH} characters")
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if value.startswith("/"):
        raise ValueError("must be relative to the endpoint's base path/prefix (no leading '/')")
    hostile = path_problem(value)  # backslashes, drive letters, ~, %2e/%2f, Unicode look-alikes
    if hostile:
        raise ValueError(hostile)
    if value.endswith("/") and not directory:
        raise ValueError("must name a file (no trailing '/')")
    segments = value.rstrip("/").split("/") if directory else value.split("/")
    for segment in segments:
        if segment in ("..", "."):
            raise ValueError("must not contain '.' or '..' segments")
        if segment == "":
            raise ValueError("must not contain empty segments ('//')")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceRequest(_Strict):
    endpoint_id: str = Field(min_length=1, max_length=128)
    path: str = Field(
        min_length=1,
        max_length=MAX_PATH_LENGTH,
        description="Relative to the endpoint's base_path (SFTP) or prefix (S3).",
    )
    version: str | None = Field(
        default=None,
        max_length=1024,
        description="Source version when known (ETag, mtime): part of the deduplication key.",
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_path(value)


class TargetRequest(_Strict):
    endpoint_id: str = Field(min_length=1, max_length=128)
    path: str = Field(
        min_length=1,
        max_length=MAX_PATH_LENGTH,
        description="Relative to the endpoint's base_path (SFTP) or prefix (S3).",
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_path(value)


_DURATION = re.compile(r"^(\d{1,7})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION_SECONDS = 30 * 86400


def duration_seconds(value: str) -> int:
    """'30m' → 1800 (ValueError naming the problem): options.max_duration."""
    found = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if not found:
        raise ValueError("must look like 90s, 30m, 2h or 1d")
    seconds = int(found.group(1)) * _UNITS[found.group(2)]
    if not 1 <= seconds <= MAX_DURATION_SECONDS:
        raise ValueError("must be between 1s and 30d")
    return seconds


class OptionsRequest(_Strict):
    overwrite: StrictBool = False
    post_action: PostAction = PostAction.NONE
    move_to: str | None = Field(default=None, description="Required for post_action=move.")
    max_attempts: StrictInt = Field(default=5, ge=1, le=20)
    verify: VerifyMode = VerifyMode.DIGEST
    max_duration: str | None = Field(
        default=None,
        max_length=16,
        description="e.g. 30m, 2h: running longer than this (from its first start) emits "
        "JobSlow once; the job goes on.",
    )
    bandwidth_limit: StrictInt | None = Field(
        default=None,
        ge=64 * 1024,
        le=10**10,
        description="Bytes/s this job moves at most (64 KiB/s to 10 GB/s); the endpoints' "
        "bandwidth_limit shares apply too: the lowest wins.",
    )

    @field_validator("move_to")
    @classmethod
    def _move_to(cls, value: str | None) -> str | None:
        return None if value is None else check_path(value, directory=True)

    @field_validator("max_duration")
    @classmethod
    def _max_duration(cls, value: str | None) -> str | None:
        if value is not None:
            duration_seconds(value)
        return value

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        """Without max_duration / bandwidth_limit a request dumps (and hashes) as before they
        existed."""
        out: dict[str, Any] = handler(self)
        for optional in ("max_duration", "bandwidth_limit"):
            if out.get(optional) is None:
                out.pop(optional, None)
        return out


class TransferRequest(_Strict):
    """POST /transfers."""

    source: SourceRequest
    target: TargetRequest
    options: OptionsRequest = Field(default_factory=OptionsRequest)
    dedupe: StrictBool = Field(
        default=True,
        description=(
            "Without an Idempotency-Key, a request equal to one accepted in the last 10 minutes "
            "(same customer, source, target, options and source content: S3 ETag and version "
            "id, SFTP size and mtime, looked up at submit time) returns that job with "
            "deduplicated=true instead of creating another. false: always a new job."
        ),
    )


def digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def request_hash(request: TransferRequest) -> str:
    """sha256 of the canonical request body (defaults filled in; ``dedupe`` is how to match a
    request, not part of it)."""
    return digest(request.model_dump(mode="json", exclude={"dedupe"}))


def valid_idempotency_key(key: str) -> bool:
    """1-255 printable ASCII characters without spaces."""
    return bool(_KEY_OK.match(key))


def idempotency_scope(customer_id: str, idempotency_key: str) -> str:
    """Where an Idempotency-Key is claimed: per customer, the key itself never stored."""
    return f"{customer_id}#key#{hashlib.sha256(idempotency_key.encode()).hexdigest()}"


def dedupe_key(request: TransferRequest, identity: str | None, body_hash: str) -> str:
    """The automatic dedupe key of a request without an Idempotency-Key: the source and target,
    the source's content identity (a changed file is another job) and the request hash (other
    options are another request)."""
    return digest(
        [
            request.source.endpoint_id,
            request.source.path,
            request.target.endpoint_id,
            request.target.path,
            identity,
            body_hash,
        ]
    )
