"""On the local stack (``ferry up``, moto, the real API server and handlers), as an operator and
a customer would: ``ferry keys create|list|revoke`` and what each key may do, and hostile bodies
answered with a 4xx naming the field."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import pytest

from tests.e2e.harness import running_stack

pytestmark = pytest.mark.e2e


def _request(
    url: str,
    method: str,
    path: str,
    key: str,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=60)
    headers = {"x-api-key": key}
    if body is not None:
        headers["Content-Type"] = content_type
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    return response.status, json.loads(raw) if raw else None


def test_key_lifecycle_and_hostile_bodies_on_the_local_stack(tmp_path: Path) -> None:
    with running_stack(tmp_path / "data") as stack:
        url = stack.api_url
        reader = stack.cli_json("keys", "create", "acme", "--name", "dashboard", "--scope", "read")
        writer = stack.cli_json("keys", "create", "acme", "--name", "ci", "--expires-in", "90d")
        assert reader["scope"] == "read" and writer["scope"] == "write" and writer["expires_at"]

        assert _request(url, "GET", "/endpoints", reader["api_key"])[0] == 200
        body = json.dumps({"name": "in", "type": "s3", "direction": "BOTH", "bucket": "b-1"})
        status, answer = _request(url, "POST", "/endpoints", reader["api_key"], body.encode())
        assert (status, answer["error"]["code"]) == (403, "forbidden")
        status, answer = _request(url, "POST", f"/jobs/{uuid4()}/cancel", reader["api_key"])
        assert status == 403

        listed = stack.cli_json("keys", "list", "--customer", "acme")
        assert {k["name"] for k in listed["keys"]} == {"dashboard", "ci"}
        assert reader["api_key"] not in json.dumps(listed)

        # revoked in one process (the CLI), refused by the API server's very next request
        stack.cli_json("keys", "revoke", reader["key_id"])
        status, answer = _request(url, "GET", "/endpoints", reader["api_key"])
        assert (status, answer["error"]["message"]) == (401, "API key revoked")
        again = stack.cli("keys", "revoke", reader["key_id"], check=False)
        assert again.returncode == 1 and "already revoked" in again.stderr

        key = writer["api_key"]
        hostile = [
            ("POST", "/transfers", b"[" * 50_000, "application/json", 400, "body"),
            ("POST", "/endpoints", b'{"a":' * 20_000, "application/json", 400, "body"),
            ("POST", "/transfers", b"{}", "text/plain", 415, "content-type"),
            ("POST", "/routes", b"<r/>", "application/xml", 415, "content-type"),
            (
                "POST",
                "/endpoints",
                b"--x\r\n",
                "multipart/form-data; boundary=x",
                415,
                "content-type",
            ),
            ("POST", "/endpoints", b'{"name": "\xff"}', "application/json", 400, "body"),
            (
                "POST",
                "/transfers",
                b'{"source": {"endpoint_id": "e", "path": "a\\udfffb"}}',
                "application/json",
                422,
                "source.path",
            ),
            (
                "POST",
                "/transfers",
                json.dumps(
                    {
                        "source": {"endpoint_id": str(uuid4()), "path": "\u2025/x"},
                        "target": {"endpoint_id": str(uuid4()), "path": "y"},
                    }
                ).encode(),
                "application/json",
                422,
                "source.path",
            ),
            (
                "PATCH",
                f"/endpoints/{str(uuid4()).upper()}",
                b'{"name": "x"}',
                "application/json",
                404,
                "endpoint_id",
            ),
        ]
        for method, path, payload, content_type, expected, field in hostile:
            status, answer = _request(url, method, path, key, payload, content_type)
            assert (status, answer["error"].get("field")) == (expected, field), (path, answer)
