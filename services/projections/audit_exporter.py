"""The audit exporter: an SQS-triggered function (the local stack polls its queue with
``ferry.local.sqs_poller``) that runs each queued export of POST /audit/exports
(``AuditExports.run``: ``export_period`` into ``exports/<customer>/<export_id>/`` of the audit
bucket). The export runs here, not in the API request: a long period takes longer than API
Gateway's 29 s. A message whose export failed transiently is reported in
``batchItemFailures`` and comes back (at most ``MAX_ATTEMPTS`` runs, then FAILED)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import SQSEvent

from ferry.coldstart import per_cold_start
from services.projections.audit import CustomerIndex
from services.projections.audit_exports import AuditExports
from services.projections.audit_exports_bootstrap import AuditExportsSettings, build_audit_exports

logger = Logger(service="ferry-audit-exporter")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def make_handler(exports: AuditExports, index: CustomerIndex) -> Handler:
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failed: list[dict[str, str]] = []
        for record in SQSEvent(event).records:
            try:
                body = json.loads(record.body)
                customer_id, export_id = str(body["customer_id"]), str(body["export_id"])
            except (ValueError, KeyError, TypeError):
                logger.error("unreadable message dropped", message_id=record.message_id)
                continue
            attempt = int(record.attributes.approximate_receive_count or 1)
            try:
                status = exports.run(customer_id, export_id, index, attempt=attempt)
            except Exception:
                logger.exception("export failed; retried", export_id=export_id, attempt=attempt)
                failed.append({"itemIdentifier": record.message_id})
                continue
            logger.info("export run", export_id=export_id, customer_id=customer_id, status=status)
        return {"batchItemFailures": failed}

    return handle


def build() -> Handler:
    import boto3

    from services.projections.audit_adapters import DynamoCustomerIndex

    settings = AuditExportsSettings()
    ddb = boto3.client("dynamodb", region_name=settings.region)
    exports = build_audit_exports(settings=settings, dynamodb_client=ddb, queue=_NoQueue())
    return make_handler(exports, DynamoCustomerIndex(ddb, settings.events_table))


class _NoQueue:
    """The exporter only runs exports; it never queues one."""

    def send(self, customer_id: str, export_id: str) -> None:  # pragma: no cover
        raise RuntimeError("the exporter does not start exports")


#: Lambda entry point (SQS event source with ReportBatchItemFailures), built on the cold start
handler = per_cold_start(build)
