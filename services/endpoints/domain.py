"""The Endpoint aggregate: an S3 bucket/prefix or an SFTP server a customer transfers with.

Events (class names == published detail-types, attributes == contract fields minus envelope):
EndpointRegistered, EndpointValidated, EndpointValidationFailed, EndpointUpdated,
EndpointDisabled, EndpointEnabled. No secret is ever held here: credentials live in Secrets
Manager and the aggregate only knows their ARN.

Status
======
``status`` is derived from two independent facts:

- ``validation_status``: PENDING_VALIDATION after registration and after every change of the
  connection settings or credentials; ACTIVE / VALIDATION_FAILED once the validator has
  reported on the *current* configuration;
- ``disabled``: set by disable, cleared by enable.

``status`` is DISABLED while disabled, else ``validation_status``. So enable returns to the last
validation state (or PENDING_VALIDATION when the current configuration was never validated),
and a validation result that arrives while the endpoint is disabled is recorded (the endpoint
is still validated, so enabling it later needs no new validation) without changing ``status``.

Stale validation results
========================
Every change that requires re-validation records its stream version as ``config_version``.
The validator checks the endpoint as loaded at some version ``checked_version`` and reports
with it; a result with ``checked_version < config_version`` was computed for an older
configuration and is ignored (no event). A second result for the same configuration (SQS
redelivery, two validators racing) is ignored too: the first recorded result wins, so the
stream holds at most one validation event per configuration.

Read-model fold (what services/projections must do to mirror ``status``):
Registered → PENDING_VALIDATION; Updated with any config key in ``changed`` or
``credentials_rotated`` → validation PENDING_VALIDATION; Validated → validation ACTIVE;
ValidationFailed → validation VALIDATION_FAILED; status = DISABLED if disabled else the
validation state; Disabled/Enabled toggle ``disabled``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from events.aggregate import FerryAggregate
from events.contract import EndpointConfig, EndpointStatus, EndpointType
from ferry.errors import FerryError, Invalid, NotFound

__all__ = [
    "CONFIG_FIELDS",
    "GENERAL_FIELDS",
    "Endpoint",
    "EndpointError",
    "EndpointNotFound",
    "InvalidChange",
]

#: Settings whose change makes the endpoint PENDING_VALIDATION again (connection settings).
CONFIG_FIELDS: frozenset[str] = frozenset(EndpointConfig.model_fields) - {"type"}
#: Settings that do not affect connectivity.
GENERAL_FIELDS: frozenset[str] = frozenset({"name", "direction", "max_concurrency"})


class EndpointError(FerryError):
    """Base class of the endpoint domain's errors (each also one of ``ferry.errors``' kinds).
    ``field`` names the offending input."""


class EndpointNotFound(EndpointError, NotFound):
    code = "not_found"

    def __init__(self, message: str = "endpoint not found", *, field: str | None = None) -> None:
        super().__init__(message, field=field or "endpoint_id")


class InvalidChange(EndpointError, Invalid):
    code = "validation_error"


class Endpoint(FerryAggregate):
    """One endpoint's event stream (id = endpoint_id, correlation_id = endpoint_id)."""

    class EndpointRegistered(FerryAggregate.Created):
        endpoint_id: str
        name: str
        direction: str
        max_concurrency: int
        config: dict[str, Any]
        secret_arn: str | None
        actor: str

    def __init__(
        self,
        *,
        customer_id: str,
        correlation_id: str,
        endpoint_id: str,
        name: str,
        direction: str,
        max_concurrency: int,
        config: dict[str, Any],
        secret_arn: str | None,
        actor: str,
    ) -> None:
        self.customer_id = customer_id
        self.correlation_id = correlation_id
        self.endpoint_id = endpoint_id
        self.name = name
        self.direction = direction
        self.max_concurrency = max_concurrency
        self.config: dict[str, Any] = dict(config)
        self.secret_arn = secret_arn
        self.validation_status = EndpointStatus.PENDING_VALIDATION
        self.status_reason: str | None = None
        self.disabled = False
        self.config_version = 1
        self.validated_config_version = 0
        self.validated_at: datetime | None = None
        self.host_key_fingerprint: str | None = None
        self.last_actor = actor

    # --- creation ----------------------------------------------------------------------------
    @classmethod
    def register(
        cls,
        *,
        endpoint_id: UUID,
        customer_id: str,
        name: str,
        direction: str,
        max_concurrency: int,
        config: EndpointConfig,
        secret_arn: str | None,
        actor: str,
    ) -> Endpoint:
        return cls._create(
            cls.EndpointRegistered,
            id=endpoint_id,
            customer_id=customer_id,
            correlation_id=str(endpoint_id),
            endpoint_id=str(endpoint_id),
            name=name,
            direction=str(direction),
            max_concurrency=max_concurrency,
            config=_plain_config(config),
            secret_arn=secret_arn,
            actor=actor,
        )

    # --- derived state -----------------------------------------------------------------------
    @property
    def type(self) -> EndpointType:
        return EndpointType(self.config["type"])

    @property
    def status(self) -> EndpointStatus:
        return EndpointStatus.DISABLED if self.disabled else self.validation_status

    @property
    def needs_validation(self) -> bool:
        """No validation result is recorded for the current configuration yet."""
        return self.validated_config_version < self.config_version

    @property
    def endpoint_config(self) -> EndpointConfig:
        return EndpointConfig.model_validate(self.config)

    @property
    def created_at(self) -> datetime:
        return self.created_on

    @property
    def updated_at(self) -> datetime:
        return self.modified_on

    # --- commands ----------------------------------------------------------------------------
    def update(
        self,
        changes: dict[str, Any],
        *,
        actor: str,
        credentials_rotated: bool = False,
        secret_arn: str | None = None,
    ) -> bool:
        """Apply the settings in ``changes`` (new values; secrets never). Returns False (and
        records nothing) when nothing changes."""
        if "type" in changes and str(changes["type"]) != self.config["type"]:
            raise InvalidChange("an endpoint's type cannot change", field="type")
        changed: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "type":
                continue
            if key not in CONFIG_FIELDS and key not in GENERAL_FIELDS:
                raise InvalidChange(f"{key} cannot be changed", field=key)
            current = self.config.get(key) if key in CONFIG_FIELDS else getattr(self, key)
            if value != current:
                changed[key] = value
        if not changed and not credentials_rotated:
            return False
        self.trigger_event(
            self.EndpointUpdated,
            endpoint_id=self.endpoint_id,
            changed=changed,
            credentials_rotated=credentials_rotated,
            secret_arn=secret_arn if secret_arn is not None else self.secret_arn,
            actor=actor,
        )
        return True

    def disable(self, *, actor: str, reason: str | None = None) -> bool:
        """Idempotent: disabling a disabled endpoint records nothing and returns False."""
        if self.disabled:
            return False
        self.trigger_event(
            self.EndpointDisabled, endpoint_id=self.endpoint_id, actor=actor, reason=reason
        )
        return True

    def enable(self, *, actor: str) -> bool:
        """Idempotent: enabling an enabled endpoint records nothing and returns False."""
        if not self.disabled:
            return False
        self.trigger_event(self.EndpointEnabled, endpoint_id=self.endpoint_id, actor=actor)
        return True

    def record_validation(
        self,
        *,
        checked_version: int,
        ok: bool,
        checks: list[str] | None = None,
        host_key_fingerprint: str | None = None,
        reason_code: str | None = None,
        message: str | None = None,
    ) -> bool:
        """Record the validator's verdict on the configuration it saw at ``checked_version``.

        Returns False (recording nothing) for a stale result (the configuration changed after
        ``checked_version``) and for a duplicate (a result for this configuration exists)."""
        if checked_version > self.version or checked_version < 1:
            raise InvalidChange(
                f"checked_version {checked_version} is not a version of this endpoint",
                field="checked_version",
            )
        if checked_version < self.config_version or not self.needs_validation:
            return False
        if ok:
            self.trigger_event(
                self.EndpointValidated,
                endpoint_id=self.endpoint_id,
                checks=list(checks or []),
                host_key_fingerprint=host_key_fingerprint,
            )
        else:
            self.trigger_event(
                self.EndpointValidationFailed,
                endpoint_id=self.endpoint_id,
                reason_code=reason_code or "VALIDATION_FAILED",
                message=message or "validation failed",
            )
        return True

    # --- events ------------------------------------------------------------------------------
    class EndpointUpdated(FerryAggregate.Event):
        endpoint_id: str
        changed: dict[str, Any]
        credentials_rotated: bool
        secret_arn: str | None
        actor: str

        def apply(self, aggregate: Endpoint) -> None:  # type: ignore[override]
            for key, value in self.changed.items():
                if key in CONFIG_FIELDS:
                    if value is None:
                        aggregate.config.pop(key, None)
                    else:
                        aggregate.config[key] = value
                else:
                    setattr(aggregate, key, value)
            if self.secret_arn is not None:
                aggregate.secret_arn = self.secret_arn
            if self.credentials_rotated or CONFIG_FIELDS & set(self.changed):
                aggregate.config_version = self.originator_version
                aggregate.validation_status = EndpointStatus.PENDING_VALIDATION
                aggregate.status_reason = None
            aggregate.last_actor = self.actor

    class EndpointValidated(FerryAggregate.Event):
        endpoint_id: str
        checks: list[str]
        host_key_fingerprint: str | None

        def apply(self, aggregate: Endpoint) -> None:  # type: ignore[override]
            aggregate.validation_status = EndpointStatus.ACTIVE
            aggregate.status_reason = None
            aggregate.validated_config_version = aggregate.config_version
            aggregate.validated_at = self.timestamp
            aggregate.host_key_fingerprint = self.host_key_fingerprint

    class EndpointValidationFailed(FerryAggregate.Event):
        endpoint_id: str
        reason_code: str
        message: str

        def apply(self, aggregate: Endpoint) -> None:  # type: ignore[override]
            aggregate.validation_status = EndpointStatus.VALIDATION_FAILED
            aggregate.status_reason = f"{self.reason_code}: {self.message}"
            aggregate.validated_config_version = aggregate.config_version
            aggregate.validated_at = self.timestamp

    class EndpointDisabled(FerryAggregate.Event):
        endpoint_id: str
        actor: str
        reason: str | None

        def apply(self, aggregate: Endpoint) -> None:  # type: ignore[override]
            aggregate.disabled = True
            aggregate.last_actor = self.actor

    class EndpointEnabled(FerryAggregate.Event):
        endpoint_id: str
        actor: str

        def apply(self, aggregate: Endpoint) -> None:  # type: ignore[override]
            aggregate.disabled = False
            aggregate.last_actor = self.actor


def _plain_config(config: EndpointConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude_none=True)
