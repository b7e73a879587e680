"""The merged OpenAPI document of Ferry's one REST API (served at GET /openapi.json).

Three Lambda functions (endpoints, jobs, projections) each own a Powertools resolver that knows
its routes and pydantic models; this module asks each resolver for its generated document and
merges paths and component schemas into one, with the ``x-api-key`` security scheme.

How a handler module's resolver is found (first that exists): the resolver its ``handler``
(made by ``ferry.api.json_handler``) already built in this process, else a new one from that
handler's ``resolver_factory``; else a no-argument factory function named ``build_app`` /
``make_app`` / ``create_app`` / ``build_resolver`` / ``make_resolver_app``; else a module
attribute ``app`` / ``resolver``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import threading
from typing import Any

log = logging.getLogger("ferry.openapi")

HANDLER_MODULES = (
    "services.endpoints.handlers",
    "services.jobs.handlers",
    "services.projections.handlers",
)
_FACTORY_NAMES = ("build_app", "make_app", "create_app", "build_resolver", "make_resolver_app")
_INSTANCE_NAMES = ("app", "resolver")

TITLE = "Ferry API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Self-serve managed file transfer between SFTP servers and S3. Every request needs the "
    "x-api-key header; every error is {'error': {'code', 'message', 'field'?}}."
)

_cache: dict[str, Any] = {}
_lock = threading.Lock()


def _resolver_of(module_name: str) -> Any | None:
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        log.warning("openapi: %s not importable (%s)", module_name, error)
        return None
    handler = getattr(module, "handler", None)
    if handler is not None:
        with_closure = getattr(handler, "__wrapped__", handler)
        try:
            nonlocals = inspect.getclosurevars(with_closure).nonlocals
        except TypeError:
            nonlocals = {}
        built = (nonlocals.get("holder") or {}).get("app")
        if built is not None and hasattr(built, "get_openapi_schema"):
            return built  # this process already built it (a warm "Lambda")
        factory = nonlocals.get("resolver_factory")
        if callable(factory):
            return _call_factory(factory)
    for name in _FACTORY_NAMES:
        factory = getattr(module, name, None)
        if callable(factory) and _takes_no_arguments(factory):
            return _call_factory(factory)
    for name in _INSTANCE_NAMES:
        found = getattr(module, name, None)
        if found is not None and hasattr(found, "get_openapi_schema"):
            return found
    log.warning("openapi: no resolver found in %s", module_name)
    return None


def _takes_no_arguments(function: Any) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in parameters
    )


def _call_factory(factory: Any) -> Any | None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        return factory()
    except Exception:
        log.exception("openapi: building the resolver failed")
        return None


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
            documents = []
            for module_name in HANDLER_MODULES:
                resolver = _resolver_of(module_name)
                if resolver is not None:
                    documents.append(_schema_of(resolver))
            doc = merge(documents)
            if len(documents) < len(HANDLER_MODULES):
                return doc  # incomplete: don't cache, a later call may find the rest
            _cache["doc"] = doc
        result: dict[str, Any] = _cache["doc"]
        return result
