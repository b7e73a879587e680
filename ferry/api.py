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

Split by concern: API keys and their stores live in ``ferry.api_keys``, the bounded body parser
in ``ferry.api_body``; this module is the resolver and the error table, and re-exports both so
``from ferry.api import ...`` stays the one import for handlers.

Over 400 lines only because of the re-exports and ``__all__`` (so no import path changed) and
this docstring; the code is the resolver and the error table.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel

from ferry.api_body import (
    MAX_INT_DIGITS,
    MAX_JSON_DEPTH,
    is_json_media_type,
    parse_json_body,
    unencodable_field,
)
from ferry.api_keys import (
    SCOPES,
    ApiKey,
    ApiKeyStore,
    DynamoKeyStore,
    KeyAlreadyRevoked,
    KeyNotFound,
    Principal,
    Scope,
    hash_key,
    issue_key,
    new_api_key,
    parse_duration,
)
from ferry.errors import (
    BadRequest,
    Conflict,
    FerryError,
    Forbidden,
    Invalid,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)
from ferry.validation import UUID_PATTERN

if TYPE_CHECKING:
    from ferry.access_log import AccessLog

__all__ = [
    "API_KEY_HEADER",
    "HTTP_STATUS",
    "MAX_BODY_BYTES",
    "MAX_INT_DIGITS",
    "MAX_JSON_DEPTH",
    "SCOPES",
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
    "Invalid",
    "KeyAlreadyRevoked",
    "KeyNotFound",
    "NotFound",
    "PayloadTooLarge",
    "Principal",
    "Scope",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "error_response",
    "error_responses",
    "hash_key",
    "is_json_media_type",
    "issue_key",
    "json_handler",
    "make_resolver",
    "new_api_key",
    "parse_duration",
    "parse_json_body",
    "principal",
    "request_body",
    "status_of",
    "unencodable_field",
]

MAX_BODY_BYTES = 256 * 1024
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
    TooManyRequests: 429,
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
    429: "A limit of the caller's is reached (named); retry after Retry-After seconds",
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
# Resolver
# --------------------------------------------------------------------------------------------

_PRINCIPAL = "principal"
_BODY = "ferry_body"
_NO_BODY = object()
PUBLIC_PATHS = frozenset({"/openapi.json", "/swagger", "/", "/console", "/docs"})
PUBLIC_RESOURCES = frozenset({"/console/{asset_name}", "/docs/{asset_name}"})  # static pages

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
    media type and the one parse of the body. After the route answered, an audited call (every
    GET, an export) is recorded in ``access_log`` (``ferry.access_log``; set by ``json_handler``
    at cold start, or by a test), whatever its status; recording never changes the answer."""

    access_log: AccessLog | None = None

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
        who, started = self.context.get(_PRINCIPAL), time.perf_counter()
        try:
            response = super().resolve(event, context)
        finally:
            self._parsed = None
        if self.access_log is not None and isinstance(who, Principal):
            self.access_log.after(event, who, response, started)
        return response

    def _deserialize(self, text: str) -> Any:
        if self._parsed is not None and self._parsed[0] == text:
            return self._parsed[1]
        return parse_json_body(text)  # pragma: no cover - the body was parsed in _admit

    def _admit(self, event: dict[str, Any]) -> dict[str, Any] | None:
        raw = event.get("body") or ""
        size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"request body is over {MAX_BODY_BYTES} bytes")
        if event.get("path") in PUBLIC_PATHS or event.get("resource") in PUBLIC_RESOURCES:
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
        response = error_response(status_of(ex), ex.code, ex.message, ex.field)
        if isinstance(ex, TooManyRequests):
            response.headers["Retry-After"] = str(ex.retry_after)
        return response

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

    def build() -> FerryResolver:
        built = resolver_factory()
        if built.access_log is None:  # reads are audited in every API function (issue 11)
            from ferry.access_log import build_access_log

            built.access_log = build_access_log()
        return built

    resolver = once(build)
    tracer = Tracer()  # X-Ray in Lambda (service from POWERTOOLS_SERVICE_NAME); off elsewhere

    @tracer.capture_lambda_handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return resolver().resolve(event, context)

    handler.resolver_factory = resolver_factory  # type: ignore[attr-defined]
    handler.built = resolver  # type: ignore[attr-defined]
    return handler
