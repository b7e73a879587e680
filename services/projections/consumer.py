"""The projection consumer: SQS batches of EventBridge events → read models (partial failures)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from events.translate import from_eventbridge
from services.projections.bootstrap import Projections, bootstrap

logger = Logger(service="ferry-projections")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def make_handler(projections: Projections) -> Handler:
    processor = BatchProcessor(event_type=EventType.SQS)

    def record_handler(record: SQSRecord) -> str:
        event = from_eventbridge(record.body)
        outcome = projections.projector.handle(event)
        logger.debug(
            "projected",
            detail_type=event.detail_type(),
            stream_id=event.stream_id,
            version=event.version,
            correlation_id=event.correlation_id,
            outcome=outcome,
        )
        return outcome

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        return dict(response)

    return handle


_built: dict[str, Handler] = {}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (SQS event source with ReportBatchItemFailures)."""
    if "handler" not in _built:
        _built["handler"] = make_handler(bootstrap())
    return _built["handler"](event, context)
