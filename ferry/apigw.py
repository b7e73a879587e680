"""Build API Gateway (REST, proxy integration) events: used by the local HTTP server (which
stands in for API Gateway) and by handler tests, so both invoke handlers exactly as AWS does."""

from __future__ import annotations

import uuid
from typing import Any


def rest_event(
    method: str,
    path: str,
    *,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    content_type: str | None = "application/json",
) -> dict[str, Any]:
    """``content_type`` is sent with a body when ``headers`` carry none (None: send none, as the
    local API server does, which passes the client's headers as they came)."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    if body is not None and content_type and "content-type" not in headers:
        headers["content-type"] = content_type
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method.upper(),
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method.upper(),
            "path": path,
            "stage": "local",
            "requestId": str(uuid.uuid4()),
            "identity": {"apiKey": headers.get("x-api-key"), "sourceIp": "127.0.0.1"},
        },
        "body": body,
        "isBase64Encoded": False,
    }
