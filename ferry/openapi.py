"""The merged OpenAPI document of Ferry's one REST API (served at GET /openapi.json).

Four Lambda functions (endpoints, jobs, projections, routes) each own a Powertools resolver that
knows its routes and pydantic models; this module asks each for its generated document (through
the ``resolver_factory`` that ``ferry.api.json_handler`` attaches to every handler) and merges
paths and component schemas into one, with the ``x-api-key`` security scheme.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
from typing import Any

from ferry.names import API_HANDLERS

log = logging.getLogger("ferry.openapi")

HANDLER_MODULES = tuple(API_HANDLERS.values())

TITLE = "Ferry API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Self-serve managed file transfer between SFTP servers and S3. Every request needs the "
    "x-api-key header; every error is {'error': {'code', 'message', 'field'?}}."
)

_cache: dict[str, Any] = {}
_lock = threading.Lock()


def _resolver_of(module_name: str) -> Any:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    handler = importlib.import_module(module_name).handler
    return handler.resolver_factory()


def _request_bodies(module_name: str) -> dict[tuple[str, str], Any]:
    bodies: dict[tuple[str, str], Any] = getattr(
        importlib.import_module(module_name), "REQUEST_BODIES", {}
    )
    return bodies


def _schema_of(resolver: Any) -> dict[str, Any]:
    text = resolver.get_openapi_json_schema(title=TITLE, version=VERSION)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
_ERROR_DESCRIPTIONS = {
    400: "The request cannot be read (not JSON, nested too deeply, not UTF-8)",
    401: "Missing, unknown, revoked or expired API key",
    403: "The API key may not do this (a read-scoped key on a mutating route)",
    404: "No such resource for this caller (ids are canonical lower-case UUIDs)",
    409: "The resource's state does not allow this now",
    413: "The request body is over 256 KB",
    415: "The request body is not application/json",
    422: "A field's value is not acceptable (error.field names it)",
}
MUTATING_ERRORS = (400, 401, 403, 404, 409, 413, 415, 422)
READING_ERRORS = (400, 401, 404, 422)
_DATE_FIELDS = ("_at", "_on")


def _schema_of_type(
    model: Any, components: dict[str, Any], mode: str = "validation"
) -> dict[str, Any]:
    """The JSON schema of a pydantic model or type, its definitions moved into ``components``."""
    from pydantic import BaseModel, TypeAdapter

    schema: dict[str, Any] = TypeAdapter(model).json_schema(
        ref_template="#/components/schemas/{model}",
        mode=mode,  # type: ignore[arg-type]
    )
    for name, definition in (schema.pop("$defs", None) or {}).items():
        components.setdefault(name, definition)
    if isinstance(model, type) and issubclass(model, BaseModel):
        components.setdefault(model.__name__, schema)
        return {"$ref": f"#/components/schemas/{model.__name__}"}
    return schema


def complete(document: dict[str, Any], bodies: dict[tuple[str, str], Any]) -> dict[str, Any]:
    """Make a resolver's document tell the truth about what the edge does:

    - request bodies that handlers parse by hand (``REQUEST_BODIES`` of a handler module) are
      declared with their pydantic model (required, except where the body is optional);
    - every operation documents the error statuses the edge and the route can return, each with
      the error envelope (Powertools' own 422 schema is not what Ferry answers);
    - dates (``*_at``, ``as_of``) are ``format: date-time``.
    """
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for (method, path), model in bodies.items():
        operation = (document.get("paths") or {}).get(path, {}).get(method.lower())
        if operation is None:
            continue
        optional = model is None or "disable" in path
        content = {"application/json": {"schema": _schema_of_type(model, components)}}
        operation["requestBody"] = {"required": not optional, "content": content}
    from ferry.api import ErrorEnvelope

    if "ErrorEnvelope" not in components:
        _schema_of_type(ErrorEnvelope, components, mode="serialization")
        # as Powertools renders the same model in the documents that already declare it
        components["ErrorDetail"]["properties"]["field"].pop("default", None)
    for operations in (document.get("paths") or {}).values():
        for method, operation in operations.items():
            statuses = READING_ERRORS if method in ("get", "head", "options") else MUTATING_ERRORS
            responses = operation.setdefault("responses", {})
            for status in statuses:
                responses[str(status)] = {
                    "description": _ERROR_DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": ERROR_REF}},
                }
            for response in responses.values():
                schema = (response.get("content") or {}).get("application/json", {}).get("schema")
                if schema == {"$ref": "#/components/schemas/HTTPValidationError"}:
                    response["content"]["application/json"]["schema"] = ERROR_REF
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for schema in components.values():
        _date_formats(schema)
    return document


def _date_formats(schema: dict[str, Any]) -> None:
    for name, prop in (schema.get("properties") or {}).items():
        if not (name.endswith(_DATE_FIELDS) or name == "as_of") or not isinstance(prop, dict):
            continue
        for branch in [prop, *prop.get("anyOf", [])]:
            if branch.get("type") == "string" and "format" not in branch:
                branch["format"] = "date-time"


def merge(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge OpenAPI documents: union of paths (per method) and of component schemas."""
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "paths": {},
        "components": {
            "schemas": {},
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
        "security": [{"ApiKey": []}],
    }
    for doc in documents:
        for path, operations in (doc.get("paths") or {}).items():
            if path in ("/openapi.json", "/swagger"):
                continue
            merged["paths"].setdefault(path, {}).update(operations)
        for name, schema in ((doc.get("components") or {}).get("schemas") or {}).items():
            existing = merged["components"]["schemas"].get(name)
            if existing is not None and existing != schema:
                log.warning("openapi: two different schemas named %s; keeping the first", name)
                continue
            merged["components"]["schemas"][name] = schema
    merged["paths"] = dict(sorted(merged["paths"].items()))
    return merged


def merged_openapi(*, refresh: bool = False) -> dict[str, Any]:
    """The merged document (built once per process)."""
    with _lock:
        if refresh or "doc" not in _cache:
            documents = [
                complete(_schema_of(_resolver_of(m)), _request_bodies(m)) for m in HANDLER_MODULES
            ]
            _cache["doc"] = merge(documents)
        result: dict[str, Any] = _cache["doc"]
        return result
