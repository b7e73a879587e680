"""Count every AWS API call a moto server answers, by caller, service and operation (bench/tests).

Why at the server and not with a botocore hook: every Ferry process of the local stack (API,
publisher, SQS pollers, executor, routes) and every child it starts talks to the same moto
server, so one counter there sees all of them, including processes that are killed -9 and
restarted (a per-process hook would lose its counts with the process). The caller is the access
key id in the SigV4 ``Authorization`` header: Ferry's processes sign with ``testing``; a benchmark
driver signs with its own key (e.g. ``bench``) so that its own uploads and checks are counted
apart.

The operation is what the request names: ``X-Amz-Target`` (DynamoDB, DynamoDB Streams, SQS JSON,
EventBridge, Secrets Manager), the form's ``Action`` (STS, SQS query protocol) or, for S3's REST
API, the method + path + sub-resource (``PUT /b/k?partNumber&uploadId`` = UploadPart, with
``x-amz-copy-source`` = UploadPartCopy, …). ``units`` estimates what AWS bills for the call:
DynamoDB request units (1 WRU per item write ≤ 1 KB, 2 per transactional item; 1 RRU per
strongly consistent read, 0.5 eventually consistent, 2 per transactional read — item sizes are
not known here, so a Query counts as 1 RRU), EventBridge ``PutEvents`` entries, the messages of
an SQS batch call, and 1 for every other call.

``GET /_ferry/calls`` returns ``{"calls": [{"principal", "service", "operation", "count",
"units"}, …]}``; ``DELETE /_ferry/calls`` returns the same and resets the counts to zero. Enabled by ``SerialMotoServer(count_calls=True)``
or ``FERRY_MOTO_COUNT_CALLS=1`` for ``python -m events._moto``.
"""

from __future__ import annotations

import io
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["CALLS_PATH", "CallCounter", "s3_operation"]

CALLS_PATH = "/_ferry/calls"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/aws4_request")
_MAX_BODY = 1024 * 1024  # JSON/form bodies this small are read to name the operation and units

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_DDB_WRITES = {"PutItem": 1.0, "UpdateItem": 1.0, "DeleteItem": 1.0}
_DDB_FREE = (
    "Describe",
    "List",
    "CreateTable",
    "DeleteTable",
    "UpdateTable",
    "Tag",
    "Untag",
    "UpdateTimeToLive",
)


def s3_operation(method: str, path: str, query: str, headers: dict[str, str]) -> str:
    """S3 REST (path-style) request → its API operation name."""
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    parts = [p for p in path.split("/", 2)[1:] if p]
    copy = "x-amz-copy-source" in headers
    if not parts:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if len(parts) == 1:  # the bucket itself
        for sub in (
            "versioning",
            "tagging",
            "notification",
            "policy",
            "lifecycle",
            "encryption",
            "cors",
            "acl",
            "location",
            "ownershipControls",
            "publicAccessBlock",
        ):
            if sub in params:
                verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method, method)
                name = sub[0].upper() + sub[1:]
                return f"{verb}Bucket{name}"
        if method == "GET":
            if "uploads" in params:
                return "ListMultipartUploads"
            if "versions" in params:
                return "ListObjectVersions"
            return "ListObjectsV2" if params.get("list-type") == ["2"] else "ListObjects"
        if method == "POST" and "delete" in params:
            return "DeleteObjects"
        return {
            "PUT": "CreateBucket",
            "HEAD": "HeadBucket",
            "DELETE": "DeleteBucket",
        }.get(method, f"{method} bucket")
    if "tagging" in params:
        return {"GET": "GetObjectTagging", "PUT": "PutObjectTagging"}.get(
            method, "DeleteObjectTagging"
        )
    if "uploadId" in params:
        if method == "PUT":
            return "UploadPartCopy" if copy else "UploadPart"
        if method == "GET":
            return "ListParts"
        if method == "POST":
            return "CompleteMultipartUpload"
        if method == "DELETE":
            return "AbortMultipartUpload"
    if method == "POST" and "uploads" in params:
        return "CreateMultipartUpload"
    if method == "PUT":
        return "CopyObject" if copy else "PutObject"
    return {
        "GET": "GetObject",
        "HEAD": "HeadObject",
        "DELETE": "DeleteObject",
    }.get(method, f"{method} object")


def _dynamodb_units(operation: str, body: dict[str, Any]) -> float:
    if operation in _DDB_WRITES:
        return _DDB_WRITES[operation]
    if operation == "TransactWriteItems":
        return 2.0 * len(body.get("TransactItems", []))
    if operation == "BatchWriteItem":
        return float(sum(len(v) for v in body.get("RequestItems", {}).values()))
    if operation == "TransactGetItems":
        return 2.0 * len(body.get("TransactItems", []))
    if operation == "BatchGetItem":
        return sum(
            len(v.get("Keys", [])) * (1.0 if v.get("ConsistentRead") else 0.5)
            for v in body.get("RequestItems", {}).values()
        )
    if operation in ("GetItem", "Query", "Scan"):
        return 1.0 if body.get("ConsistentRead") else 0.5
    if operation.startswith(_DDB_FREE):
        return 0.0
    return 1.0


class CallCounter:
    """WSGI middleware counting calls; thread-safe; answers ``CALLS_PATH`` itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], list[float]] = {}

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._rows()

    def _rows(self) -> list[dict[str, Any]]:
        return [
            {
                "principal": p,
                "service": s,
                "operation": o,
                "count": int(v[0]),
                "units": v[1],
            }
            for (p, s, o), v in sorted(self._counts.items())
        ]

    def reset(self) -> list[dict[str, Any]]:
        """Clear the counts; returns what they were (one atomic step: no call is lost)."""
        with self._lock:
            rows = self._rows()
            self._counts.clear()
        return rows

    def record(self, principal: str, service: str, operation: str, units: float) -> None:
        with self._lock:
            entry = self._counts.setdefault((principal, service, operation), [0.0, 0.0])
            entry[0] += 1
            entry[1] += units

    def classify(self, environ: dict[str, Any]) -> tuple[str, str, str, float]:
        """(principal, service, operation, units) of one request; may buffer a small body."""
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        principal, service = (match.group(1), match.group(2)) if match else ("-", "-")
        method = environ.get("REQUEST_METHOD", "GET")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        content_type = environ.get("CONTENT_TYPE", "")
        body: bytes = b""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if 0 < length <= _MAX_BODY and (target or "x-www-form-urlencoded" in content_type):
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
        if target:
            prefix, _, operation = target.partition(".")
            if prefix.startswith("DynamoDBStreams"):
                return principal, "dynamodbstreams", operation, 1.0
            parsed: dict[str, Any] = {}
            if body:
                try:
                    loaded = json.loads(body)
                    parsed = loaded if isinstance(loaded, dict) else {}
                except ValueError:
                    parsed = {}
            if prefix.startswith("DynamoDB"):
                return principal, "dynamodb", operation, _dynamodb_units(operation, parsed)
            if prefix == "AWSEvents" and operation == "PutEvents":
                return principal, "events", operation, float(len(parsed.get("Entries", [])))
            if prefix == "AmazonSQS" and "Entries" in parsed:  # a batch: units = messages
                return principal, "sqs", operation, float(len(parsed["Entries"]))
            return principal, service, operation, 1.0
        if "x-www-form-urlencoded" in content_type or environ.get("QUERY_STRING", ""):
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            action = (form.get("Action") or query.get("Action") or [None])[0]
            if action and service != "s3":
                return principal, service, action, 1.0
        if service == "s3":
            headers = {
                k[5:].lower().replace("_", "-"): str(v)
                for k, v in environ.items()
                if k.startswith("HTTP_")
            }
            operation = s3_operation(
                method, environ.get("PATH_INFO", "/"), environ.get("QUERY_STRING", ""), headers
            )
            return principal, "s3", operation, 1.0
        return principal, service, f"{method} {environ.get('PATH_INFO', '/')}", 1.0

    def wrap(self, app: WSGIApp) -> WSGIApp:
        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == CALLS_PATH:
                reset = environ.get("REQUEST_METHOD") == "DELETE"
                rows = self.reset() if reset else self.snapshot()
                payload = json.dumps({"calls": rows}).encode()
                start_response(
                    "200 OK",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
                )
                return [payload]
            principal, service, operation, units = self.classify(environ)
            self.record(principal, service, operation, units)
            return app(environ, start_response)

        return counted
