"""The routes projection consumer: SQS batches of ferry.routes EventBridge events → the routes
read model (``services/routes/readmodel.py``), with partial batch failures."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from events.translate import from_eventbridge
from services.routes._sqs import Handler, lazy, sqs_batch_handler
from services.routes.readmodel import RoutesProjector

logger = Logger(service="ferry-routes-projections")
tracer = Tracer(service="ferry-routes-projections")  # X-Ray in Lambda; disabled elsewhere


def make_handler(projector: RoutesProjector) -> Handler:
    def record_handler(record: SQSRecord) -> str:
        event = from_eventbridge(record.body)
        outcome = projector.handle(event)
        logger.debug("projected", detail_type=event.detail_type(), outcome=outcome)
        return outcome

    return sqs_batch_handler(record_handler)


def _build() -> Handler:
    from services.routes.bootstrap import build_projector

    return make_handler(build_projector())


handler = tracer.capture_lambda_handler(lazy(_build))
"""Lambda entry point (SQS event source, ReportBatchItemFailures)."""
