"""The periodic ``AuditCheckpoint`` run: one checkpoint per customer with changes since its last.

- AWS: an EventBridge Scheduler schedule (``ResourceNames.audit_checkpoint_schedule``, hourly)
  invokes :func:`handler` (Lambda).
- Locally: ``python -m services.projections.audit_checkpoints`` loops every
  ``FERRY_AUDIT_CHECKPOINT_SECONDS`` (default 3600; moto never fires schedules).

Customers: every customer with an API key, and every customer that already has checkpoints.
"""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools import Logger

from services.projections.audit import Audit

logger = Logger(service="ferry-audit-checkpoint")


def checkpoint_all(audit: Audit, customers: list[str]) -> dict[str, Any]:
    """A checkpoint for each customer that changed; returns {customer: seq or None}."""
    written: dict[str, Any] = {}
    for customer in sorted(set(customers) | set(audit.checkpoints.customers())):
        document = audit.checkpoint(customer)
        written[customer] = document["seq"] if document else None
        if document:
            logger.info(
                "audit checkpoint written",
                customer_id=customer,
                seq=document["seq"],
                streams=len(document["streams"]),
                location=document["location"],
            )
    return written


def _customers() -> list[str]:
    from ferry.api import DynamoKeyStore
    from services.projections.settings import ProjectionsSettings

    settings = ProjectionsSettings()
    return sorted(
        {k.principal.customer_id for k in DynamoKeyStore(settings.api_keys_table).list_keys()}
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (EventBridge Scheduler, hourly)."""
    from services.projections.access_log import build_access_audit, deployed
    from services.projections.audit_bootstrap import build_audit

    customers = _customers()
    written = checkpoint_all(build_audit(), customers)
    access = build_access_audit()  # the access log of reads (issue 11), where deployed
    return {
        "written": written,
        "access_log": checkpoint_all(access, customers) if deployed(access) else None,
    }


def main() -> int:
    from services.projections.access_log import build_access_audit, deployed
    from services.projections.audit_bootstrap import build_audit

    audit, access = build_audit(), build_access_audit()
    seconds = float(os.environ.get("FERRY_AUDIT_CHECKPOINT_SECONDS", "3600"))
    while True:
        try:
            customers = _customers()
            checkpoint_all(audit, customers)
            if deployed(access):  # the access log's heads (access-checkpoints/)
                checkpoint_all(access, customers)
        except Exception:  # the next run retries; the supervisor restarts a crashed loop
            logger.exception("audit checkpoint run failed")
        time.sleep(seconds)


if __name__ == "__main__":
    raise SystemExit(main())
