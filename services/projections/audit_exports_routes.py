"""The audit-export routes of the query API (registered by ``services.projections.handlers``):
POST /audit/exports starts an export of the caller's customer as a job (202), GET
/audit/exports/{export_id} its status and presigned file URLs, GET /audit/exports the caller's
exports, newest first. The customer is always the API key's; another customer's id is a 404.
Each call is recorded in the access log by ``ferry.api.FerryResolver`` (a GET, or a POST under
/audit/exports: ``ferry.access_log.audited``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query

from ferry.api import FerryResolver, IdPath, error_responses, principal
from services.projections.audit_exports import (
    IDEMPOTENCY_HEADER,
    AuditExports,
    ExportList,
    ExportRequest,
    ExportView,
)


def add_export_routes(app: FerryResolver, exports_factory: Callable[[], AuditExports]) -> None:
    built: list[AuditExports] = []

    def exports() -> AuditExports:
        if not built:
            built.append(exports_factory())
        return built[0]

    @app.post(
        "/audit/exports",
        summary="Start an export of this customer's events of a period (a job; 202)",
        description=(
            "since < until, at most 366 days apart, ISO 8601 with a zone. With an "
            "Idempotency-Key: the same key and period within 24 h return the same export."
        ),
        responses={
            202: {
                "description": "Accepted",
                "content": {"application/json": {"model": ExportView}},
            },
            **error_responses(422, mutating=True),
        },
    )
    def start_export(body: ExportRequest) -> Response[ExportView]:
        caller = principal(app)
        view = exports().start(
            caller.customer_id,
            body,
            key_id=caller.key_id,
            idempotency_key=app.current_event.headers.get(IDEMPOTENCY_HEADER),
        )
        return Response(
            status_code=202,
            content_type=content_types.APPLICATION_JSON,
            body=view,
        )

    @app.get("/audit/exports", summary="This customer's audit exports, newest first")
    def list_exports(limit: Annotated[int, Query(ge=1, le=100)] = 20) -> ExportList:
        return exports().list(principal(app).customer_id, limit)

    @app.get(
        "/audit/exports/<export_id>",
        summary="An audit export: status, counts, manifest sha256, presigned file URLs (15 min)",
        responses={
            200: {
                "description": "The export",
                "content": {"application/json": {"model": ExportView}},
            },
            **error_responses(404, 422),
        },
    )
    def get_export(export_id: IdPath) -> ExportView:
        return exports().get(principal(app).customer_id, export_id)
