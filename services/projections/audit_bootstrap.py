"""Build :class:`services.projections.audit.Audit` from adapters (production defaults inside;
nothing at import): the event store's recorder as the chain store, the customer-and-time index,
the checkpoint bucket."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ferry import names as n
from services.projections.audit import Audit, ChainStore, CheckpointStore, CustomerIndex

_DEFAULTS = n.ResourceNames()


class AuditSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    events_table: str = Field(default=_DEFAULTS.events_table, validation_alias=n.ENV_EVENTS_TABLE)
    audit_bucket: str = Field(default=_DEFAULTS.audit_bucket, validation_alias=n.ENV_AUDIT_BUCKET)
    region: str | None = Field(
        default=None, validation_alias=AliasChoices(n.ENV_REGION, "AWS_REGION")
    )


def build_audit(
    *,
    settings: AuditSettings | None = None,
    chain: ChainStore | None = None,
    index: CustomerIndex | None = None,
    checkpoints: CheckpointStore | None = None,
    dynamodb_client: Any = None,
    s3_client: Any = None,
) -> Audit:
    settings = settings or AuditSettings()
    if chain is None or index is None:
        import boto3

        from events.dynamodb import DynamoDBAggregateRecorder
        from services.projections.audit_adapters import DynamoCustomerIndex

        client = dynamodb_client or boto3.client("dynamodb", region_name=settings.region)
        chain = chain or DynamoDBAggregateRecorder(client, settings.events_table)
        index = index or DynamoCustomerIndex(client, settings.events_table)
    if checkpoints is None:
        import boto3

        from services.projections.audit_adapters import S3CheckpointStore

        s3 = s3_client or boto3.client("s3", region_name=settings.region)
        checkpoints = S3CheckpointStore(s3, settings.audit_bucket)
    return Audit(chain, index, checkpoints)
