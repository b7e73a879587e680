"""Request and response shapes of the endpoints API (flat JSON), and their field checks.

Credentials (``private_key``, ``passphrase``, ``password``) are write-only: they are accepted
here, handed to the application for Secrets Manager, and never appear in a response.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError

from events.contract import Direction, EndpointType
from ferry.errors import BadRequest, Invalid
from ferry.validation import Name as SafeName
from ferry.validation import SafeText, path_problem
from services.endpoints.keys import KeyProblem, check_private_key, normalise_host_key

__all__ = [
    "S3_FIELDS",
    "SECRET_FIELDS",
    "SFTP_FIELDS",
    "InvalidRequest",
    "PatchRequest",
    "S3Registration",
    "SftpRegistration",
    "parse_patch",
    "parse_registration",
]

S3_FIELDS = frozenset({"bucket", "prefix", "region", "kms_key_id", "role_arn"})
SFTP_FIELDS = frozenset(
    {"host", "port", "username", "base_path", "host_key", "private_key", "passphrase", "password"}
)
SECRET_FIELDS = frozenset({"private_key", "passphrase", "password"})
MAX_KEY_TEXT = 16 * 1024

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_ROLE_ARN = re.compile(r"^arn:aws(-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_USERNAME = re.compile(r"^[^\s:/\\\x00-\x1f\x7f]{1,128}$")


class InvalidRequest(Invalid, ValueError):
    """A request body problem, naming the field (→ 422)."""

    code = "validation_error"

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message, field=field)


class BodyNotAnObject(BadRequest, InvalidRequest):
    """The body is JSON but not an object (→ 400 on ``body``)."""

    code = "invalid_json"


# --- field checks ---------------------------------------------------------------------------
def _bucket(value: str) -> str:
    if not _BUCKET.match(value):
        raise ValueError(
            "S3 bucket names are 3-63 characters of lowercase letters, digits, '.' and '-', "
            "starting and ending with a letter or digit"
        )
    if ".." in value or ".-" in value or "-." in value:
        raise ValueError("S3 bucket names cannot contain '..', '.-' or '-.'")
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        pass
    else:
        raise ValueError("S3 bucket names cannot be IP addresses")
    if value.startswith(("xn--", "sthree-", "amzn-s3-demo-")) or value.endswith(
        ("-s3alias", "--ol-s3", "--x-s3", ".mrap")
    ):
        raise ValueError("the S3 bucket name uses a reserved prefix or suffix")
    return value


def _prefix(value: str) -> str:
    if "\x00" in value:
        raise ValueError("prefix cannot contain NUL")
    if value.startswith("/"):
        raise ValueError("prefix is relative to the bucket: no leading '/'")
    hostile = path_problem(value)
    if hostile:
        raise ValueError(f"prefix {hostile}")
    if any(part in (".", "..") for part in value.split("/")):
        raise ValueError("prefix cannot contain '.' or '..' segments")
    if len(value.encode()) > 900:
        raise ValueError("prefix is too long")
    return value


def _base_path(value: str) -> str:
    if "\x00" in value or "\\" in value:
        raise ValueError("base_path cannot contain NUL or backslashes")
    if not value.startswith("/"):
        raise ValueError("base_path must be absolute (start with '/')")
    if ".." in value.split("/"):
        raise ValueError("base_path cannot contain '..' segments")
    normalised = posixpath.normpath(value)
    if normalised.startswith("//"):
        normalised = "/" + normalised.lstrip("/")
    if len(normalised) > 1024:
        raise ValueError("base_path is too long")
    return normalised


def _host(value: str) -> str:
    text = value.strip()
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if not text or len(text) > 253 or not all(_HOSTNAME_LABEL.match(label) for label in labels):
        raise ValueError("host must be a DNS name or an IP address")
    return text.lower()


def _host_key(value: str) -> str:
    return normalise_host_key(value)


def _role_arn(value: str) -> str:
    if not _ROLE_ARN.match(value):
        raise ValueError(
            "role_arn must be an IAM role ARN such as 'arn:aws:iam::111122223333:role/ferry-access'"
        )
    return value


def _region(value: str) -> str:
    if not _REGION.match(value):
        raise ValueError("region must be an AWS region name such as 'eu-west-1'")
    return value


def _username(value: str) -> str:
    if not _USERNAME.match(value):
        raise ValueError("username must be 1-128 characters without spaces or control characters")
    return value


def _name(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("name cannot be blank")
    return text


Name = Annotated[SafeName, AfterValidator(_name)]
Bucket = Annotated[str, AfterValidator(_bucket)]
Prefix = Annotated[str, Field(max_length=1024), AfterValidator(_prefix)]
Region = Annotated[str, AfterValidator(_region)]
KmsKeyId = Annotated[str, Field(min_length=1, max_length=2048)]
RoleArn = Annotated[str, Field(min_length=20, max_length=2048), AfterValidator(_role_arn)]
Host = Annotated[str, Field(min_length=1, max_length=253), AfterValidator(_host)]
Port = Annotated[StrictInt, Field(ge=1, le=65535)]
Username = Annotated[str, AfterValidator(_username)]
BasePath = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_base_path)]
HostKey = Annotated[str, Field(min_length=1, max_length=MAX_KEY_TEXT), AfterValidator(_host_key)]
KeyText = Annotated[str, Field(min_length=1, max_length=MAX_KEY_TEXT)]
SecretText = Annotated[str, Field(min_length=1, max_length=1024)]
Concurrency = Annotated[StrictInt, Field(ge=1, le=64)]
#: bytes/s: 64 KiB/s (a 16 MiB chunk in 256 s) to 10 GB/s
MIN_BANDWIDTH, MAX_BANDWIDTH = 64 * 1024, 10**10
BandwidthLimit = Annotated[
    StrictInt,
    Field(
        ge=MIN_BANDWIDTH,
        le=MAX_BANDWIDTH,
        description="Bytes/s shared by all of Ferry's transfers to or from this endpoint "
        "(each active transfer gets an equal share); null or absent: no cap.",
    ),
]


# --- models ---------------------------------------------------------------------------------
class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Registration(_Request):
    name: Name
    direction: Direction
    max_concurrency: Concurrency = 4
    bandwidth_limit: BandwidthLimit | None = None


class S3Registration(_Registration):
    type: Literal[EndpointType.S3]
    bucket: Bucket
    prefix: Prefix = ""
    region: Region | None = None
    kms_key_id: KmsKeyId | None = None
    role_arn: RoleArn | None = None


class SftpRegistration(_Registration):
    type: Literal[EndpointType.SFTP]
    host: Host
    port: Port = 22
    username: Username
    base_path: BasePath
    host_key: HostKey
    private_key: KeyText | None = None
    passphrase: SecretText | None = None
    password: SecretText | None = None

    def __repr__(self) -> str:  # never show credentials
        return f"SftpRegistration(name={self.name!r}, host={self.host!r})"


class PatchRequest(_Request):
    """Any subset of the registration fields; ``type`` may be repeated but not changed."""

    name: Name | None = None
    type: EndpointType | None = None
    direction: Direction | None = None
    max_concurrency: Concurrency | None = None
    bandwidth_limit: BandwidthLimit | None = None
    bucket: Bucket | None = None
    prefix: Prefix | None = None
    region: Region | None = None
    kms_key_id: KmsKeyId | None = None
    role_arn: RoleArn | None = None
    host: Host | None = None
    port: Port | None = None
    username: Username | None = None
    base_path: BasePath | None = None
    host_key: HostKey | None = None
    private_key: KeyText | None = None
    passphrase: SecretText | None = None
    password: SecretText | None = None

    def __repr__(self) -> str:
        return f"PatchRequest(fields={sorted(self.model_fields_set - SECRET_FIELDS)})"


class DisableRequest(_Request):
    """POST /endpoints/{endpoint_id}/disable (the body is optional)."""

    reason: SafeText | None = Field(default=None, max_length=500)


#: PATCH fields that may be set to null (optional settings); the others must have a value.
NULLABLE = frozenset({"region", "kms_key_id", "role_arn", "bandwidth_limit"})


# --- parsing --------------------------------------------------------------------------------
def _first_error(
    exc: ValidationError, other_type_fields: frozenset[str] = frozenset()
) -> InvalidRequest:
    errors = exc.errors(include_input=False)
    first: dict[str, Any] = dict(errors[0]) if errors else {}
    loc = [str(p) for p in first.get("loc", ())]
    field = ".".join(loc) or None
    kind = first.get("type", "")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if kind == "extra_forbidden" and field in other_type_fields:
        return InvalidRequest(f"{field}: not a setting of this endpoint type{more}", field)
    if kind == "extra_forbidden":
        return InvalidRequest(f"{field}: unknown field{more}", field)
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return InvalidRequest(f"{field or 'body'}: {msg}{more}", field)


def parse_registration(body: Any) -> S3Registration | SftpRegistration:
    if not isinstance(body, dict):
        raise BodyNotAnObject("the body must be a JSON object", "body")
    kind = body.get("type")
    model: type[S3Registration] | type[SftpRegistration]
    if kind == EndpointType.S3.value:
        model, others = S3Registration, SFTP_FIELDS
    elif kind == EndpointType.SFTP.value:
        model, others = SftpRegistration, S3_FIELDS
    else:
        raise InvalidRequest("type: must be 's3' or 'sftp'", "type")
    try:
        request = model.model_validate(body)
    except ValidationError as exc:
        raise _first_error(exc, others) from None
    if isinstance(request, SftpRegistration):
        check_credentials(request.private_key, request.passphrase, request.password, required=True)
    return request


def parse_patch(body: Any) -> PatchRequest:
    if not isinstance(body, dict):
        raise BodyNotAnObject("the body must be a JSON object", "body")
    try:
        request = PatchRequest.model_validate(body)
    except ValidationError as exc:
        raise _first_error(exc) from None
    for field in sorted(request.model_fields_set):
        if getattr(request, field) is None and field not in NULLABLE:
            raise InvalidRequest(f"{field}: cannot be null", field)
    check_credentials(request.private_key, request.passphrase, request.password, required=False)
    return request


def parse_disable(body: Any) -> DisableRequest:
    """No body → no reason; otherwise a JSON object ``{"reason": ...}`` (422 on ``body`` for
    any other JSON value)."""
    if body is None:
        return DisableRequest()
    if not isinstance(body, dict):
        raise InvalidRequest("body: must be a JSON object", "body")
    try:
        return DisableRequest.model_validate(body)
    except ValidationError as exc:
        raise _first_error(exc) from None


def check_credentials(
    private_key: str | None, passphrase: str | None, password: str | None, *, required: bool
) -> None:
    """Exactly one of private_key / password (when ``required``; at most one otherwise)."""
    if private_key and password:
        raise InvalidRequest("give either private_key or password, not both", "password")
    if passphrase and not private_key:
        raise InvalidRequest("passphrase is only used with private_key", "passphrase")
    if required and not private_key and not password:
        raise InvalidRequest(
            "sftp endpoints need credentials: private_key or password", "private_key"
        )
    if private_key:
        try:
            check_private_key(private_key, passphrase)
        except KeyProblem as problem:
            raise InvalidRequest(f"{problem.field}: {problem}", problem.field) from None
