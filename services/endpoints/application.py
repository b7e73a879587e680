"""The endpoints application: register, update, disable, enable, validate, retire, and record
validation results.

Names are unique per customer through a claim stream per name (``domain.EndpointName``); the
claim protocol is below. S3 endpoints get a Ferry-generated
``external_id`` (random per endpoint, ``ferry-`` + 32 hex digits: unguessable, never reused, the
same for the endpoint's whole life); Ferry's own buckets are refused (422 ``bucket``). Retiring
is refused while jobs that are not final or enabled routes use the endpoint (an
:class:`EndpointUsage` port over the read models).

Credentials go to a :class:`SecretStore` (Secrets Manager in production) *before* the events are
appended; when the append fails the secret write is undone (a new secret is deleted, a rotated
one reverted), so no orphaned or mismatched secret is left behind.

Name claims without transactions
================================
The event store appends the events of one stream per call (DynamoDB multi-Region strong
consistency has no TransactWriteItems), so a claim and its endpoint's event are ordered
appends, each conditional on its stream's next version:

1. claim: append the claim (holder = this endpoint) — a first claim, a claim of a released
   name, or a take-over of a claim that is not *valid*: its holder is not an endpoint of the
   customer, not retired, whose current name is the claim's (compared as the claim ids
   normalise names, ``name_claim_id``). A claim not valid is taken over only once its newest
   event is ``NAME_CLAIM_GRACE`` old (a registration or rename in flight is younger);
   otherwise, or when it is valid, the name is taken (409 ``name``);
2. the endpoint's event (EndpointRegistered, or EndpointUpdated with the new name);
3. confirm: Reclaimed by the same endpoint, at the claim's next version. A take-over that
   read the endpoint before step 2 appends at that same version, so exactly one of the two
   wins. Lost: the endpoint is compensated with a normal domain event (a registration is
   retired, a rename is reverted) and the request is a 409 ``name``. After the confirmation
   the claim is valid, so no take-over can follow;
4. rename and retire release the old name's claim (best effort: a crash leaves a claim whose
   holder no longer has that name, which the grace period makes takeable).

So a crash between 1 and 2 blocks the name for the grace period at most, and two live
endpoints never hold one name. The grace period is liveness only: correctness comes from
the conditional appends. A rename first confirms the old name's claim again, so the claim
stays fresh (not takeable) while the endpoint has the new name, and a revert can take the
old name back.

Why one module over 400 lines: the commands and the two ports they order around each event
append (``SecretStore``: written before, undone on failure; ``EndpointUsage``: checked before
retiring), and the name claim protocol around those appends.
"""

from __future__ import annotations

import json
import secrets as _secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
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
    CONFIG_FIELDS,
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
    "NAME_CLAIM_GRACE",
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

#: How old a name claim's newest event must be before a claim that is not valid (see the
#: module doc) may be taken over: far longer than a registration or rename takes between
#: its claim and its endpoint event, so one in flight is never taken over.
NAME_CLAIM_GRACE = timedelta(seconds=60)
_CLAIM_ATTEMPTS = 5


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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(env=env)
        self.clock = clock
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
        claim, _ = self._claim(customer_id, registration.name, str(endpoint_id))  # step 1
        secret_arn: str | None = None
        if registration.credentials is not None:
            config = config.model_copy(update={"auth_method": registration.credentials.auth_method})
            try:
                secret_arn = self.secrets.create(
                    self.secret_name(customer_id, str(endpoint_id)),
                    registration.credentials,
                    tags={"ferry:customer_id": customer_id, "ferry:endpoint_id": str(endpoint_id)},
                )
            except BaseException:
                self._release(claim, str(endpoint_id))
                raise
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
            try:
                self._save(endpoint)  # step 2
            except BaseException:
                self._release(claim, str(endpoint_id))
                raise
            if not self._confirm(claim, str(endpoint_id)):  # step 3
                self._compensate(lambda loaded: loaded.retire(actor=actor), endpoint_id)
                raise _name_taken(registration.name)
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
        old_name = endpoint.name
        renamed = "name" in updates and name_claim_id(customer_id, str(updates["name"])) != (
            name_claim_id(customer_id, old_name)
        )
        if renamed:  # a taken name is refused before anything else is checked (or written)
            self._claim(customer_id, str(updates["name"]), str(endpoint.id), write=False)
        if credentials is not None:
            if endpoint.type is not EndpointType.SFTP:
                raise InvalidChange(
                    "s3 endpoints take no credentials", field=credentials.auth_method
                )
            updates["auth_method"] = credentials.auth_method
            username = str(updates.get("username") or endpoint.config.get("username") or "")
            credentials = replace(credentials, username=username)
        before = {key: self._setting(endpoint, key) for key in updates}
        changed = endpoint.update(
            updates,
            actor=actor,
            credentials_rotated=credentials is not None,
            secret_arn=endpoint.secret_arn,
        )
        if not changed:
            return endpoint
        new_claim = old_claim = None
        appended = False  # this request appended new_claim: only then may it release it
        if renamed:  # the old name's claim made fresh, then step 1 on the new name
            old_claim = self._refresh(customer_id, old_name, str(endpoint.id))
            new_claim, appended = self._claim(customer_id, str(updates["name"]), str(endpoint.id))
        undo: Callable[[], None] | None = None
        try:
            try:
                undo = self._write_credentials(endpoint, customer_id, credentials)
                self._save(endpoint)
            except BaseException:
                if new_claim is not None and appended:
                    self._release(new_claim, str(endpoint.id))
                raise
            if new_claim is not None:
                self._renamed(endpoint, new_claim, old_claim, old_name, before, updates, actor)
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
        self._save(endpoint)
        claim = self._name_claim(customer_id, endpoint.name)
        if claim is not None:  # after the retirement: a crash leaves a claim that is not valid
            self._release(claim, str(endpoint.id))
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

    def _write_credentials(
        self, endpoint: Endpoint, customer_id: str, credentials: Credentials | None
    ) -> Callable[[], None] | None:
        """Write rotated credentials (before the endpoint's event); returns their undo."""
        if credentials is None:
            return None
        if endpoint.secret_arn:
            write = self.secrets.put(endpoint.secret_arn, credentials)
            return lambda: self.secrets.revert(write)
        arn = self.secrets.create(  # pragma: no cover - sftp endpoints have credentials
            self.secret_name(customer_id, str(endpoint.id)), credentials, tags={}
        )
        endpoint.secret_arn = arn
        return lambda: self.secrets.delete(arn)

    def _valid(self, claim: EndpointName) -> bool:
        """The claim's holder is an endpoint of the claim's customer, not retired, whose
        current name is the claim's name (as ``name_claim_id`` normalises it)."""
        if claim.holder is None:
            return False
        try:
            holder = self.get(claim.holder)
        except EndpointNotFound:
            return False
        return (
            not holder.retired
            and holder.customer_id == claim.customer_id
            and name_claim_id(holder.customer_id, holder.name) == claim.id
        )

    def _claim(
        self, customer_id: str, name: str, endpoint_id: str, *, write: bool = True
    ) -> tuple[EndpointName, bool]:
        """Step 1: the claim on ``name``, held by ``endpoint_id`` once this returns, and
        whether this call appended it (False: it already was, e.g. by an earlier attempt).
        Raises :class:`EndpointNameTaken` when another endpoint holds it validly, or not
        validly but within the grace period. ``write=False``: only that check."""
        for _ in range(_CLAIM_ATTEMPTS):
            claim = self._name_claim(customer_id, name)
            if claim is None:
                claim = EndpointName.first_claim(
                    customer_id=customer_id, name=name, endpoint_id=endpoint_id
                )
            elif claim.holder == endpoint_id:
                return claim, False  # an earlier attempt of this endpoint: confirmed later
            elif claim.holder is None:
                claim.claim(endpoint_id, name)
            elif self.clock() - claim.modified_on < NAME_CLAIM_GRACE or self._valid(claim):
                raise _name_taken(name)
            else:
                if write:
                    logger.warning(
                        "name claim taken over",
                        extra={"claim_id": str(claim.id), "from": claim.holder, "to": endpoint_id},
                    )
                claim.take_over(endpoint_id)
            if not write:
                return claim, False
            try:
                self.save(claim)
                return claim, True
            except IntegrityError:
                continue  # another claimant appended first: decide again on what it wrote
        raise _name_taken(name)

    def _confirm(self, claim: EndpointName, endpoint_id: str) -> bool:
        """Step 3: Reclaimed by ``endpoint_id`` at the claim's next version. False when a
        take-over holds that version (or the append's outcome is unknown: then the caller
        compensates too)."""
        seen = claim.version
        claim.confirm(endpoint_id)
        try:
            self.save(claim)
            return True
        except IntegrityError:
            pass
        except Exception:
            logger.exception("name claim not confirmed", extra={"claim_id": str(claim.id)})
            return False
        # the version is taken: by a take-over, or by this very append (a store that retried
        # it); only this endpoint ever appends itself as holder at that version
        found: object = self.repository.get(claim.id, version=seen + 1)
        return isinstance(found, EndpointName) and found.holder == endpoint_id

    def _refresh(self, customer_id: str, name: str, endpoint_id: str) -> EndpointName | None:
        """A rename's first step: confirm the old name's claim again (a fresh newest event),
        so it is not takeable while the endpoint has the new name and a revert can take the
        name back. None when the endpoint does not hold it."""
        claim = self._name_claim(customer_id, name)
        if claim is None or claim.holder != endpoint_id:
            return None
        return claim if self._confirm(claim, endpoint_id) else None

    def _release(self, claim: EndpointName, endpoint_id: str) -> None:
        """Release a claim this endpoint holds; never raises (the endpoint event is written):
        a claim left behind is not valid, so it becomes takeable after the grace period."""
        try:
            if claim.release(endpoint_id):
                self.save(claim)
        except Exception:
            logger.warning(
                "name claim not released", extra={"claim_id": str(claim.id)}, exc_info=True
            )

    def _renamed(
        self,
        endpoint: Endpoint,
        new_claim: EndpointName,
        old_claim: EndpointName | None,
        old_name: str,
        before: Mapping[str, Any],
        updates: Mapping[str, Any],
        actor: str,
    ) -> None:
        """Steps 3 and 4 of a rename whose EndpointUpdated is written. Lost the new name:
        the update is reverted (its settings back to ``before`` where nobody changed them
        since) and, once the old name's claim is confirmed again, 409 ``name``."""
        endpoint_id = str(endpoint.id)
        if self._confirm(new_claim, endpoint_id):
            if old_claim is not None:
                self._release(old_claim, endpoint_id)
            return

        def revert(current: Endpoint) -> None:
            undo = {
                key: before[key]
                for key in updates
                if key != "type"
                and before[key] != updates[key]
                and self._setting(current, key) == updates[key]
            }
            current.update(undo, actor=actor)

        self._compensate(revert, endpoint.id)
        if old_claim is not None and self._confirm(old_claim, endpoint_id):
            raise _name_taken(str(updates["name"]))
        # The old name was taken over too (the rename took longer than the grace period):
        # the endpoint gets a name no other endpoint can hold rather than a duplicate.
        fallback = f"{old_name} ({endpoint_id})"
        logger.error("rename lost both names; endpoint renamed", extra={"endpoint_id": endpoint_id})
        claim, _ = self._claim(endpoint.customer_id, fallback, endpoint_id)
        self._compensate(lambda loaded: loaded.update({"name": fallback}, actor=actor), endpoint.id)
        self._confirm(claim, endpoint_id)
        raise _name_taken(str(updates["name"]))

    def _compensate(self, change: Callable[[Endpoint], object], endpoint_id: UUID) -> None:
        """Append a compensating event: ``change`` records it on the endpoint as loaded now;
        loaded and applied again when another writer (the validator) appended first."""
        for attempt in range(_CLAIM_ATTEMPTS):
            endpoint = self.get(endpoint_id)
            change(endpoint)
            try:
                self.save(endpoint)
                return
            except IntegrityError:
                if attempt == _CLAIM_ATTEMPTS - 1:
                    raise

    @staticmethod
    def _setting(endpoint: Endpoint, key: str) -> Any:
        return endpoint.config.get(key) if key in CONFIG_FIELDS else getattr(endpoint, key, None)

    def _save(self, endpoint: Endpoint) -> None:
        """Append the endpoint's pending events (one stream per append)."""
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


def _name_taken(name: str) -> EndpointNameTaken:
    return EndpointNameTaken(
        f"an endpoint named {name!r} exists; names are unique per customer", field="name"
    )
