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
from pydantic import BaseModel, Field

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
from services.jobs.bootstrap import JobsContext, bootstrap

logger = Logger(service="ferry-jobs")
# EMF on stdout; namespace and the ``service`` dimension are those the alarms use (ferry.names).
metrics = EphemeralMetrics(
    namespace=names.METRICS_NAMESPACE, service=names.APP_METRICS[names.METRIC_JOB_QUEUED]
)


class JobAccepted(BaseModel):
    job_id: str
    status: str


class TransferAccepted(JobAccepted):
    deduplicated: bool = Field(
        description=(
            "true: this request repeats one already accepted, and job_id is that job (nothing "
            "new was queued). With an Idempotency-Key: the same key within 24 h. Without one "
            "(unless dedupe is false): the same customer, source, target and options within "
            "the dedupe window (600 s by default), and the same source content — S3 ETag and "
            "VersionId, SFTP size and mtime, looked up at submit time."
        )
    )
    dedupe: str = Field(
        description=(
            "What the match was decided on: idempotency_key; content (request + source "
            "identity); request (the source could not be looked up, so the request alone); "
            "off (dedupe: false)."
        )
    )


class CancelAccepted(JobAccepted):
    cancel_requested: bool = Field(
        description=(
            "A running job keeps its status with cancel_requested true until the executor "
            "stops at its next commit point (CANCELLED), or had already delivered the file "
            "(SUCCEEDED, cancel_outcome too_late). A queued job is CANCELLED at once."
        )
    )


class JobRedriveAccepted(BaseModel):
    job_id: str
    redrive_of: str
    status: str


M = TypeVar("M", bound=BaseModel)


def _accepted(body: M) -> Response[M]:
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body)


def _responses(model: type[BaseModel]) -> dict[int, Any]:
    return {
        202: {"description": "Accepted", "content": {"application/json": {"model": model}}},
        **error_responses(404, 409, 422, mutating=True),
    }


def _submit_limits() -> dict[int, Any]:
    """POST /transfers' 429: the customer's fair-sharing limits (docs/data-plane.md), each a
    stable code, and when to try again."""
    refused = error_responses(429)[429]
    return {
        429: {
            **refused,
            "description": (
                "A limit of the customer's is reached, named in the message: "
                "queued_limit_reached (its jobs waiting to run) or daily_bytes_limit_reached "
                "(bytes its jobs delivered today, UTC). Retry after Retry-After seconds (for "
                "the daily limit: until 00:00 UTC)."
            ),
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait before trying again",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
        }
    }


def build_resolver(service: JobsContext) -> FerryResolver:
    app = make_resolver(service.keys, not_found_code="job_not_found")
    jobs = service.app

    @app.post(
        "/transfers",
        summary="Submit a transfer",
        responses={**_responses(TransferAccepted), **_submit_limits()},
    )
    def submit_transfer(body: TransferRequest) -> Response[TransferAccepted]:
        caller = principal(app)
        key = app.current_event.headers.get(IDEMPOTENCY_HEADER)
        result = jobs.submit(caller.customer_id, caller.actor, body, key)
        logger.info(
            "transfer submitted", extra={"job_id": result.job_id, "new_job": result.created}
        )
        if result.created:  # an idempotent replay queues nothing new
            metrics.add_metric(name=names.METRIC_JOB_QUEUED, unit=MetricUnit.Count, value=1)
        return _accepted(
            TransferAccepted(
                job_id=result.job_id,
                status=result.status.value,
                deduplicated=result.deduplicated,
                dedupe=result.dedupe,
            )
        )

    @app.post("/jobs/<job_id>/cancel", summary="Cancel a job", responses=_responses(CancelAccepted))
    def cancel_job(job_id: IdPath) -> Response[CancelAccepted]:
        caller = principal(app)
        result = jobs.cancel(caller.customer_id, caller.actor, job_id)
        logger.info("job cancel requested", extra={"job_id": job_id, "status": result.status.value})
        if result.status.value == "CANCELLED":  # else the process manager counts it
            metrics.add_metric(name=names.METRIC_JOB_CANCELLED, unit=MetricUnit.Count, value=1)
        return _accepted(
            CancelAccepted(
                job_id=result.job_id,
                status=result.status.value,
                cancel_requested=result.cancel_requested,
            )
        )

    @app.post(
        "/jobs/<job_id>/redrive",
        summary="Redrive a FAILED or CANCELLED job as a new job",
        responses=_responses(JobRedriveAccepted),
    )
    def redrive_job(job_id: IdPath) -> Response[JobRedriveAccepted]:
        caller = principal(app)
        result = jobs.redrive(caller.customer_id, caller.actor, job_id)
        logger.info("job redriven", extra={"job_id": result.job_id, "redrive_of": job_id})
        return _accepted(
            JobRedriveAccepted(
                job_id=result.job_id, redrive_of=result.redrive_of, status=result.status.value
            )
        )

    return app


def make_handler(resolver_factory: Callable[[], FerryResolver]) -> Any:
    """The Lambda handler over a lazily built resolver; flushes this invocation's metrics."""
    return metrics.log_metrics(json_handler(resolver_factory))


handler = make_handler(lambda: build_resolver(bootstrap()))
