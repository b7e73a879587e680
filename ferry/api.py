"""What every Ferry HTTP handler shares: auth by API key, one error envelope, payload limits.

Handlers build their resolver with ``make_resolver(keys=...)`` once per cold start, declare routes
with pydantic models, and raise the errors below; nothing else maps errors to HTTP.

Every error response is ``{"error": {"code": ..., "message": ..., "field": ...}}``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

MAX_BODY_BYTES = 256 * 1024
API_KEY_HEADER = "x-api-key"

logger = Logger(service="ferry-api")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class Unprocessable(ApiError):
    status = 422
    code = "unprocessable"


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body={"error": error}
    )


# --------------------------------------------------------------------------------------------
# Auth
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    customer_id: str
    key_id: str


class ApiKeyStore(Protocol):
    def lookup(self, key_hash: str) -> Principal | None: ...

    def add(self, key_hash: str, principal: Principal) -> None: ...


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key() -> str:
    return "fk_" + secrets.token_urlsafe(24)


def issue_key(store: ApiKeyStore, customer_id: str) -> tuple[str, Principal]:
    """Create a new API key for a customer; the key itself is returned once and never stored."""
    key = new_api_key()
    principal = Principal(customer_id=customer_id, key_id="key-" + hash_key(key)[:12])
    store.add(hash_key(key), principal)
    return key, principal


class InMemoryKeyStore:
    """For unit tests and as the cache layer."""

    def __init__(self) -> None:
        self._keys: dict[str, Principal] = {}

    def lookup(self, key_hash: str) -> Principal | None:
        return self._keys.get(key_hash)

    def add(self, key_hash: str, principal: Principal) -> None:
        self._keys[key_hash] = principal


class DynamoKeyStore:
    """API keys table (pk key_hash). In AWS API Gateway also checks the key (usage plans)."""

    def __init__(self, table_name: str, client: Any = None, cache_seconds: float = 60.0):
        import boto3

        self._table = table_name
        self._client = client or boto3.client("dynamodb")
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()

    def lookup(self, key_hash: str) -> Principal | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_hash)
        if hit and now - hit[0] < self._cache_seconds:
            return hit[1]
        item = self._client.get_item(
            TableName=self._table, Key={"key_hash": {"S": key_hash}}, ConsistentRead=True
        ).get("Item")
        principal = (
            Principal(customer_id=item["customer_id"]["S"], key_id=item["key_id"]["S"])
            if item
            else None
        )
        with self._lock:
            self._cache[key_hash] = (now, principal)
        return principal

    def add(self, key_hash: str, principal: Principal) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "key_hash": {"S": key_hash},
                "customer_id": {"S": principal.customer_id},
                "key_id": {"S": principal.key_id},
                "created_at": {"S": datetime.now(UTC).isoformat()},
            },
        )

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
# Resolver
# --------------------------------------------------------------------------------------------

_PRINCIPAL = "principal"
PUBLIC_PATHS = frozenset({"/openapi.json", "/swagger"})


def principal(app: APIGatewayRestResolver) -> Principal:
    """The authenticated caller of the current request."""
    found = app.context.get(_PRINCIPAL)
    if not isinstance(found, Principal):  # pragma: no cover - the middleware guarantees it
        raise Unauthorized("missing API key")
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


def unencodable_field(value: Any, path: tuple[str, ...] = ()) -> str | None:
    """The dotted path of the first string (key or value) of a parsed JSON body that is not
    valid Unicode (a lone surrogate such as ``"\\udfff"``: it cannot be stored, logged or
    published), ``"body"`` for the body itself, or None when everything encodes."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return ".".join(path) or "body"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = unencodable_field(key, path) or unencodable_field(item, (*path, str(key)))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unencodable_field(item, (*path, str(index)))
            if found:
                return found
    return None


class FerryResolver(APIGatewayRestResolver):
    """APIGatewayRestResolver that authenticates and checks the body size before routing (and so
    before request validation: an unauthenticated caller learns nothing about the schema)."""

    def __init__(self, keys: ApiKeyStore, **kwargs: Any):
        super().__init__(enable_validation=True, **kwargs)
        self._keys = keys

    def resolve(self, event: Any, context: Any) -> dict[str, Any]:
        early = self._admit(event)
        if early is not None:
            return early
        return super().resolve(event, context)

    def _admit(self, event: dict[str, Any]) -> dict[str, Any] | None:
        raw = event.get("body") or ""
        size = len(raw.encode()) if isinstance(raw, str) else len(raw)
        if size > MAX_BODY_BYTES:
            return _raw_error(
                413, "payload_too_large", f"request body is over {MAX_BODY_BYTES} bytes"
            )
        if event.get("path") in PUBLIC_PATHS:
            return None
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        api_key = headers.get(API_KEY_HEADER)
        if not api_key:
            return _raw_error(401, "unauthorized", "missing x-api-key header", API_KEY_HEADER)
        found = self._keys.lookup(hash_key(api_key))
        if found is None:
            return _raw_error(401, "unauthorized", "unknown API key", API_KEY_HEADER)
        self.append_context(**{_PRINCIPAL: found})
        logger.append_keys(customer_id=found.customer_id, api_key_id=found.key_id)
        return None


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


def make_resolver(keys: ApiKeyStore) -> FerryResolver:
    app = FerryResolver(keys)

    @app.exception_handler(ApiError)
    def _api_error(ex: ApiError) -> Response:
        return error_response(ex.status, ex.code, ex.message, ex.field)

    @app.exception_handler(RequestValidationError)
    def _validation_error(ex: RequestValidationError) -> Response:
        errors = list(ex.errors())
        first = errors[0] if errors else {}
        loc = first.get("loc", ())
        msg = first.get("msg", "invalid request")
        kind = first.get("type", "")
        if kind == "json_invalid":
            return error_response(400, "invalid_json", "request body is not valid JSON", "body")
        field = _field_of(loc)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return error_response(422, "validation_error", f"{field or 'request'}: {msg}{more}", field)

    @app.not_found
    def _not_found(_: Exception) -> Response:
        return error_response(404, "not_found", "no such route")

    @app.exception_handler(Exception)
    def _internal(ex: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "internal", "internal error; it has been logged")

    return app


def json_handler(resolver_factory: Callable[[], FerryResolver]) -> Any:
    """Lazily build a resolver once per process (cold start), then resolve each event."""
    holder: dict[str, FerryResolver] = {}
    tracer = Tracer()  # X-Ray in Lambda (service from POWERTOOLS_SERVICE_NAME); off elsewhere

    @tracer.capture_lambda_handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if "app" not in holder:
            holder["app"] = resolver_factory()
        return holder["app"].resolve(event, context)

    handler.resolver_factory = resolver_factory  # type: ignore[attr-defined]
    return handler
