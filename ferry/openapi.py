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


def _schema_of(resolver: Any) -> dict[str, Any]:
    text = resolver.get_openapi_json_schema(title=TITLE, version=VERSION)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


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
            documents = [_schema_of(_resolver_of(m)) for m in HANDLER_MODULES]
            _cache["doc"] = merge(documents)
        result: dict[str, Any] = _cache["doc"]
        return result
