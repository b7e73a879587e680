"""HTTP entry point of the jobs service: POST /transfers, POST /jobs/{id}/cancel, POST /jobs/{id}/redrive.

``handler`` builds the resolver (and the application) once per cold start; tests build one with
their own adapters through :func:`build_resolver`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from pydantic import BaseModel

from ferry import names
from ferry.api import (
    FerryResolver,
    IdPath,
    error_responses,
    json_handler,
    make_resolver,
    principal,
)
from services.jobs.application import IDEMPOTENCY_HEADER, TransferRequest
from services.jobs.bootstrap import JobsService, bootstrap

logger = Logger(service="ferry-jobs")
# EMF on stdout; namespace and the ``service`` dimension are those the alarms use (ferry.names).
metrics = EphemeralMetrics(
    namespace=names.METRICS_NAMESPACE, service=names.APP_METRICS[names.METRIC_JOB_QUEUED]
)


class JobAccepted(BaseModel):
    job_id: str
    status: str


class JobRedriveAccepted(BaseModel):
    job_id: str
    redrive_of: str


M = TypeVar("M", bound=BaseModel)


def _accepted(body: M) -> Response[M]:
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body)


def _responses(model: type[BaseModel]) -> dict[int, Any]:
    return {
        202: {"description": "Accepted", "content": {"application/json": {"model": model}}},
        **error_responses(404, 409, 422, mutating=True),
    }


def build_resolver(service: JobsService) -> FerryResolver:
    app = make_resolver(service.keys, not_found_code="job_not_found")
    jobs = service.app

    @app.post("/transfers", summary="Submit a transfer", responses=_responses(JobAccepted))
    def submit_transfer(body: TransferRequest) -> Response[JobAccepted]:
        caller = principal(app)
        key = app.current_event.headers.get(IDEMPOTENCY_HEADER)
        result = jobs.submit(caller.customer_id, caller.actor, body, key)
        logger.info(
            "transfer submitted", extra={"job_id": result.job_id, "new_job": result.created}
        )
        if result.created:  # an idempotent replay queues nothing new
            metrics.add_metric(name=names.METRIC_JOB_QUEUED, unit=MetricUnit.Count, value=1)
        return _accepted(JobAccepted(job_id=result.job_id, status=result.status.value))

    @app.post("/jobs/<job_id>/cancel", summary="Cancel a job", responses=_responses(JobAccepted))
    def cancel_job(job_id: IdPath) -> Response[JobAccepted]:
        caller = principal(app)
        result = jobs.cancel(caller.customer_id, caller.actor, job_id)
        logger.info("job cancelled", extra={"job_id": job_id})
        metrics.add_metric(name=names.METRIC_JOB_CANCELLED, unit=MetricUnit.Count, value=1)
        return _accepted(JobAccepted(job_id=result.job_id, status=result.status.value))

    @app.post(
        "/jobs/<job_id>/redrive",
        summary="Redrive a FAILED or CANCELLED job as a new job",
        responses=_responses(JobRedriveAccepted),
    )
    def redrive_job(job_id: IdPath) -> Response[JobRedriveAccepted]:
        caller = principal(app)
        result = jobs.redrive(caller.customer_id, caller.actor, job_id)
        logger.info("job redriven", extra={"job_id": result.job_id, "redrive_of": job_id})
        return _accepted(JobRedriveAccepted(job_id=result.job_id, redrive_of=result.redrive_of))

    return app


def make_handler(resolver_factory: Callable[[], FerryResolver]) -> Any:
    """The Lambda handler over a lazily built resolver; flushes this invocation's metrics."""
    return metrics.log_metrics(json_handler(resolver_factory))


handler = make_handler(lambda: build_resolver(bootstrap()))
