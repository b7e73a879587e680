"""The notifier's two SQS entry points (Lambda, ReportBatchItemFailures), both built here:

- ``handler`` (this module) on the notifications queue (the bus rule's target): one EventBridge
  event → one delivery message per matching subscription;
- ``services.notifications.deliver:handler`` on the delivery queue: one attempt per message. A batch's messages are
  attempted concurrently (each with its own timeout), so one slow receiver does not hold up the
  others of its batch beyond its timeout.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ferry.coldstart import once
from services.notifications.notifier import Notifier

logger = Logger(service="ferry-notifications")
tracer = Tracer(service="ferry-notifications")

_notifier = once(lambda: _build())


def _build() -> Notifier:
    from services.notifications.bootstrap import build_notifier

    return build_notifier()


def make_fanout(notifier: Notifier) -> Any:
    processor = BatchProcessor(event_type=EventType.SQS)

    def record_handler(record: SQSRecord) -> int:
        event = json.loads(record.body)
        queued = notifier.fan_out(event)
        if queued:
            logger.info(
                "queued deliveries",
                detail_type=event.get("detail-type"),
                event_id=(event.get("detail") or {}).get("event_id"),
                deliveries=queued,
            )
        return queued

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return dict(
            process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        )

    return handle


def make_deliver(notifier: Notifier) -> Any:
    def one(record: dict[str, Any]) -> dict[str, str] | None:
        try:
            message = json.loads(record["body"])
            outcome = notifier.deliver(message)
            logger.info(
                "delivery",
                subscription_id=message.get("subscription_id"),
                key=message.get("key"),
                attempt=message.get("attempt"),
                outcome=outcome,
            )
            return None
        except Exception:
            logger.exception("delivery failed; the message is retried")
            return {"itemIdentifier": record["messageId"]}

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        records = event.get("Records") or []
        with ThreadPoolExecutor(max_workers=max(1, min(10, len(records)))) as pool:
            results = list(pool.map(one, records))
        return {"batchItemFailures": [r for r in results if r]}

    return handle


_fanout = once(lambda: make_fanout(_notifier()))
_deliver = once(lambda: make_deliver(_notifier()))


@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point of the fan-out: ``services/notifications/consumer.py:handler``."""
    result: dict[str, Any] = _fanout()(event, context)
    return result


@tracer.capture_lambda_handler
def deliver_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result: dict[str, Any] = _deliver()(event, context)
    return result
