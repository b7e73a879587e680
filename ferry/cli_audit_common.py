"""What the operator's audit commands share (``ferry audit …`` in ferry/cli_audit.py,
ferry/cli_audit_export.py, ferry/cli_audit_access.py, and ``ferry replay``): the consoles, the
option parsers and the stack's clients. Imports none of them (no cycles)."""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from typing import Any

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def cli_error(message: str, field: str | None = None) -> Exception:
    from ferry.cli_common import CliError

    return CliError(message, field=field)


def parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise cli_error(
            f"{option}: an ISO 8601 time such as 2026-03-01T00:00:00Z", option
        ) from None
    if parsed.tzinfo is None:
        raise cli_error(f"{option}: a time zone is required (e.g. Z)", option)
    return parsed


def parse_customer(value: str | None) -> str | None:
    if value is None:
        return None
    from ferry.validation import check_name

    try:
        return check_name(value)
    except ValueError as error:
        raise cli_error(f"--customer: {error}", "--customer") from None


def stack_client(args: argparse.Namespace, service: str) -> Any:
    """A boto3 client for the stack: the local stack's moto server (``AWS_ENDPOINT_URL`` or the
    config's ``aws_endpoint``), else AWS in the configured region."""
    from ferry.cli_common import load_config

    config = load_config(args)
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or config.get("aws_endpoint")
    region = str(config.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    if endpoint:
        from ferry.local import bootstrap

        return bootstrap.aws_client(service, str(endpoint), region)
    import boto3

    client: Any = boto3.client(service, region_name=region)  # type: ignore[call-overload]
    return client


def audit_context(args: argparse.Namespace) -> tuple[Any, Any]:
    """(Audit, keys store) on the stack's resources."""
    from ferry import names as n
    from ferry.api import DynamoKeyStore
    from services.projections.audit_bootstrap import AuditSettings, build_audit

    ddb, s3 = stack_client(args, "dynamodb"), stack_client(args, "s3")
    names = n.ResourceNames()
    settings = AuditSettings()
    audit = build_audit(settings=settings, dynamodb_client=ddb, s3_client=s3)
    keys = DynamoKeyStore(os.environ.get(n.ENV_API_KEYS_TABLE) or names.api_keys_table, client=ddb)
    return audit, keys


def customers_of(audit: Any, keys: Any, only: str | None) -> list[str]:
    if only:
        return [only]
    return sorted(
        {k.principal.customer_id for k in keys.list_keys()} | set(audit.checkpoints.customers())
    )
