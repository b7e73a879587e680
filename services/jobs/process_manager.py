"""The jobs process manager: executor events (SQS batch of EventBridge events from the
``<prefix>-jobs-pm`` queue) → job commands. Partial batch failures: a record that fails is
retried by SQS (and reaches the DLQ after maxReceiveCount); the others are deleted.

Every command is idempotent (see ``services.jobs.domain``), so redelivery is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from events.contract import (
    FerryEvent,
    JobStatus,
    LeaseAcquired,
    LeaseReleased,
    TransferAttemptFailed,
)
from events.translate import from_eventbridge
from ferry import names
from ferry.coldstart import once
from services.jobs.application import JobsApplication
from services.jobs.bootstrap import bootstrap
from services.jobs.sla import SlowJobChecker, SlowWatch

logger = Logger(service="ferry-jobs-pm")
tracer = Tracer(service="ferry-jobs-pm")  # X-Ray in Lambda; disabled elsewhere
# EMF on stdout; namespace and the ``service`` dimension are those the alarms use (ferry.names).
metrics = EphemeralMetrics(
    namespace=names.METRICS_NAMESPACE, service=names.APP_METRICS[names.METRIC_JOB_STARTED]
)


def recorded_metric(app: JobsApplication, event: FerryEvent) -> str | None:
    """The job event the application just recorded for ``event`` (it returned True), as its
    metric name: LeaseAcquired → JobStarted, a succeeded LeaseReleased → JobSucceeded (a
    cancelled one → JobCancelled),
    TransferAttemptFailed → JobRetryScheduled or JobFailed (the job's status tells which).
    TransferVerified records JobVerified, which is not a metric."""
    if isinstance(event, LeaseAcquired):
        return names.METRIC_JOB_STARTED
    if isinstance(event, LeaseReleased):
        if event.outcome == "cancelled":  # the executor honoured a cancel request
            return names.METRIC_JOB_CANCELLED
        return names.METRIC_JOB_SUCCEEDED
    if isinstance(event, TransferAttemptFailed):
        job: Any = app.repository.get(UUID(event.job_id))
        failed = job.status == JobStatus.FAILED
        return names.METRIC_JOB_FAILED if failed else names.METRIC_JOB_RETRY_SCHEDULED
    return None


def make_handler(
    app_factory: Callable[[], JobsApplication],
    watch_factory: Callable[[], SlowWatch] | None = None,
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """An SQS batch handler over a lazily built application (once per cold start).
    ``watch_factory``: the slow watch a started job with a max_duration goes on (JobSlow)."""
    app = once(app_factory)
    watch = once(watch_factory) if watch_factory is not None else None

    def record_handler(record: SQSRecord) -> bool:
        event = from_eventbridge(record.body)
        changed = app().on_executor_event(event)
        if watch is not None and isinstance(event, LeaseAcquired):
            SlowJobChecker(app(), watch()).started(event.job_id)  # also on a redelivery
        metric = recorded_metric(app(), event) if changed else None
        if metric is not None:
            metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        logger.info(
            "executor event applied" if changed else "executor event: nothing to record",
            extra={
                "job_id": getattr(event, "job_id", None),
                "event_id": event.event_id,
                "detail_type": event.detail_type(),
                "stream_version": event.version,
            },
        )
        return changed

    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        app()  # built on the cold start, before the batch
        # A batch whose every record failed is reported like any other (each listed), rather
        # than raised: SQS retries exactly the listed records either way.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(
            process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        )

    return handler


def _slow_watch() -> SlowWatch:
    from services.jobs.adapters import DynamoSlowWatch
    from services.jobs.settings import JobsSettings

    return DynamoSlowWatch(JobsSettings().idempotency_table)


handler = make_handler(lambda: bootstrap().app, _slow_watch)
