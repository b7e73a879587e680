"""Stands in for Amazon API Gateway (REST API, Lambda proxy integration) on the local stack.

An HTTP server that turns each request into the API Gateway proxy event (``ferry.apigw.rest_event``)
— with ``resource`` set to the matched route template and ``pathParameters`` filled, as API
Gateway does — and invokes the SAME handler function API Gateway would (the routes table below
mirrors docs/architecture.md and infra/). Each handler is one "Lambda function" and the server
handles one request at a time across all of them (see ``_Functions``: Powertools' current event
is process-wide). Bodies above 256 KB get 413 before being read.
``GET /openapi.json`` serves the merged OpenAPI document of the handlers (``ferry.openapi``);
``/console`` (the operator console), ``/docs`` and ``/swagger`` (Swagger UI, vendored) are the
static pages of ``ferry.console``, served by the queries function as in AWS.

    python -m ferry.local.apiserver --port 8080
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ferry.api import MAX_BODY_BYTES
from ferry.apigw import rest_event
from ferry.local.lambda_runtime import Handler, LocalLambdaContext, load_handler
from ferry.names import API_HANDLERS, API_PAGE_ROUTES, API_ROUTES

log = logging.getLogger("ferry.local.apiserver")

# (method, resource template, handler): the same route table API Gateway is built from.
ROUTES: tuple[tuple[str, str, str], ...] = tuple(
    (method, path, f"{API_HANDLERS[function]}:handler")
    for method, path, function in (*API_ROUTES, *API_PAGE_ROUTES)
)
HANDLERS = tuple(f"{module}:handler" for module in API_HANDLERS.values())


@dataclass(frozen=True)
class Match:
    resource: str
    handler: str
    path_parameters: dict[str, str]


def match_route(method: str, path: str) -> tuple[Match | None, bool]:
    """(the route, whether the path exists under another method)."""
    segments = [s for s in path.split("/") if s]
    path_known = False
    for route_method, template, handler in ROUTES:
        parts = [s for s in template.split("/") if s]
        if len(parts) != len(segments):
            continue
        params: dict[str, str] = {}
        for part, segment in zip(parts, segments, strict=True):
            if part.startswith("{") and part.endswith("}"):
                params[part[1:-1]] = unquote(segment)
            elif part != segment:
                break
        else:
            path_known = True
            if route_method == method:
                return Match(template, handler, params), True
    return None, path_known


def _error_body(code: str, message: str, field: str | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return json.dumps({"error": error}).encode()


class _Functions:
    """The handler functions, loaded once, invoked one request at a time — all of them, not one
    lock per function: Powertools keeps the request being resolved on the ``BaseRouter`` *class*
    (``BaseRouter.current_event``), so in one process two resolvers handling requests at the
    same time read each other's query strings, headers and principal. In AWS each function is
    its own process and one instance handles one request at a time, so this is the local
    equivalent. (With a lock per function, the console's parallel ``/endpoints`` call made the
    ledger search read no ``name`` and list every file; tests/unit/test_local_apiserver_race.py.)
    """

    def __init__(self, specs: tuple[str, ...]) -> None:
        self._specs = specs
        self._handlers: dict[str, Handler] = {}
        self._invoke_lock = threading.Lock()  # one request at a time in this process
        self._load_lock = threading.Lock()

    def invoke(self, spec: str, event: dict[str, Any]) -> dict[str, Any]:
        with self._load_lock:
            if spec not in self._handlers:
                self._handlers[spec] = load_handler(spec)
        handler = self._handlers[spec]
        name = "ferry-" + spec.split(".")[1] + "-api"
        with self._invoke_lock:
            result = handler(event, LocalLambdaContext(function_name=name))
        if not isinstance(result, dict):
            raise TypeError(f"{spec} returned {type(result).__name__}, not a proxy response")
        return result


class ApiRequestHandler(BaseHTTPRequestHandler):
    server_version = "ferry-local-apigw/1"
    protocol_version = "HTTP/1.1"
    wbufsize = 256 * 1024  # buffered wfile: one send per response (see _send)
    functions: _Functions  # set on the server subclass

    def setup(self) -> None:
        super().setup()
        # One write per response below, and no Nagle delay against the client's delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # Methods no route declares: a JSON 405 (or 404 for an unknown path), as API Gateway
    # answers, never http.server's HTML 501.
    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def do_TRACE(self) -> None:
        self._dispatch("TRACE")

    def do_CONNECT(self) -> None:
        self._dispatch("CONNECT")

    def __getattr__(self, name: str) -> Any:
        # Any other method token (QUERY, PROPFIND, …): http.server would answer HTML 501.
        if name.startswith("do_") and name[3:].isascii() and name[3:].isalpha():
            return lambda: self._dispatch(name[3:].upper())
        raise AttributeError(name)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        sent = {k.lower() for k in (headers or {})}
        for k, v in (headers or {}).items():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        if "content-type" not in sent:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":  # a HEAD response has the headers of the body, not the body
            self.wfile.write(body)  # buffered: handle_one_request() flushes headers + body at once

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path = split.path or "/"
        length_header = self.headers.get("Content-Length")
        try:
            length = int(length_header) if length_header else 0
        except ValueError:
            self.close_connection = True
            self._send(400, _error_body("bad_request", "invalid Content-Length"))
            return
        if length > MAX_BODY_BYTES:
            # Refuse without reading the body, and drop the connection (the body is unread).
            self.close_connection = True
            self._send(
                413,
                _error_body("payload_too_large", f"request body is over {MAX_BODY_BYTES} bytes"),
            )
            return
        raw = self.rfile.read(length) if length else b""

        match, path_known = match_route(method, path)
        if match is None:
            if path_known:
                allowed = sorted({m for m, t, _ in ROUTES if match_route(m, path)[0] is not None})
                self._send(
                    405,
                    _error_body("method_not_allowed", f"{method} is not allowed here"),
                    {"Allow": ", ".join(allowed)},
                )
            else:
                self._send(404, _error_body("not_found", "no such route"))
            return
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        try:
            body = raw.decode() if raw else None
        except UnicodeDecodeError:
            self._send(400, _error_body("invalid_json", "request body is not UTF-8", "body"))
            return
        event = rest_event(
            method,
            path,
            body=body,
            headers=dict(self.headers.items()),
            query=query or None,
            resource=match.resource,
            path_parameters=match.path_parameters or None,
            content_type=None,  # the client's own Content-Type (or none), as API Gateway passes it
        )
        try:
            response = self.functions.invoke(match.handler, event)
        except Exception:
            # API Gateway answers 502 when the integration fails.
            log.exception("handler %s failed", match.handler)
            self._send(502, _error_body("bad_gateway", "the handler failed; see its log"))
            return
        headers = dict(response.get("headers") or {})
        for k, values in (response.get("multiValueHeaders") or {}).items():
            if values:
                headers.setdefault(k, values[-1])
        payload = response.get("body") or ""
        if response.get("isBase64Encoded"):
            import base64

            data = base64.b64decode(payload)
        else:
            data = payload.encode() if isinstance(payload, str) else bytes(payload)
        self._send(int(response.get("statusCode", 200)), data, headers)


def make_server(host: str, port: int) -> ThreadingHTTPServer:
    handler_class = type(
        "BoundApiRequestHandler", (ApiRequestHandler,), {"functions": _Functions(HANDLERS)}
    )
    server = ThreadingHTTPServer((host, port), handler_class)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local API Gateway stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FERRY_API_PORT", "8080")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = make_server(args.host, args.port)

    def _stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("API listening on http://%s:%d", args.host, server.server_address[1])
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
