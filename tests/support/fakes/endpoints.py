"""Fakes of the endpoints' ports: the endpoint directory (``ferry.endpoint_directory``, used for
the jobs and routes services alike), the secret store and the endpoint-usage reader
(``services.endpoints.application``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping

from ferry.endpoint_directory import EndpointDirectory, EndpointInfo
from services.endpoints.application import Credentials, EndpointUsage, SecretStore, SecretWrite

__all__ = ["InMemoryEndpointDirectory", "InMemoryEndpointUsage", "InMemorySecretStore"]


class InMemoryEndpointDirectory(EndpointDirectory):
    def __init__(self, endpoints: list[EndpointInfo] | None = None) -> None:
        self.endpoints = {e.endpoint_id: e for e in endpoints or []}

    def put(self, endpoint: EndpointInfo) -> None:
        self.endpoints[endpoint.endpoint_id] = endpoint

    def get(self, endpoint_id: str) -> EndpointInfo | None:
        return self.endpoints.get(endpoint_id)


class InMemoryEndpointUsage(EndpointUsage):
    """A fake: ``uses[(customer_id, endpoint_id)]`` = the descriptions to report."""

    def __init__(self) -> None:
        self.uses: dict[tuple[str, str], list[str]] = {}

    def users(self, customer_id: str, endpoint_id: str) -> list[str]:
        return list(self.uses.get((customer_id, endpoint_id), []))


class InMemorySecretStore(SecretStore):
    """A fake for unit tests: versions per secret, the current one last. ``fail_next`` makes
    the next call of that method raise (to exercise the undo paths)."""

    def __init__(self, *, account: str = "123456789012", region: str = "us-east-1") -> None:
        self._prefix = f"arn:aws:secretsmanager:{region}:{account}:secret:"
        self._lock = threading.Lock()
        self.names: dict[str, str] = {}  # arn -> name
        self.versions: dict[str, list[tuple[str, dict[str, str | None]]]] = {}
        self.current: dict[str, str] = {}  # arn -> version id
        self.tags: dict[str, dict[str, str]] = {}
        self.deleted: list[str] = []
        self.fail_next: set[str] = set()

    def _maybe_fail(self, method: str) -> None:
        if method in self.fail_next:
            self.fail_next.discard(method)
            raise RuntimeError(f"injected {method} failure")

    def create(self, name: str, value: Credentials, *, tags: Mapping[str, str]) -> str:
        with self._lock:
            self._maybe_fail("create")
            if name in self.names.values():
                raise RuntimeError(f"secret {name} exists")
            arn = f"{self._prefix}{name}-{uuid.uuid4().hex[:6]}"
            version = uuid.uuid4().hex
            self.names[arn] = name
            self.versions[arn] = [(version, value.secret_value())]
            self.current[arn] = version
            self.tags[arn] = dict(tags)
            return arn

    def put(self, arn: str, value: Credentials) -> SecretWrite:
        with self._lock:
            self._maybe_fail("put")
            previous = self.current[arn]
            version = uuid.uuid4().hex
            self.versions[arn].append((version, value.secret_value()))
            self.current[arn] = version
            return SecretWrite(arn=arn, version_id=version, previous_version_id=previous)

    def revert(self, write: SecretWrite) -> None:
        with self._lock:
            self._maybe_fail("revert")
            if write.previous_version_id is not None:
                self.current[write.arn] = write.previous_version_id

    def delete(self, arn: str) -> None:
        with self._lock:
            self._maybe_fail("delete")
            self.names.pop(arn, None)
            self.versions.pop(arn, None)
            self.current.pop(arn, None)
            self.deleted.append(arn)

    # --- for tests ---------------------------------------------------------------------------
    def value(self, arn: str) -> dict[str, str | None]:
        """The current value of a secret."""
        version = self.current[arn]
        return next(v for vid, v in self.versions[arn] if vid == version)

    def all_values(self) -> list[str]:
        """Every secret string ever written (to search for leaks)."""
        return [
            str(s)
            for versions in self.versions.values()
            for _, value in versions
            for k, s in value.items()
            if s and k != "username"
        ]
