"""The query API (GET routes): thin Powertools handlers over ``Queries``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BeforeValidator

from events.as_of import AS_OF_DESCRIPTION, check_as_of
from events.contract import JobStatus
from ferry.api import (
    FerryResolver,
    IdPath,
    json_handler,
    make_resolver,
    principal,
)
from ferry.errors import NotFound
from ferry.validation import UUID_PATTERN
from services.projections.access_log import add_access_routes, build_access_audit
from services.projections.application import EndpointList, EndpointView, JobList, JobView
from services.projections.audit import Audit, EndpointAsOf, JobAsOf, endpoint_as_of, job_as_of
from services.projections.audit_bootstrap import build_audit
from services.projections.audit_exports import AuditExports
from services.projections.audit_exports_bootstrap import build_audit_exports
from services.projections.audit_exports_routes import add_export_routes
from services.projections.audit_routes import add_audit_routes
from services.projections.bootstrap import ProjectionsContext, bootstrap
from services.projections.stats import HourlyStats, hourly_stats

TITLE = "Ferry API"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_only(value: Any) -> Any:
    """Query times are ISO 8601 text (pydantic alone would also take ``0.5`` as a Unix time)."""
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("an ISO 8601 date-time such as 2026-01-02T03:04:05Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]
AsOf = Annotated[IsoTime | None, Query(description=AS_OF_DESCRIPTION)]


def build_app(
    projections: ProjectionsContext,
    audit_factory: Callable[[], Audit] | None = None,
    access_audit_factory: Callable[[], Audit | None] | None = None,
    exports_factory: Callable[[], AuditExports] | None = None,
) -> FerryResolver:
    app = make_resolver(projections.keys)
    queries = projections.queries
    from ferry.console import register as register_console

    register_console(app)  # GET /, /console, /docs, /swagger: static pages, no key needed

    @app.get("/openapi.json", include_in_schema=False)
    def openapi():  # no return annotation: the schema generator cannot model Response
        # The whole REST API's document: every API function's routes, merged.
        from ferry.openapi import merged_openapi

        return Response(
            status_code=200,
            content_type=content_types.APPLICATION_JSON,
            body=json.dumps(merged_openapi()),
        )

    @app.get("/endpoints", summary="This customer's endpoints, oldest first")
    def list_endpoints(
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        next_token: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> EndpointList:
        return queries.list_endpoints(principal(app).customer_id, limit, next_token)

    @app.get("/endpoints/<endpoint_id>", summary="One endpoint (read model; as_of: as it was then)")
    def get_endpoint(endpoint_id: IdPath, as_of: AsOf = None) -> EndpointView | EndpointAsOf:
        customer = principal(app).customer_id
        if as_of is not None:
            try:
                return endpoint_as_of(queries.recorder, customer, endpoint_id, check_as_of(as_of))
            except NotFound:
                queries.endpoint_events(customer, endpoint_id)  # not theirs: that 404
                raise NotFound("as_of: before the endpoint existed", field="as_of") from None
        return queries.get_endpoint(customer, endpoint_id)

    @app.get("/endpoints/<endpoint_id>/events", summary="The endpoint's event history")
    def endpoint_events(endpoint_id: IdPath) -> dict[str, Any]:
        return {"events": queries.endpoint_events(principal(app).customer_id, endpoint_id)}

    @app.get("/me", summary="The caller: customer, API key id and name, scope")
    def me() -> dict[str, Any]:
        who = principal(app)
        return {
            "customer_id": who.customer_id,
            "key_id": who.key_id,
            "key_name": who.key_name,
            "scope": who.scope,
        }

    @app.get("/stats/hourly", summary="Jobs per hour by status and bytes moved (console overview)")
    def stats_hourly(hours: Annotated[int, Query(ge=1, le=168)] = 24) -> HourlyStats:
        return hourly_stats(queries.store, principal(app).customer_id, hours=hours)

    @app.get("/jobs", summary="This customer's jobs, newest first")
    def list_jobs(
        status: Annotated[JobStatus | None, Query()] = None,
        route_id: Annotated[
            str | None,
            Query(pattern=UUID_PATTERN, max_length=36, description="Only this route's jobs"),
        ] = None,
        endpoint_id: Annotated[
            str | None,
            Query(
                pattern=UUID_PATTERN,
                max_length=36,
                description="Only jobs whose source or target is this endpoint"
                " (not combinable with route_id)",
            ),
        ] = None,
        since: Annotated[IsoTime | None, Query()] = None,
        until: Annotated[IsoTime | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        next_token: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> JobList:
        return queries.list_jobs(
            principal(app).customer_id,
            status=status,
            route_id=route_id,
            endpoint_id=endpoint_id,
            since=since,
            until=until,
            limit=limit,
            next_token=next_token,
        )

    @app.get("/jobs/<job_id>", summary="A job's status and progress (read model; as_of: then)")
    def get_job(job_id: IdPath, as_of: AsOf = None) -> JobView | JobAsOf:
        customer = principal(app).customer_id
        if as_of is not None:
            try:
                return job_as_of(queries.recorder, customer, job_id, check_as_of(as_of))
            except NotFound:
                queries.job_events(customer, job_id)  # not theirs: that 404
                raise NotFound("as_of: before the job existed", field="as_of") from None
        return queries.get_job(customer, job_id)

    @app.get("/jobs/<job_id>/events", summary="The job's full event history (audit trail)")
    def job_events(job_id: IdPath) -> dict[str, Any]:
        return {"events": queries.job_events(principal(app).customer_id, job_id)}

    add_audit_routes(app, audit_factory or build_audit)
    add_access_routes(app, access_audit_factory or build_access_audit)  # GET /audit/access
    add_export_routes(app, exports_factory or build_audit_exports)  # /audit/exports (jobs)
    return app


handler = json_handler(lambda: build_app(bootstrap()))
"""Lambda entry point (API Gateway REST proxy integration)."""
