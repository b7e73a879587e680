"""Build the endpoints service (once per cold start): adapters in, :class:`EndpointsContext` out.

Entry points (``handlers.py``) import this module, never the reverse."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ferry.api import ApiKeyStore, DynamoKeyStore
from services.endpoints.application import EndpointsApplication, EndpointUsage, SecretStore
from services.endpoints.settings import EndpointsSettings, TenancySettings

__all__ = ["EndpointsContext", "bootstrap", "build_application"]


@dataclass(frozen=True)
class EndpointsContext:
    """What the endpoints entry points need: the application, the API keys, the settings."""

    app: EndpointsApplication
    keys: ApiKeyStore
    settings: EndpointsSettings


def build_application(
    *,
    secrets: SecretStore | None = None,
    env: Mapping[str, str] | None = None,
    settings: EndpointsSettings | None = None,
    usage: EndpointUsage | None = None,
    tenancy: TenancySettings | None = None,
) -> EndpointsApplication:
    """The application alone (the validator uses it): production adapters unless given.

    ``env`` goes to eventsourcing (e.g. ``{"PERSISTENCE_MODULE": "events.dynamodb"}``); without
    it eventsourcing reads the process environment (in-memory when PERSISTENCE_MODULE is unset).
    """
    settings = settings or EndpointsSettings()
    if secrets is None:
        import boto3

        from services.endpoints.adapters import SecretsManagerStore

        client = boto3.client("secretsmanager", region_name=settings.region)
        secrets = SecretsManagerStore(
            client,
            kms_key_id=settings.secrets_kms_key_id,
            replica_regions=settings.replica_regions,
            replica_kms_key_id=settings.secrets_replica_kms_key_id,
        )
    return EndpointsApplication(
        secrets=secrets,
        secret_name=settings.secret_name,
        env=env,
        usage=usage,
        is_reserved_bucket=(tenancy or TenancySettings(prefix=settings.prefix)).is_reserved,
    )


def bootstrap(
    *,
    secrets: SecretStore | None = None,
    keys: ApiKeyStore | None = None,
    env: Mapping[str, str] | None = None,
    settings: EndpointsSettings | None = None,
    usage: EndpointUsage | None = None,
) -> EndpointsContext:
    settings = settings or EndpointsSettings()
    if usage is None:
        import boto3

        from services.endpoints.adapters import ReadModelEndpointUsage

        region = settings.region
        usage = ReadModelEndpointUsage(
            settings.jobs_table,
            settings.routes_table,
            None if region is None else boto3.client("dynamodb", region_name=region),
        )
    app = build_application(secrets=secrets, env=env, settings=settings, usage=usage)
    if keys is None:
        import boto3

        keys = DynamoKeyStore(
            settings.keys_table, client=boto3.client("dynamodb", region_name=settings.region)
        )
    return EndpointsContext(app=app, keys=keys, settings=settings)
