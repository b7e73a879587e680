"""The projection consumer: SQS batches of EventBridge events → read models (partial failures).

The whole batch is projected at once (``Projector.handle_batch``): records are grouped by target
read-model item, and each item is read once and written once (one conditional write) whatever
the number of its events in the batch. The response is built here rather than by Powertools'
``BatchProcessor`` (which handles records one by one): ``batchItemFailures`` lists exactly the
unreadable records and the records of the item groups that failed, in delivery order. A batch
whose every record fails is reported the same way (all listed), which SQS treats like an error.
Correctness does not depend on the batch size: a record's event is applied once, in stream
order, whichever batch (or retry) it arrives in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes import SQSEvent

from events.translate import from_eventbridge
from ferry.coldstart import per_cold_start
from services.projections.application import BatchOutcome, Delivery
from services.projections.bootstrap import ProjectionsContext, bootstrap

logger = Logger(service="ferry-projections")
tracer = Tracer(service="ferry-projections")  # X-Ray in Lambda; disabled elsewhere

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def make_handler(projections: ProjectionsContext) -> Handler:
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        records = list(SQSEvent(event).records)
        failed: set[str] = set()
        deliveries: list[Delivery] = []
        for record in records:
            try:
                deliveries.append(Delivery(record.message_id, from_eventbridge(record.body)))
            except Exception:  # a poison record fails alone
                logger.exception("unreadable record", message_id=record.message_id)
                failed.add(record.message_id)
        outcome = projections.projector.handle_batch(deliveries)
        _log(outcome)
        failed.update(outcome.failed)
        return {
            "batchItemFailures": [
                {"itemIdentifier": r.message_id} for r in records if r.message_id in failed
            ]
        }

    return handle


def _log(outcome: BatchOutcome) -> None:
    for error in outcome.read_errors:
        logger.warning("batch read failed, reading item by item", error=error)
    for item in outcome.items:
        if item.error is not None:
            logger.warning(
                "projection failed",
                kind=item.kind,
                key=item.key,
                records=item.record_ids,
                error=f"{type(item.error).__name__}: {item.error}",
            )
        else:
            logger.debug(
                "projected",
                kind=item.kind,
                key=item.key,
                records=len(item.record_ids),
                applied=item.applied,
                caught_up=item.caught_up,
                duplicates=item.duplicates,
                conflicts=item.conflicts,
            )


#: Lambda entry point (SQS event source with ReportBatchItemFailures), built on the cold start
handler = tracer.capture_lambda_handler(per_cold_start(lambda: make_handler(bootstrap())))
