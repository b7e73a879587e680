"""The endpoint validator (data plane): EndpointRegistered / EndpointUpdated /
EndpointValidationRequested → a connectivity check → ``EndpointCheckCompleted`` (its verdict,
a contract event), which the endpoints service applies as EndpointValidated (ACTIVE) or
EndpointValidationFailed (reason code) on the endpoint's stream (services/endpoints/consumer.py).

The validator imports nothing of the endpoints service: it reads the endpoint from the
published endpoints read model (strongly consistent GetItem), waiting until the read model has
caught up with the version of the event that asked for the check (projection lag, usually well
under a second; after ``projection_wait_seconds`` the message is retried a little later). It
checks the configuration *as of that version* and publishes the verdict with it
(``checked_version``). The verdict is stored in the event store as the one event of an
``EndpointCheck`` stream keyed by (endpoint, checked_version) and published through the outbox
like every other event: a second check of the same configuration (a redelivered message, two
validators) is skipped, or conflicts in the store and is dropped. The endpoint aggregate drops
a verdict for a configuration that has changed since, and a second verdict for the same one,
so redelivered, duplicated or out-of-order messages are harmless; an endpoint whose current
configuration already has a verdict is not checked again.

Checks — SFTP: connect with the pinned host key, authenticate, stat base_path (it must exist
and be a directory). S3: the client comes from ``endpoint_access.S3Access`` (assumed role with
the endpoint's external id, or — without role_arn — Ferry's own credentials only for a bucket
granted to the customer: else ``ACCESS_DENIED`` before any bucket call), then head_bucket, list
the prefix (one key).
Messages in verdicts never contain a secret (the SFTP adapter's messages carry none, S3 errors
are reduced to their codes).

Over 400 lines because the checks, the verdict's stream and the SQS worker of one data-plane
component belong together (the checks are small functions; the worker is thin).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools import Logger
from eventsourcing.persistence import IntegrityError
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.aggregate import FerryApplication
from events.contract import (
    EndpointCheckCompleted,
    EndpointRegistered,
    EndpointStatus,
    EndpointType,
    EndpointUpdated,
    EndpointValidationRequested,
)
from events.translate import from_eventbridge, stream_events
from ferry import names
from ferry.coldstart import once
from services.executor.domain import EndpointCheck, endpoint_check_id
from services.executor.endpoint_access import EndpointView, S3Access, SecretsReader, open_sftp
from services.executor.errors import TransferError
from services.executor.sftp import fingerprint_of_key_line

__all__ = [
    "EndpointChecks",
    "EndpointReadModel",
    "EndpointValidator",
    "NotProjectedYet",
    "ValidatorSettings",
    "ValidatorWorker",
    "Verdict",
    "handle_message",
]

logger = Logger(service="ferry-validator")


class ValidatorSettings(BaseSettings):
    """``FERRY_VALIDATOR_*`` (queue URL, timeouts) plus the region and the endpoints read-model
    table. The event store is chosen by eventsourcing's own PERSISTENCE_MODULE /
    FERRY_EVENTS_TABLE variables."""

    model_config = SettingsConfigDict(
        env_prefix="FERRY_VALIDATOR_", extra="ignore", populate_by_name=True
    )

    queue_url: str = Field(
        default="", validation_alias=AliasChoices(names.ENV_VALIDATOR_QUEUE_URL, "queue_url")
    )
    endpoints_table: str = Field(
        default="",
        validation_alias=AliasChoices(names.ENV_ENDPOINTS_TABLE, "endpoints_table"),
    )
    region: str | None = Field(
        default=None,
        validation_alias=AliasChoices(names.ENV_DEPLOYMENT_REGION, names.ENV_REGION, "region"),
    )
    sftp_timeout: float = Field(default=15.0, gt=0)
    wait_seconds: int = Field(default=20, ge=0, le=20)
    transient_retries: int = Field(default=1, ge=0, le=5)
    retry_delay_seconds: float = Field(default=1.0, ge=0)
    projection_wait_seconds: float = Field(default=10.0, ge=0)
    not_projected_delay_seconds: int = Field(default=5, ge=0, le=900)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checks: list[str] = field(default_factory=list)
    host_key_fingerprint: str | None = None
    reason_code: str | None = None
    message: str | None = None
    transient: bool = False


class NotProjectedYet(Exception):
    """The endpoints read model has not caught up with the event that asked for the check:
    the message is retried a little later."""


class EndpointReadModel(Protocol):
    """The endpoints read model, one plain item per endpoint (``ferry.endpoint_directory.
    DynamoEndpointDirectory`` in production; strongly consistent)."""

    def item(self, endpoint_id: str) -> Mapping[str, Any] | None: ...


class EndpointChecks(FerryApplication):
    """The validator's verdicts in the event store: one ``EndpointCheck`` stream per checked
    endpoint configuration, published through the outbox as ``EndpointCheckCompleted``."""

    def completed(self, endpoint_id: str, checked_version: int) -> bool:
        stream = endpoint_check_id(endpoint_id, checked_version)
        return bool(self.recorder.select_events(stream, limit=1))

    def record(self, view: EndpointView, verdict: Verdict) -> EndpointCheckCompleted | None:
        """Store the verdict on ``view`` (at its version); None when this configuration's
        verdict is already stored (another validator, or an earlier delivery)."""
        check = EndpointCheck.complete(
            customer_id=view.customer_id,
            endpoint_id=view.endpoint_id,
            checked_version=view.version,
            ok=verdict.ok,
            checks=verdict.checks,
            host_key_fingerprint=verdict.host_key_fingerprint,
            reason_code=verdict.reason_code,
            message=verdict.message,
        )
        try:
            self.save(check)
        except IntegrityError:
            return None
        published = stream_events(self.recorder, check.id)[0]
        assert isinstance(published, EndpointCheckCompleted)
        return published


class EndpointValidator:
    """Checks endpoints (as the read model shows them) and stores verdicts as events."""

    def __init__(
        self,
        endpoints: EndpointReadModel,
        checks: EndpointChecks,
        secrets: SecretsReader,
        *,
        sftp_timeout: float = 15.0,
        s3_client: Callable[[EndpointView], Any] | None = None,
        transient_retries: int = 1,
        retry_delay_seconds: float = 1.0,
        projection_wait_seconds: float = 10.0,
    ) -> None:
        self.endpoints = endpoints
        self.checks = checks
        self.secrets = secrets
        self.sftp_timeout = sftp_timeout
        # validation reads the bucket's grant afresh (no tag cache): a customer who has just
        # tagged the bucket and asked for validation gets the answer for the bucket as it is now
        self.s3_client = s3_client or functools.partial(S3Access().client_for, fresh=True)
        self.transient_retries = transient_retries
        self.retry_delay_seconds = retry_delay_seconds
        self.projection_wait_seconds = projection_wait_seconds

    # --- entry points ----------------------------------------------------------------------
    def handle_message(self, body: str) -> EndpointCheckCompleted | None:
        """One SQS message body (an EventBridge event). Returns when the message is done with
        (a verdict stored, skipped or unusable); raises only for failures worth a redelivery
        (``NotProjectedYet`` among them)."""
        try:
            event = from_eventbridge(body)
        except Exception as exc:
            logger.warning(
                "dropping an unreadable validator message", extra={"error": type(exc).__name__}
            )
            return None
        if not isinstance(
            event, EndpointRegistered | EndpointUpdated | EndpointValidationRequested
        ):
            logger.info("ignoring event", extra={"detail_type": event.detail_type()})
            return None
        if isinstance(event, EndpointRegistered):  # the event holds the whole configuration
            return self.validate_view(_registered_view(event))
        return self.validate(event.endpoint_id, at_least=event.version)

    def validate(self, endpoint_id: str, *, at_least: int = 1) -> EndpointCheckCompleted | None:
        """Check the endpoint's current configuration (the read model at ``at_least`` or
        later) if it has no verdict yet, and store the verdict. Returns the stored verdict
        event, or None when there was nothing to do."""
        item = self._item(endpoint_id, at_least)
        view = EndpointView.from_item(item)
        if view.status is EndpointStatus.RETIRED or item.get("validation") is not None:
            logger.info("endpoint needs no validation", extra={"endpoint_id": endpoint_id})
            return None
        return self.validate_view(view)

    def validate_view(self, view: EndpointView) -> EndpointCheckCompleted | None:
        """Check the configuration ``view`` shows (at ``view.version``) unless a verdict on it
        is stored already, and store the verdict."""
        endpoint_id = view.endpoint_id
        if self.checks.completed(endpoint_id, view.version):
            logger.info(
                "endpoint configuration already checked", extra={"endpoint_id": endpoint_id}
            )
            return None
        verdict = self.check(view)
        for _ in range(self.transient_retries):
            if verdict.ok or not verdict.transient:
                break
            time.sleep(self.retry_delay_seconds)
            verdict = self.check(view)
        stored = self.checks.record(view, verdict)
        logger.info(
            "endpoint validation",
            extra={
                "endpoint_id": endpoint_id,
                "ok": verdict.ok,
                "reason_code": verdict.reason_code,
                "checked_version": view.version,
                "stored": stored is not None,
            },
        )
        return stored

    def _item(self, endpoint_id: str, at_least: int) -> Mapping[str, Any]:
        """The read-model item once it shows version ``at_least`` (polled with a short
        backoff: the projection of that very event is usually a few hundred ms away). The
        event that asked for the check came from the endpoint's stream, so a missing item is
        projection lag too."""
        deadline = time.monotonic() + self.projection_wait_seconds
        delay = 0.02
        while True:
            item = self.endpoints.item(endpoint_id)
            if item is not None and int(item.get("version") or 0) >= at_least:
                return item
            if time.monotonic() >= deadline:
                raise NotProjectedYet(
                    f"endpoint {endpoint_id}: the read model is not at version {at_least} yet"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)

    # --- checks ----------------------------------------------------------------------------
    def check(self, view: EndpointView) -> Verdict:
        try:
            if view.type is EndpointType.SFTP:
                return self._check_sftp(view)
            return self._check_s3(view)
        except TransferError as exc:
            message = exc.message
            if view.type is EndpointType.SFTP:  # a stable code + its fixed message, nothing else
                from services.executor.errors import public_message

                message = public_message(
                    exc.code, host=view.config.host or "", port=view.config.port
                )
            return Verdict(False, reason_code=exc.code, message=message, transient=exc.transient)

    def _check_sftp(self, view: EndpointView) -> Verdict:
        checks: list[str] = []
        base_path = view.config.base_path or "/"
        with open_sftp(view, self.secrets, self.sftp_timeout, fresh_credentials=True) as session:
            checks += ["connect", "host_key", "authenticate"]
            st = session.stat(base_path)
            if st is None:
                return Verdict(
                    False,
                    checks,
                    reason_code="BASE_PATH_MISSING",
                    message=f"{base_path} does not exist",
                )
            if not st.is_dir:
                return Verdict(
                    False,
                    checks,
                    reason_code="BASE_PATH_NOT_A_DIRECTORY",
                    message=f"{base_path} is not a directory",
                )
            checks.append("stat_base_path")
        host_key = view.config.host_key or ""
        fingerprint = (
            host_key
            if host_key.upper().startswith("SHA256:")
            else fingerprint_of_key_line(host_key)
        )
        return Verdict(True, checks, host_key_fingerprint=fingerprint)

    def _check_s3(self, view: EndpointView) -> Verdict:
        bucket = view.config.bucket or ""
        client = self.s3_client(view)
        checks: list[str] = []
        try:
            client.head_bucket(Bucket=bucket)
            checks.append("head_bucket")
            client.list_objects_v2(Bucket=bucket, Prefix=view.config.prefix or "", MaxKeys=1)
            checks.append("list_prefix")
        except Exception as exc:
            code, message, transient = _s3_reason(exc, bucket, "list" if checks else "head")
            return Verdict(False, checks, reason_code=code, message=message, transient=transient)
        return Verdict(True, checks)


def _registered_view(event: EndpointRegistered) -> EndpointView:
    """The endpoint as its first event describes it (version 1): no read model to wait for.
    A verdict on it is dropped by the endpoint if the configuration has changed since."""
    return EndpointView(
        endpoint_id=event.endpoint_id,
        customer_id=event.customer_id,
        name=event.name,
        type=event.config.type,
        status=EndpointStatus.PENDING_VALIDATION,
        direction=event.direction,
        max_concurrency=event.max_concurrency,
        config=event.config,
        secret_arn=event.secret_arn,
        version=event.version,
    )


def _s3_reason(exc: Exception, bucket: str, step: str) -> tuple[str, str, bool]:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return "BUCKET_NOT_FOUND", f"bucket {bucket} does not exist", False
        if code in ("403", "AccessDenied", "Forbidden", "AllAccessDisabled"):
            what = "listing the prefix" if step == "list" else "bucket access"
            return "ACCESS_DENIED", f"{what} denied on bucket {bucket}", False
        if code in ("301", "PermanentRedirect", "AuthorizationHeaderMalformed", "400"):
            return "WRONG_REGION", f"bucket {bucket} is in another region", False
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
            return "REMOTE_ERROR", f"S3 answered {code or status}", True
        return (
            f"S3_{code or status}".upper(),
            f"S3 answered {code or status} for bucket {bucket}",
            False,
        )
    if isinstance(exc, BotoCoreError | OSError):
        return "CONNECTION_FAILED", f"S3 unreachable ({type(exc).__name__})", True
    raise exc


# --- the SQS worker ---------------------------------------------------------------------------
class ValidatorWorker:
    """Long-polls the validator queue; deletes each message once handled."""

    def __init__(
        self,
        validator: EndpointValidator,
        queue_url: str,
        *,
        sqs: Any = None,
        wait_seconds: int = 20,
        max_messages: int = 10,
        not_projected_delay_seconds: int = 5,
    ) -> None:
        if sqs is None:
            import boto3

            sqs = boto3.client("sqs")
        self.validator = validator
        self.queue_url = queue_url
        self.sqs = sqs
        self.wait_seconds = wait_seconds
        self.max_messages = max_messages
        self.not_projected_delay_seconds = not_projected_delay_seconds

    @classmethod
    def from_env(cls) -> ValidatorWorker:
        """The production worker: settings from the environment (FERRY_VALIDATOR_QUEUE_URL,
        PERSISTENCE_MODULE / FERRY_EVENTS_TABLE for the event store, region)."""
        return build_worker()

    def poll_once(self) -> int:
        """Receive one batch and handle it; returns how many messages were handled."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.max_messages,
            WaitTimeSeconds=self.wait_seconds,
        )
        handled = 0
        for message in response.get("Messages", []):
            try:
                self.validator.handle_message(message["Body"])
            except NotProjectedYet as exc:  # again soon, not after the whole visibility timeout
                logger.warning("validator message postponed", extra={"reason": str(exc)})
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.not_projected_delay_seconds,
                )
                continue
            except Exception:
                logger.exception("validator message failed; it will be redelivered")
                continue
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            handled += 1
        return handled

    def run(self, stop_event: threading.Event) -> None:
        logger.info("validator worker started", extra={"queue_url": self.queue_url})
        while not stop_event.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception("validator poll failed")
                stop_event.wait(1.0)
        logger.info("validator worker stopped")


# --- production wiring --------------------------------------------------------------------------
_default_validator = once(lambda: build_validator())


def build_validator(settings: ValidatorSettings | None = None) -> EndpointValidator:
    """Production validator: the endpoints read model (``ferry.endpoint_directory``), the
    verdicts' event store selected by the environment (PERSISTENCE_MODULE), Secrets Manager,
    S3 clients per endpoint."""
    import boto3

    from ferry.endpoint_directory import DynamoEndpointDirectory

    settings = settings or ValidatorSettings()
    if not settings.endpoints_table:
        raise ValueError(f"{names.ENV_ENDPOINTS_TABLE} is not set")
    return EndpointValidator(
        DynamoEndpointDirectory(
            settings.endpoints_table, boto3.client("dynamodb", region_name=settings.region)
        ),
        EndpointChecks(),
        SecretsReader(boto3.client("secretsmanager", region_name=settings.region)),
        sftp_timeout=settings.sftp_timeout,
        transient_retries=settings.transient_retries,
        retry_delay_seconds=settings.retry_delay_seconds,
        projection_wait_seconds=settings.projection_wait_seconds,
    )


def build_worker(
    settings: ValidatorSettings | None = None, validator: EndpointValidator | None = None
) -> ValidatorWorker:
    import boto3

    settings = settings or ValidatorSettings()
    if not settings.queue_url:
        raise ValueError(f"{names.ENV_VALIDATOR_QUEUE_URL} is not set")
    return ValidatorWorker(
        validator or build_validator(settings),
        settings.queue_url,
        sqs=boto3.client("sqs", region_name=settings.region),
        wait_seconds=settings.wait_seconds,
        not_projected_delay_seconds=settings.not_projected_delay_seconds,
    )


def handle_message(body: str) -> EndpointCheckCompleted | None:
    """Module-level entry point with the production validator (built once per process)."""
    return _default_validator().handle_message(body)
