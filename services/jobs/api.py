"""The jobs service's published command API: the one module of ``services.jobs`` another service
may import (import-linter's ``services-are-independent`` contract names it).

Routes creates jobs through it. Why an in-process API and not a command event: a route's
dispatch needs the job id (and a refusal's code) *at once* — the route's ledger records the job
it dispatched in the same step, exactly once, keyed by the file's idempotency key — and the jobs
application already makes ``submit`` idempotent on that key in the jobs event store. A command
event would need a reply channel (or a second ledger) to learn the job id, for no gain in
isolation: the API below is three calls wide and carries only the contract's request model.

What is exported: :class:`JobCommands` (submit, get, redrive), :class:`TransferRequest` (the
request model), :class:`JobsError` (the base of every refusal, a ``ferry.errors`` kind with a
stable ``code``) and :func:`job_commands` (the jobs application on the given event store).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from services.jobs.application import JobsError, TransferRequest

__all__ = ["JobCommands", "JobsError", "TransferRequest", "job_commands"]


class JobCommands(Protocol):
    """What another service may ask of the jobs service (``JobsApplication`` implements it)."""

    def submit(
        self,
        customer_id: str,
        actor: str,
        request: TransferRequest,
        idempotency_key: str | None = None,
        route_id: str | None = None,
    ) -> Any: ...

    def get_job(self, customer_id: str, job_id: str) -> Any: ...

    def redrive(self, customer_id: str, actor: str, job_id: str) -> Any: ...


def job_commands(env: Mapping[str, str] | None = None) -> JobCommands:
    """The jobs application with its production adapters (``services.jobs.bootstrap``);
    ``env`` selects the event store as in every bootstrap (PERSISTENCE_MODULE etc.)."""
    from services.jobs.bootstrap import bootstrap

    return bootstrap(env=None if env is None else dict(env)).app
