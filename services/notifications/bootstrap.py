"""Build the notifications service (once per cold start / process start): adapters in, the
application (HTTP) or the notifier (SQS) out; whatever is not given is built from the settings.

Entry points import this module, never the reverse: ``handlers.py`` (HTTP) and ``consumer.py``
(the two SQS handlers)."""

from __future__ import annotations

from dataclasses import dataclass

from ferry.api import ApiKeyStore, DynamoKeyStore
from services.notifications.application import (
    DeliveryQueue,
    NotificationsApplication,
    SigningSecrets,
    SubscriptionStore,
)
from services.notifications.notifier import Notifier
from services.notifications.ports import EmailSender, JobLookup, WebhookSender
from services.notifications.settings import NotificationsSettings


@dataclass(frozen=True)
class NotificationsContext:
    app: NotificationsApplication
    keys: ApiKeyStore
    settings: NotificationsSettings


def _store(settings: NotificationsSettings, store: SubscriptionStore | None) -> SubscriptionStore:
    if store is not None:
        return store
    from services.notifications.adapters import DynamoSubscriptionStore

    return DynamoSubscriptionStore(settings.subscriptions)


def _secrets(settings: NotificationsSettings, secrets: SigningSecrets | None) -> SigningSecrets:
    if secrets is not None:
        return secrets
    from ferry.names import deployment_region
    from services.notifications.adapters import SecretsManagerSigningSecrets

    return SecretsManagerSigningSecrets(
        kms_key_id=settings.secrets_kms_key_id,
        replica_regions=settings.replicas(deployment_region()),
        replica_kms_key_id=settings.secrets_replica_kms_key_id,
    )


def _queue(settings: NotificationsSettings, queue: DeliveryQueue | None) -> DeliveryQueue:
    if queue is not None:
        return queue
    from services.notifications.adapters import SqsDeliveryQueue

    return SqsDeliveryQueue(settings.deliver_queue_url or "")  # empty: refuses to send


def _egress(settings: NotificationsSettings):  # type: ignore[no-untyped-def]
    from services.executor.egress import EgressPolicy

    return EgressPolicy.from_allow_list(settings.egress_allow)


def bootstrap(
    *,
    settings: NotificationsSettings | None = None,
    store: SubscriptionStore | None = None,
    secrets: SigningSecrets | None = None,
    queue: DeliveryQueue | None = None,
    keys: ApiKeyStore | None = None,
) -> NotificationsContext:
    """The HTTP side: the subscriptions application and the API keys."""
    settings = settings or NotificationsSettings()
    app = NotificationsApplication(
        _store(settings, store),
        _secrets(settings, secrets),
        _queue(settings, queue),
        secret_name=settings.secret_name,
        egress_allowed=_egress(settings).allowed,
        allow_http=settings.allow_http,
    )
    return NotificationsContext(
        app=app, keys=keys or DynamoKeyStore(settings.keys), settings=settings
    )


def build_notifier(
    *,
    settings: NotificationsSettings | None = None,
    store: SubscriptionStore | None = None,
    secrets: SigningSecrets | None = None,
    queue: DeliveryQueue | None = None,
    webhooks: WebhookSender | None = None,
    email: EmailSender | None = None,
    jobs: JobLookup | None = None,
) -> Notifier:
    """The SQS side: fan-out and delivery."""
    settings = settings or NotificationsSettings()
    if webhooks is None:
        from services.notifications.webhook import HttpWebhookSender

        webhooks = HttpWebhookSender(
            _egress(settings),
            allow_http=settings.allow_http,
            timeout=settings.webhook_timeout_seconds,
        )
    if email is None:
        if settings.smtp_host:
            from services.notifications.email import SmtpEmailSender

            email = SmtpEmailSender(settings.smtp_host, settings.smtp_port, settings.email_from)
        else:
            from services.notifications.adapters import SesEmailSender

            email = SesEmailSender(
                settings.email_from, configuration_set=settings.ses_configuration_set
            )
    if jobs is None:
        from services.notifications.adapters import DynamoJobLookup

        jobs = DynamoJobLookup(settings.jobs)
    return Notifier(
        _store(settings, store),
        _secrets(settings, secrets),
        _queue(settings, queue),
        webhooks,
        email,
        jobs,
        retry_base_seconds=settings.retry_base_seconds,
    )
