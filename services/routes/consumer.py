"""The routes projection consumer: SQS batches of ferry.routes EventBridge events → the routes
read model (``services/routes/readmodel.py``), with partial batch failures."""

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

from events.translate import from_eventbridge
from services.routes.readmodel import RoutesProjector

logger = Logger(service="ferry-routes-projections")
tracer = Tracer(service="ferry-routes-projections")  # X-Ray in Lambda; disabled elsewhere

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def make_handler(projector: RoutesProjector) -> Handler:
    processor = BatchProcessor(event_type=EventType.SQS)

    def record_handler(record: SQSRecord) -> str:
        event = from_eventbridge(record.body)
        outcome = projector.handle(event)
        logger.debug("projected", detail_type=event.detail_type(), outcome=outcome)
        return outcome

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return dict(
            process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        )

    return handle


_built: dict[str, Handler] = {}


@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (SQS event source, ReportBatchItemFailures)."""
    if "handler" not in _built:
        from services.routes.bootstrap import build_projector

        _built["handler"] = make_handler(build_projector())
    return _built["handler"](event, context)
