"""The SQS-batch Lambda wiring the routes consumers share: partial batch failures over one
record handler, built lazily once per cold start."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ferry.coldstart import per_cold_start

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def sqs_batch_handler(record_handler: Callable[[SQSRecord], Any]) -> Handler:
    """A handler reporting ``batchItemFailures`` for the records whose handling raised."""
    processor = BatchProcessor(event_type=EventType.SQS)

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return dict(
            process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        )

    return handle


def lazy(build: Callable[[], Handler]) -> Handler:
    """Build the real handler on the first invocation (cold start), then reuse it."""
    return per_cold_start(build)
