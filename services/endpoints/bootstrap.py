"""Build the endpoints application and its HTTP resolver (once per cold start)."""

from __future__ import annotations

from collections.abc import Mapping

from ferry.api import ApiKeyStore, DynamoKeyStore, FerryResolver, make_resolver
from services.endpoints.application import EndpointsApplication, SecretStore
from services.endpoints.settings import EndpointsSettings

__all__ = ["bootstrap", "build_application"]


def build_application(
    *,
    secrets: SecretStore | None = None,
    env: Mapping[str, str] | None = None,
    settings: EndpointsSettings | None = None,
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
        secrets = SecretsManagerStore(client, kms_key_id=settings.secrets_kms_key_id)
    return EndpointsApplication(secrets=secrets, secret_name=settings.secret_name, env=env)


def bootstrap(
    *,
    secrets: SecretStore | None = None,
    keys: ApiKeyStore | None = None,
    env: Mapping[str, str] | None = None,
    settings: EndpointsSettings | None = None,
) -> tuple[EndpointsApplication, FerryResolver]:
    from services.endpoints.handlers import add_routes

    settings = settings or EndpointsSettings()
    app = build_application(secrets=secrets, env=env, settings=settings)
    if keys is None:
        import boto3

        keys = DynamoKeyStore(
            settings.keys_table, client=boto3.client("dynamodb", region_name=settings.region)
        )
    resolver = add_routes(make_resolver(keys), app)
    return app, resolver
