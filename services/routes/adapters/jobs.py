"""Jobs: created and retried through the jobs service's published command API
(``services.jobs.api``; why not a command event is written there)."""

from __future__ import annotations

from typing import Any

from services.routes.application import DispatchRefused
from services.routes.ports import (
    JobSubmitter,
)


class JobsApplicationSubmitter(JobSubmitter):
    """Creates jobs through the jobs service's published command API (``services.jobs.api``:
    ``submit``; JobRequested records the route_id)."""

    def __init__(self, jobs_app: Any) -> None:
        self._jobs = jobs_app

    def submit(
        self,
        customer_id: str,
        actor: str,
        request: dict[str, Any],
        idempotency_key: str,
        route_id: str,
    ) -> str:
        from pydantic import ValidationError

        from services.jobs.api import JobsError, TransferRequest

        try:
            parsed = TransferRequest.model_validate(request)
        except ValidationError as error:
            # this file's request can never be valid (a bad name, a path too long): permanent
            raise DispatchRefused(
                "invalid_request", _validation_text(error), permanent=True
            ) from None
        try:
            result = self._jobs.submit(
                customer_id, actor, parsed, idempotency_key, route_id=route_id
            )
        except JobsError as error:
            raise DispatchRefused(error.code, error.message) from None
        return str(result.job_id)

    def retry(self, customer_id: str, actor: str, job_id: str) -> str:
        from services.jobs.api import JobsError

        try:
            job = self._jobs.get_job(customer_id, job_id)
            for _ in range(20):
                if job.redriven_to is None:
                    break
                job = self._jobs.get_job(customer_id, job.redriven_to)
            if job.status.value not in ("FAILED", "CANCELLED"):
                return str(job.job_id)
            return str(self._jobs.redrive(customer_id, actor, job.job_id).job_id)
        except JobsError as error:
            raise DispatchRefused(error.code, error.message) from None


def _validation_text(error: Any) -> str:
    """``loc: message`` of each pydantic error, without the input values."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in item.get("loc", ()))
        parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
    return "; ".join(parts)[:500]
