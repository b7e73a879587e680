"""The endpoints application: register, update, disable, enable, and record validation results.

Credentials go to a :class:`SecretStore` (Secrets Manager in production) *before* the events are
appended; when the append fails the secret write is undone (a new secret is deleted, a rotated
one reverted), so no orphaned or mismatched secret is left behind.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID, uuid4

from aws_lambda_powertools import Logger
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from events.aggregate import FerryApplication
from events.contract import EndpointConfig, EndpointType
from ferry.errors import Conflict
from ferry.names import ResourceNames
from services.endpoints.domain import Endpoint, EndpointError, EndpointNotFound, InvalidChange

__all__ = [
    "ConcurrentModification",
    "Credentials",
    "EndpointsApplication",
    "Registration",
    "SecretStore",
    "SecretWrite",
]

logger = Logger(service="ferry-endpoints")

S3_CONFIG = frozenset({"bucket", "prefix", "region", "kms_key_id"})
SFTP_CONFIG = frozenset({"host", "port", "username", "base_path", "host_key", "auth_method"})


class ConcurrentModification(EndpointError, Conflict):
    """Another writer appended to the endpoint's stream first (→ 409; retry)."""

    code = "conflict"


# --- credentials and the secret store port ---------------------------------------------------
@dataclass(frozen=True)
class Credentials:
    """SFTP credentials as given to the API. ``repr`` never shows the values."""

    username: str
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def auth_method(self) -> str:
        return "private_key" if self.private_key else "password"

    def secret_value(self) -> dict[str, str | None]:
        return {
            "username": self.username,
            "private_key": self.private_key,
            "passphrase": self.passphrase,
            "password": self.password,
        }

    def secret_string(self) -> str:
        return json.dumps(self.secret_value())

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, auth_method={self.auth_method!r})"


@dataclass(frozen=True)
class SecretWrite:
    """A secret value written over an existing one (to undo it)."""

    arn: str
    version_id: str
    previous_version_id: str | None


class SecretStore(ABC):
    """Where endpoint credentials live (Secrets Manager)."""

    @abstractmethod
    def create(self, name: str, value: Credentials, *, tags: Mapping[str, str]) -> str:
        """Create the secret; returns its ARN."""

    @abstractmethod
    def put(self, arn: str, value: Credentials) -> SecretWrite:
        """Write a new current value (rotation)."""

    @abstractmethod
    def revert(self, write: SecretWrite) -> None:
        """Make the value before ``write`` current again."""

    @abstractmethod
    def delete(self, arn: str) -> None:
        """Delete the secret at once (no recovery window)."""


# --- commands ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Registration:
    name: str
    direction: str
    max_concurrency: int
    config: EndpointConfig
    credentials: Credentials | None = None


class EndpointsApplication(FerryApplication):
    """Commands on Endpoint streams. ``get`` / ``record_validation`` serve the validator."""

    def __init__(
        self,
        *,
        secrets: SecretStore,
        secret_name: Callable[[str, str], str] | None = None,
        env: Mapping[str, str] | None = None,
        new_id: Callable[[], UUID] = uuid4,
    ) -> None:
        super().__init__(env=env)
        self.secrets = secrets
        self.secret_name = secret_name or ResourceNames().endpoint_secret_name
        self.new_id = new_id

    # --- queries ---------------------------------------------------------------------------
    def get(self, endpoint_id: str | UUID) -> Endpoint:
        """The aggregate, whoever owns it (for the data plane)."""
        try:
            uid = endpoint_id if isinstance(endpoint_id, UUID) else UUID(str(endpoint_id))
            if not isinstance(endpoint_id, UUID) and str(uid) != endpoint_id:
                raise ValueError("not canonical")  # never look up an upper-case/braced form
        except ValueError:
            raise EndpointNotFound(f"endpoint {endpoint_id} not found") from None
        try:
            found: object = self.repository.get(uid)
        except AggregateNotFoundError:
            raise EndpointNotFound(f"endpoint {endpoint_id} not found") from None
        if not isinstance(found, Endpoint):
            raise EndpointNotFound(f"endpoint {endpoint_id} not found")
        return found

    def get_for_customer(self, customer_id: str, endpoint_id: str | UUID) -> Endpoint:
        """Another customer's endpoint is not found (never forbidden)."""
        endpoint = self.get(endpoint_id)
        if endpoint.customer_id != customer_id:
            raise EndpointNotFound(f"endpoint {endpoint_id} not found")
        return endpoint

    # --- commands --------------------------------------------------------------------------
    def register(self, *, customer_id: str, actor: str, registration: Registration) -> Endpoint:
        endpoint_id = self.new_id()
        config = registration.config
        secret_arn: str | None = None
        if registration.credentials is not None:
            config = config.model_copy(update={"auth_method": registration.credentials.auth_method})
            secret_arn = self.secrets.create(
                self.secret_name(customer_id, str(endpoint_id)),
                registration.credentials,
                tags={"ferry:customer_id": customer_id, "ferry:endpoint_id": str(endpoint_id)},
            )
        endpoint = Endpoint.register(
            endpoint_id=endpoint_id,
            customer_id=customer_id,
            name=registration.name,
            direction=registration.direction,
            max_concurrency=registration.max_concurrency,
            config=config,
            secret_arn=secret_arn,
            actor=actor,
        )
        try:
            self._save(endpoint)
        except BaseException:
            if secret_arn is not None:
                self._undo(lambda: self.secrets.delete(secret_arn), endpoint_id)
            raise
        logger.info(
            "endpoint registered",
            extra={"endpoint_id": str(endpoint_id), "endpoint_type": config.type.value},
        )
        return endpoint

    def update(
        self,
        *,
        customer_id: str,
        endpoint_id: str | UUID,
        actor: str,
        changes: Mapping[str, Any],
        credentials: Credentials | None = None,
    ) -> Endpoint:
        """Change settings (non-secret ``changes``) and/or rotate ``credentials`` (their
        ``username`` is taken from the endpoint's settings)."""
        endpoint = self.get_for_customer(customer_id, endpoint_id)
        allowed = S3_CONFIG if endpoint.type is EndpointType.S3 else SFTP_CONFIG
        other = SFTP_CONFIG if endpoint.type is EndpointType.S3 else S3_CONFIG
        for key in changes:
            if key in other and key not in allowed:
                raise InvalidChange(
                    f"{key}: not a setting of {endpoint.type.value} endpoints", field=key
                )
        updates = dict(changes)
        if credentials is not None:
            if endpoint.type is not EndpointType.SFTP:
                raise InvalidChange(
                    "s3 endpoints take no credentials", field=credentials.auth_method
                )
            updates["auth_method"] = credentials.auth_method
            username = str(updates.get("username") or endpoint.config.get("username") or "")
            credentials = replace(credentials, username=username)
        changed = endpoint.update(
            updates,
            actor=actor,
            credentials_rotated=credentials is not None,
            secret_arn=endpoint.secret_arn,
        )
        if not changed:
            return endpoint
        undo: Callable[[], None] | None = None
        if credentials is not None:
            if endpoint.secret_arn:
                write = self.secrets.put(endpoint.secret_arn, credentials)
                undo = lambda: self.secrets.revert(write)  # noqa: E731
            else:  # pragma: no cover - sftp endpoints are registered with credentials
                arn = self.secrets.create(
                    self.secret_name(customer_id, str(endpoint.id)), credentials, tags={}
                )
                endpoint.secret_arn = arn
                undo = lambda: self.secrets.delete(arn)  # noqa: E731
        try:
            self._save(endpoint)
        except BaseException:
            if undo is not None:
                self._undo(undo, endpoint.id)
            raise
        logger.info(
            "endpoint updated",
            extra={"endpoint_id": str(endpoint.id), "credentials_rotated": credentials is not None},
        )
        return endpoint

    def disable(
        self, *, customer_id: str, endpoint_id: str | UUID, actor: str, reason: str | None = None
    ) -> Endpoint:
        endpoint = self.get_for_customer(customer_id, endpoint_id)
        if endpoint.disable(actor=actor, reason=reason):
            self._save(endpoint)
            logger.info("endpoint disabled", extra={"endpoint_id": str(endpoint.id)})
        return endpoint

    def enable(self, *, customer_id: str, endpoint_id: str | UUID, actor: str) -> Endpoint:
        endpoint = self.get_for_customer(customer_id, endpoint_id)
        if endpoint.enable(actor=actor):
            self._save(endpoint)
            logger.info("endpoint enabled", extra={"endpoint_id": str(endpoint.id)})
        return endpoint

    def record_validation(
        self,
        endpoint_id: str | UUID,
        checked_version: int,
        ok: bool,
        checks: list[str] | None = None,
        host_key_fingerprint: str | None = None,
        reason_code: str | None = None,
        message: str | None = None,
        *,
        attempts: int = 3,
    ) -> bool:
        """Record the validator's verdict on the endpoint as it was at ``checked_version``.

        Returns True when an event was recorded; False for a stale result (the configuration
        changed since) or a duplicate (a result for this configuration is already recorded).
        A concurrent append is retried (the verdict may become stale meanwhile)."""
        for attempt in range(attempts):
            endpoint = self.get(endpoint_id)
            recorded = endpoint.record_validation(
                checked_version=checked_version,
                ok=ok,
                checks=checks,
                host_key_fingerprint=host_key_fingerprint,
                reason_code=reason_code,
                message=message,
            )
            if not recorded:
                return False
            try:
                self._save(endpoint)
                return True
            except ConcurrentModification:
                if attempt == attempts - 1:
                    raise
        return False  # pragma: no cover

    # --- helpers ---------------------------------------------------------------------------
    def _save(self, endpoint: Endpoint) -> None:
        try:
            self.save(endpoint)
        except IntegrityError:
            raise ConcurrentModification(
                "the endpoint was changed concurrently; retry the request"
            ) from None

    @staticmethod
    def _undo(action: Callable[[], None], endpoint_id: UUID) -> None:
        try:
            action()
        except Exception:
            logger.exception(
                "could not undo a secret write after a failed append",
                extra={"endpoint_id": str(endpoint_id)},
            )
