"""The endpoints service's verdict consumer: ``EndpointCheckCompleted`` (the data plane's
validator, SQS batch of EventBridge events from the ``<prefix>-endpoint-checks`` queue) →
EndpointValidated / EndpointValidationFailed on the endpoint's stream.

The endpoint aggregate decides (``Endpoint.record_validation``): a verdict for a configuration
that has changed since it was checked is dropped, and so is a second verdict for the same
configuration, so redelivery and reordering are harmless. A verdict naming an endpoint that does
not exist for its customer is dropped too. Partial batch failures: a record that fails (the event
store unreachable, a conflict that kept losing) is retried by SQS, then reaches the DLQ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from events.contract import EndpointCheckCompleted
from events.translate import from_eventbridge
from ferry.coldstart import once
from services.endpoints.application import EndpointsApplication
from services.endpoints.bootstrap import build_application

logger = Logger(service="ferry-endpoints-checks")
tracer = Tracer(service="ferry-endpoints-checks")  # X-Ray in Lambda; disabled elsewhere

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def make_handler(app_factory: Callable[[], EndpointsApplication]) -> Handler:
    """An SQS batch handler over a lazily built application (once per cold start)."""
    app = once(app_factory)

    def record_handler(record: SQSRecord) -> bool:
        event = from_eventbridge(record.body)
        if not isinstance(event, EndpointCheckCompleted):
            logger.info("ignoring event", extra={"detail_type": event.detail_type()})
            return False
        recorded = app().record_check(event)
        logger.info(
            "endpoint verdict recorded" if recorded else "endpoint verdict dropped",
            extra={
                "endpoint_id": event.endpoint_id,
                "checked_version": event.checked_version,
                "ok": event.ok,
                "reason_code": event.reason_code,
            },
        )
        return recorded

    @tracer.capture_lambda_handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        app()  # built on the cold start, before the batch
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(
            process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        )

    return handler


#: Lambda entry point (SQS event source with ReportBatchItemFailures), built on the cold start
handler = make_handler(lambda: build_application())
