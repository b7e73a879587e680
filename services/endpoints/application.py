"""The endpoints application: register, update, disable, enable, validate, retire, and record
validation results.

Names are unique per customer through a claim stream per name (``domain.EndpointName``) saved
in the same atomic append as the endpoint's event. S3 endpoints get a Ferry-generated
``external_id`` (random per endpoint, ``ferry-`` + 32 hex digits: unguessable, never reused, the
same for the endpoint's whole life); Ferry's own buckets are refused (422 ``bucket``). Retiring
is refused while jobs that are not final or enabled routes use the endpoint (an
:class:`EndpointUsage` port over the read models).

Credentials go to a :class:`SecretStore` (Secrets Manager in production) *before* the events are
appended; when the append fails the secret write is undone (a new secret is deleted, a rotated
one reverted), so no orphaned or mismatched secret is left behind.

Why one module over 400 lines: the commands and the two ports they order around each event
append (``SecretStore``: written before, undone on failure; ``EndpointUsage``: checked before
retiring); the name claim shares that append.
"""

from __future__ import annotations

import json
import secrets as _secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID, uuid4

from aws_lambda_powertools import Logger
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from events.aggregate import FerryApplication
from events.contract import EndpointCheckCompleted, EndpointConfig, EndpointType
from ferry.errors import Conflict, Invalid
from ferry.names import ResourceNames
from services.endpoints.domain import (
    Endpoint,
    EndpointError,
    EndpointInUse,
    EndpointName,
    EndpointNameTaken,
    EndpointNotFound,
    InvalidChange,
    name_claim_id,
)

__all__ = [
    "BucketReserved",
    "ConcurrentModification",
    "Credentials",
    "EndpointUsage",
    "EndpointsApplication",
    "Registration",
    "SecretStore",
    "SecretWrite",
]

logger = Logger(service="ferry-endpoints")

S3_CONFIG = frozenset({"bucket", "prefix", "region", "kms_key_id", "role_arn"})
SFTP_CONFIG = frozenset({"host", "port", "username", "base_path", "host_key", "auth_method"})


class ConcurrentModification(EndpointError, Conflict):
    """Another writer appended to the endpoint's stream first (→ 409; retry)."""

    code = "conflict"


class BucketReserved(EndpointError, Invalid):
    """The bucket is one of Ferry's own (staging, anything the stack owns) (→ 422 ``bucket``)."""

    code = "bucket_reserved"


def new_external_id() -> str:
    """A fresh external id: random per endpoint (128 bits), so no other endpoint — of this or
    any customer — can present it in an AssumeRole call."""
    return "ferry-" + _secrets.token_hex(16)


class EndpointUsage(ABC):
    """What uses an endpoint (read from the read models: may lag the commands by the
    projection delay, typically < 1 s)."""

    @abstractmethod
    def users(self, customer_id: str, endpoint_id: str) -> list[str]:
        """Descriptions of the jobs that are not final and the enabled routes that name the
        endpoint (empty: it may be retired)."""


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
    bandwidth_limit: int | None = None


class EndpointsApplication(FerryApplication):
    """Commands on Endpoint streams. ``get`` / ``record_validation`` serve the validator."""

    def __init__(
        self,
        *,
        secrets: SecretStore,
        secret_name: Callable[[str, str], str] | None = None,
        env: Mapping[str, str] | None = None,
        new_id: Callable[[], UUID] = uuid4,
        is_reserved_bucket: Callable[[str], bool] | None = None,
        usage: EndpointUsage | None = None,
        external_id: Callable[[], str] = new_external_id,
    ) -> None:
        super().__init__(env=env)
        self.secrets = secrets
        self.secret_name = secret_name or ResourceNames().endpoint_secret_name
        self.new_id = new_id
        if is_reserved_bucket is None:
            from services.endpoints.settings import TenancySettings

            is_reserved_bucket = TenancySettings().is_reserved
        self.is_reserved_bucket = is_reserved_bucket
        self.usage = usage
        self.new_external_id = external_id

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
        if config.type is EndpointType.S3:
            self._check_bucket(config.bucket)
            config = config.model_copy(update={"external_id": self.new_external_id()})
        claim = self._claim_name(customer_id, registration.name, str(endpoint_id))
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
            bandwidth_limit=registration.bandwidth_limit,
            config=config,
            secret_arn=secret_arn,
            actor=actor,
        )
        try:
            self._save(endpoint, claim, name=registration.name)
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
        endpoint.check_not_retired()
        if "external_id" in updates:
            raise InvalidChange(
                "external_id is generated by Ferry and cannot be changed", field="external_id"
            )
        if endpoint.type is EndpointType.S3 and updates.get("bucket") is not None:
            self._check_bucket(str(updates["bucket"]))
        claims: list[EndpointName] = []
        if "name" in updates and updates["name"] != endpoint.name:
            new_claim = self._claim_name(customer_id, str(updates["name"]), str(endpoint.id))
            if new_claim is not None:
                claims.append(new_claim)
            same_claim = name_claim_id(customer_id, str(updates["name"])) == name_claim_id(
                customer_id, endpoint.name
            )
            old_claim = None if same_claim else self._name_claim(customer_id, endpoint.name)
            if old_claim is not None and old_claim.release(str(endpoint.id)):
                claims.append(old_claim)
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
            self._save(endpoint, *claims, name=str(updates.get("name") or endpoint.name))
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

    def request_validation(
        self, *, customer_id: str, endpoint_id: str | UUID, actor: str
    ) -> Endpoint:
        """Re-run validation (the validator consumes EndpointValidationRequested)."""
        endpoint = self.get_for_customer(customer_id, endpoint_id)
        endpoint.request_validation(actor=actor)
        self._save(endpoint)
        logger.info("endpoint validation requested", extra={"endpoint_id": str(endpoint.id)})
        return endpoint

    def retire(self, *, customer_id: str, endpoint_id: str | UUID, actor: str) -> Endpoint:
        """Final: refused (409 ``endpoint_in_use``) while jobs that are not final or enabled
        routes name the endpoint; releases its name; its secret is deleted."""
        endpoint = self.get_for_customer(customer_id, endpoint_id)
        if endpoint.retired:
            return endpoint
        if self.usage is not None:
            users = self.usage.users(customer_id, str(endpoint.id))
            if users:
                shown = ", ".join(users[:5]) + (
                    f" (and {len(users) - 5} more)" if len(users) > 5 else ""
                )
                raise EndpointInUse(
                    f"endpoint {endpoint.id} is in use: {shown}", field="endpoint_id"
                )
        endpoint.retire(actor=actor)
        claim = self._name_claim(customer_id, endpoint.name)
        released = [claim] if claim is not None and claim.release(str(endpoint.id)) else []
        self._save(endpoint, *released)
        if endpoint.secret_arn:
            arn = endpoint.secret_arn
            self._undo(lambda: self.secrets.delete(arn), endpoint.id)
        logger.info("endpoint retired", extra={"endpoint_id": str(endpoint.id)})
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
        customer_id: str | None = None,
        attempts: int = 3,
    ) -> bool:
        """Record the validator's verdict on the endpoint as it was at ``checked_version``.

        Returns True when an event was recorded; False for a stale result (the configuration
        changed since) or a duplicate (a result for this configuration is already recorded).
        A concurrent append is retried (the verdict may become stale meanwhile). With
        ``customer_id``, another customer's endpoint is not found."""
        for attempt in range(attempts):
            endpoint = (
                self.get(endpoint_id)
                if customer_id is None
                else self.get_for_customer(customer_id, endpoint_id)
            )
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

    def record_check(self, check: EndpointCheckCompleted) -> bool:
        """Apply the validator's published verdict (``services/endpoints/consumer.py``).
        False when it is dropped: stale, a duplicate, or for an endpoint that does not exist
        (for this customer) or never had ``checked_version``."""
        try:
            return self.record_validation(
                check.endpoint_id,
                check.checked_version,
                check.ok,
                checks=check.checks,
                host_key_fingerprint=check.host_key_fingerprint,
                reason_code=check.reason_code,
                message=check.message,
                customer_id=check.customer_id,
            )
        except (EndpointNotFound, InvalidChange):
            return False

    # --- helpers ---------------------------------------------------------------------------
    def _check_bucket(self, bucket: str | None) -> None:
        if bucket and self.is_reserved_bucket(bucket):
            raise BucketReserved(
                f"bucket {bucket} belongs to Ferry and cannot be used by an endpoint",
                field="bucket",
            )

    def _name_claim(self, customer_id: str, name: str) -> EndpointName | None:
        try:
            found: object = self.repository.get(name_claim_id(customer_id, name))
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, EndpointName) else None

    def _claim_name(self, customer_id: str, name: str, endpoint_id: str) -> EndpointName | None:
        """The claim to save with the endpoint (None: this endpoint already holds it).
        Raises :class:`EndpointNameTaken` when another endpoint holds it."""
        claim = self._name_claim(customer_id, name)
        if claim is None:
            return EndpointName.first_claim(
                customer_id=customer_id, name=name, endpoint_id=endpoint_id
            )
        return claim if claim.claim(endpoint_id, name) else None

    def _save(self, endpoint: Endpoint, *claims: EndpointName | None, name: str = "") -> None:
        try:
            self.save(endpoint, *[c for c in claims if c is not None])
        except IntegrityError:
            for claim in claims:
                if claim is None:
                    continue
                current = self._name_claim(endpoint.customer_id, name)
                if current is not None and current.holder not in (None, str(endpoint.id)):
                    raise EndpointNameTaken(
                        f"an endpoint named {name!r} exists; names are unique per customer",
                        field="name",
                    ) from None
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
