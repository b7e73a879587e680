"""HTTP routes of the routes service: POST/GET /routes, GET/PATCH /routes/{route_id},
POST /routes/{route_id}/disable|enable, GET /routes/{route_id}/events, GET /routes/{route_id}/files,
POST /routes/{route_id}/files/retry, GET /endpoints/{endpoint_id}/unrouted.

GET /routes/{id} and its events come from the event store (consistent); GET /routes and the file
ledger answer (``?name=``) come from the routes read model.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import WithJsonSchema

from events.as_of import AS_OF_DESCRIPTION, aggregate_as_of, parse_as_of
from events.translate import audit_record
from ferry.api import (
    FerryResolver,
    IdPath,
    json_handler,
    make_resolver,
    principal,
    request_body,
)
from ferry.errors import NotFound
from services.routes.application import RetryFileRequest, RoutesError
from services.routes.bootstrap import RoutesContext
from services.routes.definition import RouteDefinition
from services.routes.domain import Route
from services.routes.readmodel import SLA_SK, file_body, route_body, sla_body

#: Bodies parsed by hand (PATCH is a partial definition), declared for the OpenAPI document.
REQUEST_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/routes"): RouteDefinition,
    ("PATCH", "/routes/{route_id}"): dict[str, Any],
    ("POST", "/routes/{route_id}/files/retry"): RetryFileRequest,
}

#: ``?as_of=``: text, parsed by ``parse_as_of`` (400 naming as_of), documented as a date-time.
AsOf = Annotated[
    str | None,
    Query(description=AS_OF_DESCRIPTION),
    WithJsonSchema({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}),
]
#: GET /routes/{id} answers a route's definition and status; with as_of, also these two.
ROUTE_RESPONSES: dict[int, Any] = {
    200: {
        "description": "The route (with as_of: as it was then, and the version rebuilt at)",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": True,
                    "properties": {
                        "route_id": {"type": "string"},
                        "status": {"type": "string"},
                        "as_of": {
                            "type": "string",
                            "format": "date-time",
                            "description": "Only with ?as_of=: the instant asked for",
                        },
                        "version": {
                            "type": "integer",
                            "description": "Only with ?as_of=: the route's version then",
                        },
                    },
                    "required": ["route_id", "status"],
                }
            }
        },
    }
}


def build_resolver(service: RoutesContext) -> FerryResolver:
    app = make_resolver(service.keys)
    routes, read_model = service.app, service.read_model

    def _with_sla(body: dict[str, Any]) -> dict[str, Any]:
        """A route with an ``expect`` shows its SLA; LATE (until the files arrive) unless it is
        FAILING (a failure is the louder news)."""
        if not body.get("expect"):
            return body
        body["sla"] = sla_body(read_model.get(body["route_id"], SLA_SK))
        if body["sla"]["status"] == "LATE" and body.get("status") != "FAILING":
            body["status"] = "LATE"
        return body

    @app.post("/routes", status_code=201)
    def create_route() -> Response[dict[str, Any]]:
        who = principal(app)
        route = routes.create(who.customer_id, who.actor, request_body(app))
        return _json(201, _view(route))

    @app.get("/routes")
    def list_routes() -> Response[dict[str, Any]]:
        who = principal(app)
        items = [_with_sla(route_body(i)) for i in read_model.routes_of(who.customer_id)]
        return _json(200, {"items": items, "count": len(items)})

    @app.get("/routes/<route_id>", responses=ROUTE_RESPONSES)
    def get_route(route_id: IdPath, as_of: AsOf = None) -> Response[dict[str, Any]]:
        who = principal(app)
        route = routes.get_route(who.customer_id, route_id)
        at = parse_as_of(as_of)
        if at is not None:  # the aggregate rebuilt from its events up to then (issue 11)
            then = aggregate_as_of(routes, UUID(route_id), at)
            if then is None:
                raise NotFound("as_of: before the route existed", field="as_of")
            body = {**_view(then[0]), "as_of": at.isoformat(), "version": then[1]}
            body["status"] = "ENABLED" if then[0].enabled else "DISABLED"
            return _json(200, body)
        failing = [f for f in read_model.files(route_id, None, 10_000) if f["status"] == "failed"]
        body = _view(route)
        failing_now = failing or route.scan_error  # files failed, or the listing itself
        body["status"] = "FAILING" if failing_now else ("ENABLED" if route.enabled else "DISABLED")
        body["failing_files"] = [f["path"] for f in failing[:20]]
        body["scan_error"] = route.scan_error
        return _json(200, _with_sla(body))

    @app.patch("/routes/<route_id>")
    def update_route(route_id: IdPath) -> Response[dict[str, Any]]:
        who = principal(app)
        route = routes.update(who.customer_id, who.actor, route_id, request_body(app))
        return _json(200, _view(route))

    @app.post("/routes/<route_id>/disable")
    def disable_route(route_id: IdPath) -> Response[dict[str, Any]]:
        who = principal(app)
        return _json(200, _view(routes.disable(who.customer_id, who.actor, route_id)))

    @app.post("/routes/<route_id>/enable")
    def enable_route(route_id: IdPath) -> Response[dict[str, Any]]:
        who = principal(app)
        return _json(200, _view(routes.enable(who.customer_id, who.actor, route_id)))

    @app.get("/routes/<route_id>/events")
    def route_events(route_id: IdPath) -> Response[dict[str, Any]]:
        who = principal(app)
        items = [audit_record(e) for e in routes.route_events(who.customer_id, route_id)]
        return _json(200, {"items": items, "count": len(items)})

    @app.get("/routes/<route_id>/files")
    def route_files(route_id: IdPath) -> Response[dict[str, Any]]:
        who = principal(app)
        routes.get_route(who.customer_id, route_id)  # 404 for another customer's route
        name = app.current_event.get_query_string_value("name") or None
        raw_limit = app.current_event.get_query_string_value("limit") or "100"
        limit = _limit(raw_limit)
        items = [file_body(i) for i in read_model.files(route_id, name, limit)]
        return _json(200, {"items": items, "count": len(items)})

    @app.post("/routes/<route_id>/files/retry")
    def retry_file(route_id: IdPath) -> Response[dict[str, Any]]:
        who = principal(app)
        request = RetryFileRequest.model_validate(request_body(app))
        retried = routes.retry_file(who.customer_id, who.actor, route_id, request.path)
        return _json(202, {**asdict(retried), "status": "dispatched"})

    @app.get("/endpoints/<endpoint_id>/unrouted")
    def unrouted(endpoint_id: IdPath) -> Response[dict[str, Any]]:
        who = principal(app)
        raw_limit = app.current_event.get_query_string_value("limit") or "100"
        items = routes.unrouted(who.customer_id, endpoint_id, _limit(raw_limit))
        return _json(200, {"items": items, "count": len(items)})

    return app


def _limit(raw: str) -> int:
    """``?limit=``: ASCII digits only ("²".isdigit() is True but int("²") fails)."""
    if raw.isascii() and raw.isdecimal() and len(raw) <= 4 and 1 <= int(raw) <= 1000:
        return int(raw)
    raise RoutesError("limit: an integer from 1 to 1000", field="limit")


def _view(route: Route) -> dict[str, Any]:
    return {
        "route_id": route.route_id,
        **route.definition,
        "enabled": route.enabled,
        "created_at": route.created_on.isoformat(),
        "updated_at": route.modified_on.isoformat(),
        "version": route.version,
    }


def _json(status: int, body: dict[str, Any]) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def _build() -> FerryResolver:
    from services.routes.bootstrap import bootstrap

    return build_resolver(bootstrap())


handler = json_handler(_build)
"""Lambda entry point: ``services/routes/handlers.py:handler``."""
