"""Webhook POSTs under the egress policy (``services.executor.egress``, the seam named in
pyproject): https only (plain http only where the deployment allows it: the local stack), the
host resolved once and *every* address checked (loopback, private, link-local, metadata... are
refused unless allow-listed by ``FERRY_EGRESS_ALLOW``), and the connection opened to the checked
address itself, so nothing re-resolves the name (no DNS rebinding). TLS verifies the certificate
against the URL's host name. Redirects are not followed. Every socket operation has a timeout
(5 s by default), so a slow receiver holds up only its own delivery."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.parse
from typing import Any

from services.executor.egress import EgressDenied, EgressPolicy, HostNotFound
from services.notifications.ports import Outcome

MAX_RESPONSE_BYTES = 64 * 1024


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: tuple[Any, ...], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection(self._address[:2], self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: tuple[Any, ...], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection(self._address[:2], self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


class HttpWebhookSender:
    def __init__(self, policy: EgressPolicy, *, allow_http: bool = False, timeout: float = 5.0):
        self.policy, self.allow_http, self.timeout = policy, allow_http, timeout

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        parts = urllib.parse.urlsplit(url)
        secure = parts.scheme == "https"
        if not secure and not (self.allow_http and parts.scheme == "http"):
            return Outcome(False, error="https_required", permanent=True)
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        started = time.monotonic()
        try:
            addresses = self.policy.resolve(host, port)
        except EgressDenied:
            return Outcome(False, error="egress_denied", permanent=True)
        except HostNotFound:
            return Outcome(False, latency_ms=_ms(started), error="host_not_found")
        kind = _PinnedHTTPS if secure else _PinnedHTTP
        connection = kind(host, port, addresses[0].sockaddr, self.timeout)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            status = response.status
        except TimeoutError:
            return Outcome(False, latency_ms=_ms(started), error="timeout")
        except ssl.SSLError:
            return Outcome(False, latency_ms=_ms(started), error="tls_error")
        except (OSError, http.client.HTTPException):
            return Outcome(False, latency_ms=_ms(started), error="connection_failed")
        finally:
            connection.close()
        ok = 200 <= status < 300
        return Outcome(ok, status, _ms(started), None if ok else f"http_{status}")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
