"""Build :class:`services.projections.audit_exports.AuditExports` from adapters (production
defaults inside; nothing at import): the status table, the exporter's queue, the audit bucket."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ferry import names as n
from services.projections.audit_exports import (
    AuditExports,
    ExportFiles,
    ExportQueue,
    ExportStore,
)

_DEFAULTS = n.ResourceNames()


class AuditExportsSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    exports_table: str = Field(
        default=_DEFAULTS.audit_exports_table, validation_alias=n.ENV_AUDIT_EXPORTS_TABLE
    )
    queue_url: str | None = Field(default=None, validation_alias=n.ENV_AUDIT_EXPORTS_QUEUE_URL)
    events_table: str = Field(default=_DEFAULTS.events_table, validation_alias=n.ENV_EVENTS_TABLE)
    audit_bucket: str = Field(default=_DEFAULTS.audit_bucket, validation_alias=n.ENV_AUDIT_BUCKET)
    region: str | None = Field(
        default=None, validation_alias=AliasChoices(n.ENV_REGION, "AWS_REGION")
    )


def build_audit_exports(
    *,
    settings: AuditExportsSettings | None = None,
    store: ExportStore | None = None,
    queue: ExportQueue | None = None,
    files: ExportFiles | None = None,
    dynamodb_client: Any = None,
    s3_client: Any = None,
    sqs_client: Any = None,
) -> AuditExports:
    settings = settings or AuditExportsSettings()
    import boto3
    from botocore.config import Config

    from services.projections.audit_exports_adapters import (
        DynamoExportStore,
        S3ExportFiles,
        SqsExportQueue,
    )

    if store is None:
        ddb = dynamodb_client or boto3.client("dynamodb", region_name=settings.region)
        store = DynamoExportStore(ddb, settings.exports_table)
    if queue is None:
        if not settings.queue_url:
            raise RuntimeError(f"{n.ENV_AUDIT_EXPORTS_QUEUE_URL} is not set")
        sqs = sqs_client or boto3.client("sqs", region_name=settings.region)
        queue = SqsExportQueue(sqs, settings.queue_url)
    if files is None:
        # SigV4 presigned URLs (the bucket is SSE-KMS: SigV2 URLs are refused)
        s3 = s3_client or boto3.client(
            "s3", region_name=settings.region, config=Config(signature_version="s3v4")
        )
        files = S3ExportFiles(s3, settings.audit_bucket)
    return AuditExports(store, queue, files)
