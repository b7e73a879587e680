"""What every Ferry HTTP handler shares: auth by API key, one error table, payload limits,
one safe body parser.

Handlers build their resolver with ``make_resolver(keys=...)`` once per cold start, declare routes
with pydantic models, and raise ``ferry.errors`` kinds; ``HTTP_STATUS`` below is the only place
that maps an error to an HTTP status.

Every error response is ``{"error": {"code": ..., "message": ..., "field": ...}}``.

Before a request reaches a route (and so before Powertools' request validation): the body size is
checked (413), the API key is authenticated (401: unknown, revoked or expired, checked on every
request), a read-scoped key is refused on every mutating method (403), a body on POST/PUT/PATCH must
be ``application/json`` (415), and the body is parsed once here with bounded nesting depth, bounded
integer literals and strict Unicode (400 for an unreadable body, 422 naming the field otherwise).
Powertools then validates the already parsed body (``json_body_deserializer``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel

from ferry.errors import (
    BadRequest,
    Conflict,
    FerryError,
    Forbidden,
    Invalid,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from ferry.validation import MULTILINE_FIELDS, UUID_PATTERN, unsafe_text_field

__all__ = [
    "API_KEY_HEADER",
    "HTTP_STATUS",
    "MAX_BODY_BYTES",
    "ApiError",
    "ApiKey",
    "ApiKeyStore",
    "BadRequest",
    "Conflict",
    "DynamoKeyStore",
    "ErrorDetail",
    "ErrorEnvelope",
    "FerryError",
    "FerryResolver",
    "Forbidden",
    "IdPath",
    "InMemoryKeyStore",
    "Invalid",
    "NotFound",
    "PayloadTooLarge",
    "Principal",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "error_response",
    "error_responses",
    "hash_key",
    "issue_key",
    "json_handler",
    "make_resolver",
    "principal",
    "request_body",
    "status_of",
    "unencodable_field",
]

MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 32  # no Ferry number needs more; Python refuses > 4,300 digits anyway
API_KEY_HEADER = "x-api-key"
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

logger = Logger(service="ferry-api")


# --------------------------------------------------------------------------------------------
# Errors: the one table
# --------------------------------------------------------------------------------------------

HTTP_STATUS: dict[type[FerryError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    Invalid: 422,
    FerryError: 400,
}
"""Error kind → HTTP status: the only mapping in Ferry. A subclass takes its nearest kind."""

ApiError = FerryError  # the name older code imports
Unprocessable = Invalid  # likewise


def status_of(error: FerryError) -> int:
    for kind in type(error).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 400  # pragma: no cover - FerryError is in the table


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorEnvelope(BaseModel):
    """Every error response: ``{"error": {"code", "message", "field"?}}``."""

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "The request cannot be read (not JSON, too deeply nested, not UTF-8)",
    401: "Missing, unknown, revoked or expired API key",
    403: "The API key may not do this (a read-scoped key on a mutating route)",
    404: "No such resource for this caller",
    409: "The resource's state does not allow this now",
    413: "The request body is over 256 KB",
    415: "The request body is not application/json",
    422: "A field's value is not acceptable (the field is named)",
}


def error_responses(*statuses: int, mutating: bool | None = None) -> dict[int, Any]:
    """OpenAPI ``responses`` entries for the error statuses a route can return, each with the
    error envelope. 401 and 413 always apply; ``mutating`` adds 400, 403 and 415."""
    wanted = {401, 413, *statuses}
    if mutating:
        wanted |= {400, 403, 415, 422}
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {"application/json": {"model": ErrorEnvelope}},
        }
        for status in sorted(wanted)
    }


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body={"error": error}
    )


# --------------------------------------------------------------------------------------------
# Auth: API keys with a name, a scope, an expiry and a revocation
# --------------------------------------------------------------------------------------------

Scope = Literal["read", "write"]
SCOPES: tuple[str, ...] = ("read", "write")


@dataclass(frozen=True)
class Principal:
    customer_id: str
    key_id: str
    key_name: str = ""
    scope: Scope = "write"

    @property
    def actor(self) -> str:
        """What events record as their actor: the key id and, when it has one, its name."""
        return f"{self.key_id} ({self.key_name})" if self.key_name else self.key_id


@dataclass(frozen=True)
class ApiKey:
    """A stored API key: its hash, never the key. No expiry: never expires."""

    key_hash: str
    principal: Principal
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def refusal(self, now: datetime) -> str | None:
        """Why this key is not usable at ``now`` (None when it is)."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return "API key revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "API key expired"
        return None

    def listing(self) -> dict[str, Any]:
        """What ``ferry keys list`` shows: no key, no hash."""
        return {
            "key_id": self.principal.key_id,
            "name": self.principal.key_name,
            "customer_id": self.principal.customer_id,
            "scope": self.principal.scope,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class ApiKeyStore(Protocol):
    def lookup(self, key_hash: str) -> ApiKey | None: ...

    def add(self, key: ApiKey) -> None: ...

    def list_keys(self, customer_id: str | None = None) -> list[ApiKey]: ...

    def revoke(self, key_id: str, at: datetime) -> ApiKey | None: ...


class KeyNotFound(NotFound):
    code = "key_not_found"


class KeyAlreadyRevoked(Conflict):
    code = "key_revoked"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key() -> str:
    return "fk_" + secrets.token_urlsafe(24)


_DURATION = re.compile(r"^([1-9][0-9]{0,4})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w`` → a timedelta (ValueError otherwise)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError("a duration such as 90d, 12h, 30m or 2w")
    delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if delta > timedelta(days=3660):
        raise ValueError("at most 10 years")
    return delta


def issue_key(
    store: ApiKeyStore,
    customer_id: str,
    *,
    name: str = "",
    scope: Scope = "write",
    expires_in: timedelta | None = None,
    now: datetime | None = None,
) -> tuple[str, Principal]:
    """Create a new API key for a customer; the key itself is returned once and never stored."""
    if scope not in SCOPES:
        raise Invalid("scope must be read or write", field="scope")
    key = new_api_key()
    digest = hash_key(key)
    principal = Principal(
        customer_id=customer_id, key_id="key-" + digest[:12], key_name=name, scope=scope
    )
    created = now or datetime.now(UTC)
    store.add(
        ApiKey(
            key_hash=digest,
            principal=principal,
            created_at=created,
            expires_at=created + expires_in if expires_in is not None else None,
        )
    )
    return key, principal


class InMemoryKeyStore:
    """For unit tests."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}
        self._lock = threading.Lock()

    def lookup(self, key_hash: str) -> ApiKey | None:
        return self._keys.get(key_hash)

    def add(self, key: ApiKey) -> None:
        with self._lock:
            self._keys[key.key_hash] = key

    def list_keys(self, customer_id: str | None = None) -> list[ApiKey]:
        found = [k for k in self._keys.values() if customer_id in (None, k.principal.customer_id)]
        return sorted(found, key=lambda k: (k.created_at, k.principal.key_id))

    def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        with self._lock:
            for digest, key in self._keys.items():
                if key.principal.key_id == key_id:
                    if key.revoked_at is not None:
                        raise KeyAlreadyRevoked(f"key {key_id} is already revoked", field="key_id")
                    self._keys[digest] = replace(key, revoked_at=at)
                    return self._keys[digest]
        return None


def _ts(item: dict[str, Any], name: str) -> datetime | None:
    value = item.get(name, {}).get("S")
    return datetime.fromisoformat(value) if value else None


class DynamoKeyStore:
    """API keys table (pk key_hash). Every request reads its key's item (consistent read), so a
    revocation or an expiry is seen by the very next request, in every Lambda instance: there is
    no cache of the verdict (a cached "valid" is what would keep a revoked key working)."""

    def __init__(self, table_name: str, client: Any = None):
        import boto3

        self._table = table_name
        self._client = client or boto3.client("dynamodb")

    @staticmethod
    def _record(item: dict[str, Any]) -> ApiKey:
        scope = item.get("scope", {}).get("S", "write")
        return ApiKey(
            key_hash=item["key_hash"]["S"],
            principal=Principal(
                customer_id=item["customer_id"]["S"],
                key_id=item["key_id"]["S"],
                key_name=item.get("name", {}).get("S", ""),
                scope="read" if scope == "read" else "write",
            ),
            created_at=_ts(item, "created_at") or datetime.fromtimestamp(0, UTC),
            expires_at=_ts(item, "expires_at"),
            revoked_at=_ts(item, "revoked_at"),
        )

    def lookup(self, key_hash: str) -> ApiKey | None:
        item = self._client.get_item(
            TableName=self._table, Key={"key_hash": {"S": key_hash}}, ConsistentRead=True
        ).get("Item")
        return self._record(item) if item else None

    def add(self, key: ApiKey) -> None:
        item: dict[str, Any] = {
            "key_hash": {"S": key.key_hash},
            "customer_id": {"S": key.principal.customer_id},
            "key_id": {"S": key.principal.key_id},
            "scope": {"S": key.principal.scope},
            "created_at": {"S": key.created_at.isoformat()},
        }
        if key.principal.key_name:
            item["name"] = {"S": key.principal.key_name}
        if key.expires_at is not None:
            item["expires_at"] = {"S": key.expires_at.isoformat()}
        if key.revoked_at is not None:
            item["revoked_at"] = {"S": key.revoked_at.isoformat()}
        self._client.put_item(TableName=self._table, Item=item)

    def list_keys(self, customer_id: str | None = None) -> list[ApiKey]:
        """Every key (an admin scan: the table holds one small item per key)."""
        found: list[ApiKey] = []
        kwargs: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        while True:
            page = self._client.scan(**kwargs)
            found.extend(self._record(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        found = [k for k in found if customer_id in (None, k.principal.customer_id)]
        return sorted(found, key=lambda k: (k.created_at, k.principal.key_id))

    def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        for key in self.list_keys():
            if key.principal.key_id != key_id:
                continue
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key={"key_hash": {"S": key.key_hash}},
                    UpdateExpression="SET revoked_at = :at",
                    ConditionExpression="attribute_exists(key_hash) AND attribute_not_exists(revoked_at)",
                    ExpressionAttributeValues={":at": {"S": at.isoformat()}},
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                raise KeyAlreadyRevoked(
                    f"key {key_id} is already revoked", field="key_id"
                ) from None
            return replace(key, revoked_at=at)
        return None

    @staticmethod
    def create_table(client: Any, table_name: str) -> None:
        try:
            client.create_table(
                TableName=table_name,
                KeySchema=[{"AttributeName": "key_hash", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "key_hash", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except client.exceptions.ResourceInUseException:
            pass


# --------------------------------------------------------------------------------------------
# The body: parsed once, here, with bounded depth, bounded integers and strict Unicode
# --------------------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class _TooManyDigits:
    """Stands in for an integer literal too long to be a Ferry value (found after parsing, so
    the error names its field)."""


_TOO_MANY_DIGITS = _TooManyDigits()


def _parse_int(text: str) -> int | _TooManyDigits:
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else _TOO_MANY_DIGITS


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(text: str) -> int:
    """The deepest nesting of arrays/objects in JSON text (strings ignored), without recursing."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _bad_value_field(value: Any, path: tuple[str, ...] = ()) -> tuple[str, str] | None:
    """(dotted field, reason) of the first value of a parsed body that no Ferry field accepts:
    an over-long integer literal, or a string (key or value) with a lone surrogate, a NUL or a
    control character (tab, CR and LF only in multi-line fields such as ``private_key``)."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if item is _TOO_MANY_DIGITS:
            return ".".join(where) or "body", f"an integer of at most {MAX_INT_DIGITS} digits"
        if isinstance(item, str):
            reason = unsafe_text_field(
                item, multiline=bool(where) and where[-1] in MULTILINE_FIELDS
            )
            if reason:
                return ".".join(where) or "body", reason
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                stack.append((child, (*where, str(key))))
                stack.append((key, where))
        elif isinstance(item, list):
            for index in range(len(item) - 1, -1, -1):
                stack.append((item[index], (*where, str(index))))
    return None


def unencodable_field(value: Any, path: tuple[str, ...] = ()) -> str | None:
    """The dotted path of the first string of a parsed body that is not acceptable text."""
    found = _bad_value_field(value, path)
    return found[0] if found else None


def parse_json_body(raw: str | bytes) -> Any:
    """Parse a request body. BadRequest (400, field ``body``) when it cannot be read at all: not
    UTF-8, not JSON, nested deeper than MAX_JSON_DEPTH; Invalid (422) naming the field of an
    integer literal over MAX_INT_DIGITS digits or a string with a lone surrogate or NUL."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(
                "request body is not UTF-8", field="body", code="invalid_json"
            ) from None
    else:
        text = raw
    if _depth(text) > MAX_JSON_DEPTH:
        raise BadRequest(
            f"request body is nested more than {MAX_JSON_DEPTH} levels deep",
            field="body",
            code="invalid_json",
        )
    try:
        body = json.loads(text, parse_int=_parse_int, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise BadRequest(
            "request body is not valid JSON", field="body", code="invalid_json"
        ) from None
    bad = _bad_value_field(body)
    if bad is not None:
        where, reason = bad
        raise Invalid(f"{where}: {reason}", field=where)
    return body


def is_json_media_type(value: str | None) -> bool:
    if not value:
        return False
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json"


# --------------------------------------------------------------------------------------------
# Resolver
# --------------------------------------------------------------------------------------------

_PRINCIPAL = "principal"
_BODY = "ferry_body"
_NO_BODY = object()
PUBLIC_PATHS = frozenset({"/openapi.json", "/swagger"})

IdPath = Annotated[
    str,
    Path(
        pattern=UUID_PATTERN,
        min_length=36,
        max_length=36,
        description="A canonical (lower-case, hyphenated) UUID",
    ),
]
"""A path parameter that is a Ferry id: anything but a canonical UUID is 404 naming it."""


def principal(app: APIGatewayRestResolver) -> Principal:
    """The authenticated caller of the current request."""
    found = app.context.get(_PRINCIPAL)
    if not isinstance(found, Principal):  # pragma: no cover - the middleware guarantees it
        raise Unauthorized("missing API key")
    return found


def request_body(app: APIGatewayRestResolver, *, optional: bool = False) -> Any:
    """The request's body as the edge parsed it (None for no body when ``optional``)."""
    found = app.context.get(_BODY, _NO_BODY)
    if found is _NO_BODY:
        if optional:
            return None
        raise BadRequest("a JSON body is required", field="body", code="invalid_json")
    return found


_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """('body', 'source', 'path') -> 'source.path': only the leading location word is dropped."""
    parts = [str(p) for p in loc]
    if parts == ["body"]:  # the body itself is wrong (null, a list, a number, missing)
        return "body"
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts) or None


class FerryResolver(APIGatewayRestResolver):
    """APIGatewayRestResolver that admits a request before routing (and so before request
    validation: an unauthenticated caller learns nothing about the schema): size, key, scope,
    media type and the one parse of the body."""

    def __init__(
        self, keys: ApiKeyStore, *, clock: Callable[[], datetime] | None = None, **kwargs: Any
    ):
        super().__init__(enable_validation=True, json_body_deserializer=self._deserialize, **kwargs)
        self._keys = keys
        self._clock = clock or (lambda: datetime.now(UTC))
        self._parsed: tuple[str, Any] | None = None

    def resolve(self, event: Any, context: Any) -> dict[str, Any]:
        self._parsed = None
        try:
            early = self._admit(event)
        except FerryError as error:
            early = _raw_error(status_of(error), error.code, error.message, error.field)
        if early is not None:
            return early
        try:
            return super().resolve(event, context)
        finally:
            self._parsed = None

    def _deserialize(self, text: str) -> Any:
        if self._parsed is not None and self._parsed[0] == text:
            return self._parsed[1]
        return parse_json_body(text)  # pragma: no cover - the body was parsed in _admit

    def _admit(self, event: dict[str, Any]) -> dict[str, Any] | None:
        raw = event.get("body") or ""
        size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"request body is over {MAX_BODY_BYTES} bytes")
        if event.get("path") in PUBLIC_PATHS:
            return None
        headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
        api_key = headers.get(API_KEY_HEADER)
        if not api_key:
            raise Unauthorized("missing x-api-key header", field=API_KEY_HEADER)
        found = self._keys.lookup(hash_key(api_key))
        if found is None:
            raise Unauthorized("unknown API key", field=API_KEY_HEADER)
        refusal = found.refusal(self._clock())
        if refusal:
            raise Unauthorized(refusal, field=API_KEY_HEADER)
        who = found.principal
        method = str(event.get("httpMethod") or "").upper()
        if who.scope != "write" and method in MUTATING_METHODS:
            raise Forbidden(
                "this API key is read-only (scope read)", field=API_KEY_HEADER, code="forbidden"
            )
        self.append_context(**{_PRINCIPAL: who})
        logger.append_keys(customer_id=who.customer_id, api_key_id=who.key_id)
        if method in BODY_METHODS and raw and (not isinstance(raw, str) or raw.strip()):
            self._admit_body(event, headers, raw)
        return None

    def _admit_body(self, event: dict[str, Any], headers: dict[str, Any], raw: Any) -> None:
        if not is_json_media_type(headers.get("content-type")):
            raise UnsupportedMediaType(
                "the request body must be application/json", field="content-type"
            )
        for name in list(event.get("headers") or {}):  # media types are case-insensitive
            if str(name).lower() == "content-type":
                event["headers"][name] = "application/json"
        if event.get("isBase64Encoded"):
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest("request body is not valid base64", field="body") from None
            body = parse_json_body(data)
            text = data.decode("utf-8")
        elif isinstance(raw, bytes):
            body = parse_json_body(raw)
            text = raw.decode("utf-8")
        else:
            body = parse_json_body(raw)
            text = raw
        self._parsed = (text, body)
        self.append_context(**{_BODY: body})


def _raw_error(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "multiValueHeaders": {},
        "body": json.dumps({"error": error}),
        "isBase64Encoded": False,
    }


def _validation_response(errors: Iterable[Any], not_found_code: str = "not_found") -> Response:
    listed = list(errors)
    first = listed[0] if listed else {}
    loc = tuple(first.get("loc", ()))
    msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    kind = first.get("type", "")
    if kind == "json_invalid":
        return error_response(400, "invalid_json", "request body is not valid JSON", "body")
    if kind == "unsupported_content_type":
        return error_response(
            415,
            "unsupported_media_type",
            "the request body must be application/json",
            "content-type",
        )
    field = _field_of(loc)
    if loc and loc[0] == "path":  # an id that is not a canonical UUID names nothing that exists
        return error_response(404, not_found_code, f"no such {field or 'resource'}", field)
    more = f" (and {len(listed) - 1} more)" if len(listed) > 1 else ""
    return error_response(422, "validation_error", f"{field or 'request'}: {msg}{more}", field)


def make_resolver(
    keys: ApiKeyStore,
    *,
    clock: Callable[[], datetime] | None = None,
    not_found_code: str = "not_found",
) -> FerryResolver:
    """The resolver every Ferry API function uses. ``not_found_code``: the error code of a 404
    for a path id that is not a canonical UUID (the service's own code for a missing id)."""
    from pydantic import ValidationError

    app = FerryResolver(keys, clock=clock)

    @app.exception_handler(FerryError)
    def _ferry_error(ex: FerryError) -> Response:
        return error_response(status_of(ex), ex.code, ex.message, ex.field)

    @app.exception_handler(RequestValidationError)
    def _validation_error(ex: RequestValidationError) -> Response:
        return _validation_response(ex.errors(), not_found_code)

    @app.exception_handler(RequestUnsupportedContentType)
    def _media_type(ex: RequestUnsupportedContentType) -> Response:  # pragma: no cover - _admit
        return _validation_response(ex.errors(), not_found_code)

    @app.exception_handler(ValidationError)
    def _model_error(ex: ValidationError) -> Response:
        # A pydantic model validated inside a route (bodies parsed by hand): same answer.
        return _validation_response(
            [{**e, "loc": ("body", *e.get("loc", ()))} for e in ex.errors()]
        )

    @app.not_found
    def _not_found(_: Exception) -> Response:
        return error_response(404, "not_found", "no such route")

    @app.exception_handler(Exception)
    def _internal(ex: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "internal", "internal error; it has been logged")

    return app


def json_handler(resolver_factory: Callable[[], FerryResolver]) -> Any:
    """Lazily build a resolver once per process (cold start, ``ferry.coldstart``), then resolve
    each event."""
    from ferry.coldstart import once

    resolver = once(resolver_factory)
    tracer = Tracer()  # X-Ray in Lambda (service from POWERTOOLS_SERVICE_NAME); off elsewhere

    @tracer.capture_lambda_handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return resolver().resolve(event, context)

    handler.resolver_factory = resolver_factory  # type: ignore[attr-defined]
    handler.built = resolver  # type: ignore[attr-defined]
    return handler
