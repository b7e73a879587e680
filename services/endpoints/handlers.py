"""HTTP routes of the endpoints service (API Gateway REST → Lambda, Powertools resolver).

POST /endpoints · PATCH /endpoints/{endpoint_id} · POST /endpoints/{endpoint_id}/disable ·
POST /endpoints/{endpoint_id}/enable · POST /endpoints/{endpoint_id}/validate ·
DELETE /endpoints/{endpoint_id}. (GETs are served by services/projections.)
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

from events.contract import EndpointConfig
from ferry.api import (
    FerryResolver,
    IdPath,
    json_handler,
    make_resolver,
    principal,
    request_body,
)
from services.endpoints.application import (
    Credentials,
    EndpointsApplication,
    Registration,
)
from services.endpoints.bootstrap import EndpointsContext, bootstrap
from services.endpoints.domain import Endpoint
from services.endpoints.schemas import (
    SECRET_FIELDS,
    DisableRequest,
    PatchRequest,
    S3Registration,
    SftpRegistration,
    parse_disable,
    parse_patch,
    parse_registration,
)

__all__ = ["REQUEST_BODIES", "add_routes", "endpoint_body", "handler"]

#: Bodies parsed by hand (two registration shapes), declared for the OpenAPI document.
REQUEST_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/endpoints"): S3Registration | SftpRegistration,
    ("PATCH", "/endpoints/{endpoint_id}"): PatchRequest,
    ("POST", "/endpoints/{endpoint_id}/disable"): DisableRequest,
}


def add_routes(resolver: FerryResolver, app: EndpointsApplication) -> FerryResolver:
    @resolver.post("/endpoints", status_code=201)
    def register() -> Response[dict[str, Any]]:
        request = parse_registration(request_body(resolver))
        credentials = None
        if isinstance(request, SftpRegistration):
            credentials = Credentials(
                username=request.username,
                private_key=request.private_key,
                passphrase=request.passphrase,
                password=request.password,
            )
        config = EndpointConfig.model_validate(
            request.model_dump(
                exclude={"name", "direction", "max_concurrency", "bandwidth_limit", *SECRET_FIELDS},
                exclude_none=True,
            )
        )
        who = principal(resolver)
        endpoint = app.register(
            customer_id=who.customer_id,
            actor=who.actor,
            registration=Registration(
                name=request.name,
                direction=request.direction.value,
                max_concurrency=request.max_concurrency,
                bandwidth_limit=request.bandwidth_limit,
                config=config,
                credentials=credentials,
            ),
        )
        return _respond(201, endpoint)

    @resolver.patch("/endpoints/<endpoint_id>")
    def update(endpoint_id: IdPath) -> Response[dict[str, Any]]:
        request = parse_patch(request_body(resolver))
        given = request.model_fields_set
        changes = {k: _plain(getattr(request, k)) for k in sorted(given - SECRET_FIELDS)}
        credentials = None
        if request.private_key or request.password:
            credentials = Credentials(
                username="",  # the application takes it from the endpoint's settings
                private_key=request.private_key,
                passphrase=request.passphrase,
                password=request.password,
            )
        who = principal(resolver)
        endpoint = app.update(
            customer_id=who.customer_id,
            endpoint_id=endpoint_id,
            actor=who.actor,
            changes=changes,
            credentials=credentials,
        )
        return _respond(200, endpoint)

    @resolver.post("/endpoints/<endpoint_id>/disable")
    def disable(endpoint_id: IdPath) -> Response[dict[str, Any]]:
        reason = parse_disable(request_body(resolver, optional=True)).reason
        who = principal(resolver)
        endpoint = app.disable(
            customer_id=who.customer_id, endpoint_id=endpoint_id, actor=who.actor, reason=reason
        )
        return _respond(200, endpoint)

    @resolver.post("/endpoints/<endpoint_id>/enable")
    def enable(endpoint_id: IdPath) -> Response[dict[str, Any]]:
        who = principal(resolver)
        endpoint = app.enable(customer_id=who.customer_id, endpoint_id=endpoint_id, actor=who.actor)
        return _respond(200, endpoint)

    @resolver.post("/endpoints/<endpoint_id>/validate", status_code=202)
    def validate(endpoint_id: IdPath) -> Response[dict[str, Any]]:
        """Re-run validation: 202, status PENDING_VALIDATION until the validator reports."""
        who = principal(resolver)
        endpoint = app.request_validation(
            customer_id=who.customer_id, endpoint_id=endpoint_id, actor=who.actor
        )
        return _respond(202, endpoint)

    @resolver.delete("/endpoints/<endpoint_id>")
    def retire(endpoint_id: IdPath) -> Response[dict[str, Any]]:
        """Retire (final): 409 endpoint_in_use while jobs or enabled routes use it."""
        who = principal(resolver)
        endpoint = app.retire(customer_id=who.customer_id, endpoint_id=endpoint_id, actor=who.actor)
        return _respond(200, endpoint)

    return resolver


def endpoint_body(endpoint: Endpoint) -> dict[str, Any]:
    """The API's view of an endpoint: flat settings, no credential, no secret ARN."""
    config = {k: v for k, v in endpoint.config.items() if k != "type"}
    return {
        "endpoint_id": str(endpoint.id),
        "name": endpoint.name,
        "type": endpoint.type.value,
        "direction": endpoint.direction,
        "max_concurrency": endpoint.max_concurrency,
        "bandwidth_limit": getattr(endpoint, "bandwidth_limit", None),
        **config,
        "auth_method": endpoint.config.get("auth_method"),
        "has_credentials": endpoint.secret_arn is not None,
        "status": endpoint.status.value,
        "status_reason": endpoint.status_reason,
        "created_at": endpoint.created_at.isoformat(),
        "updated_at": endpoint.updated_at.isoformat(),
        "validated_at": endpoint.validated_at.isoformat() if endpoint.validated_at else None,
        "version": endpoint.version,
    }


def _respond(status: int, endpoint: Endpoint) -> Response[dict[str, Any]]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=endpoint_body(endpoint),
    )


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def build_resolver(context: EndpointsContext) -> FerryResolver:
    """The HTTP resolver over a bootstrapped context (API keys checked by the edge)."""
    return add_routes(make_resolver(context.keys), context.app)


handler = json_handler(lambda: build_resolver(bootstrap()))
"""Lambda entry point: ``services/endpoints/handlers.py:handler``."""
