"""HTTP routes of the notifications service: POST/GET /subscriptions,
GET/DELETE /subscriptions/{subscription_id}, POST /subscriptions/{subscription_id}/pause|resume|test,
GET /subscriptions/{subscription_id}/deliveries. Customer-scoped by the API key (another
customer's subscription is 404); a read-only key gets 403 on every mutating route (the edge)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

from ferry.api import FerryResolver, IdPath, json_handler, make_resolver, principal, request_body
from services.notifications.application import ACTIVE, PAUSED
from services.notifications.bootstrap import NotificationsContext
from services.notifications.domain import SubscriptionInvalid, SubscriptionRequest

#: Bodies parsed by hand, declared for the OpenAPI document.
REQUEST_BODIES: dict[tuple[str, str], Any] = {("POST", "/subscriptions"): SubscriptionRequest}


def build_resolver(service: NotificationsContext) -> FerryResolver:
    app = make_resolver(service.keys, not_found_code="subscription_not_found")
    subs = service.app

    @app.post("/subscriptions", status_code=201)
    def create() -> Response[dict[str, Any]]:
        who = principal(app)
        return _json(201, subs.create(who.customer_id, who.actor, request_body(app)))

    @app.get("/subscriptions")
    def list_all() -> Response[dict[str, Any]]:
        items = subs.list_all(principal(app).customer_id)
        return _json(200, {"items": items, "count": len(items)})

    @app.get("/subscriptions/<subscription_id>")
    def show(subscription_id: IdPath) -> Response[dict[str, Any]]:
        return _json(200, subs.get(principal(app).customer_id, subscription_id))

    @app.delete("/subscriptions/<subscription_id>")
    def remove(subscription_id: IdPath) -> Response[dict[str, Any]]:
        return _json(200, subs.delete(principal(app).customer_id, subscription_id))

    @app.post("/subscriptions/<subscription_id>/pause")
    def pause(subscription_id: IdPath) -> Response[dict[str, Any]]:
        return _json(200, subs.set_status(principal(app).customer_id, subscription_id, PAUSED))

    @app.post("/subscriptions/<subscription_id>/resume")
    def resume(subscription_id: IdPath) -> Response[dict[str, Any]]:
        return _json(200, subs.set_status(principal(app).customer_id, subscription_id, ACTIVE))

    @app.post("/subscriptions/<subscription_id>/test", status_code=202)
    def test(subscription_id: IdPath) -> Response[dict[str, Any]]:
        return _json(202, subs.test(principal(app).customer_id, subscription_id))

    @app.get("/subscriptions/<subscription_id>/deliveries")
    def deliveries(subscription_id: IdPath) -> Response[dict[str, Any]]:
        raw = app.current_event.get_query_string_value("limit") or "50"
        items = subs.deliveries(principal(app).customer_id, subscription_id, _limit(raw))
        return _json(200, {"items": items, "count": len(items)})

    return app


def _limit(raw: str) -> int:
    if raw.isascii() and raw.isdecimal() and len(raw) <= 4 and 1 <= int(raw) <= 1000:
        return int(raw)
    raise SubscriptionInvalid("limit: an integer from 1 to 1000", field="limit")


def _json(status: int, body: dict[str, Any]) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def _build() -> FerryResolver:
    from services.notifications.bootstrap import bootstrap

    return build_resolver(bootstrap())


handler = json_handler(_build)
"""Lambda entry point: ``services/notifications/handlers.py:handler``."""
