"""Reading and verifying the access log (``ferry.access_log`` writes it): GET /audit/access,
``ferry audit access``, and the access log's part of ``ferry audit verify`` and of the hourly
checkpoints.

The access-log table has the event store's item format, hash chain and customer-and-time index,
so :class:`services.projections.audit.Audit` over it (its recorder, its index, checkpoints under
``access-checkpoints/`` in the audit bucket) verifies and anchors it exactly as it does the
event store: no second scheme. Every listing is scoped to one customer (the index partition),
so a customer's key never sees another customer's entries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeGuard

from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ferry import names as n
from ferry.api import FerryResolver, principal
from ferry.errors import NotFound
from services.projections.audit import (
    Audit,
    CheckpointStore,
    CustomerIndex,
    encode_event_token,
    index_window,
)
from services.projections.audit_routes import IsoTime

ACCESS_CHECKPOINT_PREFIX = "access-checkpoints/"
_DEFAULTS = n.ResourceNames()


class AccessAuditSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    access_log_table: str | None = Field(
        default=None,
        validation_alias=n.ENV_ACCESS_LOG_TABLE,
        description=f"e.g. {_DEFAULTS.access_log_table}; unset: not deployed (no AWS call)",
    )
    audit_bucket: str = Field(default=_DEFAULTS.audit_bucket, validation_alias=n.ENV_AUDIT_BUCKET)
    region: str | None = Field(
        default=None, validation_alias=AliasChoices(n.ENV_REGION, "AWS_REGION")
    )


def build_access_audit(
    *,
    settings: AccessAuditSettings | None = None,
    dynamodb_client: Any = None,
    s3_client: Any = None,
    checkpoints: CheckpointStore | None = None,
) -> Audit | None:
    """:class:`Audit` over the access-log table (chain, index) and its checkpoints; None where
    ``FERRY_ACCESS_LOG_TABLE`` is unset (a deployment without the table: nothing is asked of
    AWS, so nothing can fail or reach anywhere)."""
    import boto3

    from events.dynamodb import DynamoDBAggregateRecorder
    from services.projections.audit_adapters import DynamoCustomerIndex, S3CheckpointStore

    settings = settings or AccessAuditSettings()
    if not settings.access_log_table:
        return None
    ddb = dynamodb_client or boto3.client("dynamodb", region_name=settings.region)
    if checkpoints is None:
        s3 = s3_client or boto3.client("s3", region_name=settings.region)
        checkpoints = S3CheckpointStore(s3, settings.audit_bucket, ACCESS_CHECKPOINT_PREFIX)
    return Audit(
        DynamoDBAggregateRecorder(ddb, settings.access_log_table),
        DynamoCustomerIndex(ddb, settings.access_log_table),
        checkpoints,
    )


def deployed(audit: Audit | None) -> TypeGuard[Audit]:
    """Whether the access-log table is configured and exists (a deployment from before it has
    none: verification and checkpoints then skip the access log instead of failing)."""
    if audit is None:
        return False
    chain: Any = audit.chain
    client, table = getattr(chain, "client", None), getattr(chain, "table_name", None)
    if client is None or table is None:
        return True  # not DynamoDB (tests' fakes)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.describe_table(TableName=table)
    except (ClientError, BotoCoreError):  # not found, not granted, or unreachable
        return False
    return True


class AccessEntry(BaseModel):
    """One recorded call, as listed: the entry and its place in the chain."""

    at: str
    customer_id: str
    key_id: str
    key_name: str = ""
    method: str
    route: str
    resource_ids: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    status: int
    request_id: str = ""
    source_ip: str = ""
    stream_id: str
    version: int
    hash: str = ""
    prev_hash: str = ""


class AccessPage(BaseModel):
    entries: list[AccessEntry]
    next_token: str | None = None
    reads: int = 0


def _entry(item: dict[str, Any]) -> AccessEntry | None:
    try:
        state = json.loads(bytes(item["state"]))
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(state, dict) or state.get("type") != "AccessRecorded":
        return None
    return AccessEntry(
        at=str(state.get("timestamp", "")),
        customer_id=str(state.get("customer_id", "")),
        key_id=str(state.get("key_id", "")),
        key_name=str(state.get("key_name", "")),
        method=str(state.get("method", "")),
        route=str(state.get("route", "")),
        resource_ids={str(k): str(v) for k, v in (state.get("resource_ids") or {}).items()},
        query={str(k): str(v) for k, v in (state.get("query") or {}).items()},
        status=int(state.get("status", 0)),
        request_id=str(state.get("request_id", "")),
        source_ip=str(state.get("source_ip", "")),
        stream_id=str(item["stream_id"]),
        version=int(item["version"]),
        hash=str(item.get("hash", "")),
        prev_hash=str(item.get("prev_hash", "")),
    )


def access_page(
    index: CustomerIndex,
    customer_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    key: str | None = None,
    limit: int = 100,
    next_token: str | None = None,
) -> AccessPage:
    """The customer's recorded calls in [since, until], oldest first, ``limit`` per page;
    ``key`` keeps one API key's (by id or name). Always the one customer's index partition."""
    low, high_key, start = index_window(since, until, next_token)
    entries: list[AccessEntry] = []
    reads = 0
    last: str | None = None
    while len(entries) < limit:
        page = index.page(customer_id, low, high_key, start, limit - len(entries))
        reads += page.reads
        for item in page.items:
            last = str(item["at_key"])
            entry = _entry(item)
            if entry is None or entry.customer_id != customer_id:
                continue
            if key and key not in (entry.key_id, entry.key_name):
                continue
            entries.append(entry)
        if page.last_at_key is None:
            last = None
            break
        start = page.last_at_key
    return AccessPage(
        entries=entries, next_token=encode_event_token(last) if last else None, reads=reads
    )


def add_access_routes(app: FerryResolver, audit_factory: Callable[[], Audit | None]) -> None:
    """GET /audit/access: the caller's customer's own access log (this call included, once it
    answered: it is recorded after the answer)."""
    built: list[Audit] = []

    def audit() -> Audit:
        if not built:
            made = audit_factory()
            if made is None or not deployed(made):  # never a 5xx: no access-log table here
                raise NotFound(
                    "the access log is not deployed here", code="access_log_not_deployed"
                )
            built.append(made)
        return built[0]

    @app.get("/audit/access", summary="Who read this customer's data: the chained access log")
    def audit_access(
        since: Annotated[IsoTime | None, Query()] = None,
        until: Annotated[IsoTime | None, Query()] = None,
        key: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        next_token: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> AccessPage:
        since_at: datetime | None = since
        until_at: datetime | None = until
        return access_page(
            audit().index,
            principal(app).customer_id,
            since=since_at,
            until=until_at,
            key=key,
            limit=limit,
            next_token=next_token,
        )
