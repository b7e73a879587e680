"""Ferry's whole HTTP API in memory: the four real resolvers (endpoints, jobs, queries, routes),
built by their own bootstraps with in-memory adapters and one shared key store, and the real
local API server (``ferry.local.apiserver``) in front of them on a loopback port.

Used by the hostile-input tests (``tests/unit/test_api_hardening.py``) and the schemathesis run
(``tests/e2e/test_schemathesis.py``): every request goes through the same admission, parsing,
validation and error table as in Lambda.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from eventsourcing.popo import POPOAggregateRecorder

from ferry.api import FerryResolver, issue_key
from ferry.apigw import rest_event
from ferry.names import API_HANDLERS, API_ROUTES
from tests.support.fakes.keys import InMemoryKeyStore

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
CUSTOMER = "cust-a"
OTHER = "cust-b"


def _resolvers(keys: InMemoryKeyStore, history: Any = None) -> dict[str, FerryResolver]:
    from services.endpoints.bootstrap import bootstrap as endpoints_bootstrap
    from services.endpoints.handlers import build_resolver as endpoints_resolver
    from services.endpoints.settings import EndpointsSettings
    from services.jobs.bootstrap import bootstrap as jobs_bootstrap
    from services.jobs.handlers import build_resolver as jobs_resolver
    from services.jobs.settings import JobsSettings
    from services.projections.application import Projector, Queries
    from services.projections.bootstrap import ProjectionsContext
    from services.projections.handlers import build_app
    from services.projections.samples import to_stored
    from services.routes.application import RoutesApplication
    from services.routes.bootstrap import RoutesContext
    from services.routes.handlers import build_resolver as routes_resolver
    from services.routes.settings import RoutesSettings
    from tests.support.fakes.endpoints import InMemorySecretStore
    from tests.support.fakes.jobs import InMemoryEndpointDirectory, InMemoryIdempotencyStore
    from tests.support.fakes.projections import InMemoryReadModelStore
    from tests.support.fakes.routes import FakeJobs, InMemoryRouteIndex, InMemoryRoutesReadModel
    from tests.support.fakes.routes import InMemoryEndpointDirectory as RouteEndpoints

    context = endpoints_bootstrap(
        secrets=InMemorySecretStore(), keys=keys, env=POPO, settings=EndpointsSettings(prefix="t")
    )
    endpoints = endpoints_resolver(context)
    jobs = jobs_resolver(
        jobs_bootstrap(
            settings=JobsSettings(),
            endpoints=InMemoryEndpointDirectory([]),
            idempotency=InMemoryIdempotencyStore(),
            keys=keys,
        )
    )
    store, recorder = InMemoryReadModelStore(), POPOAggregateRecorder()
    projector = Projector(store, recorder)
    if history is not None:  # read models and event streams to answer GETs with
        recorder.insert_events([to_stored(e) for e in history.events])
        for event in history.events:
            projector.handle(event)
    from tests.support.fakes.audit import in_memory_audit

    audit = in_memory_audit(recorder)
    from tests.support.fakes.audit_exports import in_memory_exports

    exports = in_memory_exports()
    queries = build_app(
        ProjectionsContext(projector, Queries(store, recorder), keys),
        audit_factory=lambda: audit,
        exports_factory=lambda: exports,
    )
    routes_app = RoutesApplication(
        endpoints=RouteEndpoints(), jobs=FakeJobs(), staging_bucket="s", index=InMemoryRouteIndex()
    )
    routes = routes_resolver(
        RoutesContext(routes_app, InMemoryRoutesReadModel(), keys, RoutesSettings())
    )
    from services.notifications.bootstrap import bootstrap as notifications_bootstrap
    from services.notifications.handlers import build_resolver as notifications_resolver
    from services.notifications.settings import NotificationsSettings
    from tests.support.fakes import notifications as nf

    notifications_context = notifications_bootstrap(
        settings=NotificationsSettings(prefix="t"),
        store=nf.InMemorySubscriptionStore(),
        secrets=nf.InMemorySigningSecrets(),
        queue=nf.RecordingQueue(),
        keys=keys,
    )
    notifications = notifications_resolver(notifications_context)
    return {
        "endpoints": endpoints, "jobs": jobs, "queries": queries, "routes": routes,
        "notifications": notifications,
    }  # fmt: skip


@dataclass
class Edge:
    keys: InMemoryKeyStore
    resolvers: dict[str, FerryResolver]
    key: str
    statuses: list[int] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)

    def function_of(self, method: str, template: str) -> str:
        for m, path, function in API_ROUTES:
            if (m, path) == (method, template):
                return function
        raise KeyError((method, template))

    def call(
        self,
        method: str,
        template: str,
        body: str | bytes | None = None,
        *,
        key: str | None = None,
        content_type: str | None = "application/json",
        path: str | None = None,
        base64: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        """One request to the route ``template`` (ids filled with fresh uuids unless ``path``)."""
        import base64 as b64

        concrete = path or _fill(template)
        headers = {"x-api-key": key or self.key}
        if content_type is not None:
            headers["content-type"] = content_type
        text: str | None = body if isinstance(body, str) or body is None else None
        if isinstance(body, bytes):  # raw bytes travel base64-encoded, as API Gateway sends them
            text, base64 = b64.b64encode(body).decode(), True
        event = rest_event(
            method, concrete, body=text, headers=headers, resource=template, content_type=None
        )
        event["isBase64Encoded"] = base64
        resolver = self.resolvers[self.function_of(method, template)]
        response = resolver.resolve(event, None)
        self.statuses.append(response["statusCode"])
        return response["statusCode"], json.loads(response["body"] or "{}")


def _fill(template: str) -> str:
    parts = [str(uuid4()) if p.startswith("{") else p for p in template.split("/")]
    return "/".join(parts)


def build_edge(*, with_history: bool = False) -> Edge:
    """``with_history``: the customer already has endpoints and jobs of every outcome in the
    read models (``Edge.ids`` names one of each kind), so GETs by id answer 200."""
    keys = InMemoryKeyStore()
    key, _ = issue_key(keys, CUSTOMER, name="ci")
    history, ids = None, {}
    if with_history:
        from services.projections.samples import History

        history = History()
        source = history.endpoint(CUSTOMER, endpoint_type="s3")
        target = history.endpoint_lifecycle(CUSTOMER)
        jobs = [
            history.job(CUSTOMER, source, target, outcome=outcome)
            for outcome in ("succeeded", "failed", "cancelled", "queued")
        ]
        ids = {"endpoint_id": target, "job_id": jobs[1]}
    edge = Edge(keys, _resolvers(keys, history), key)
    edge.ids = ids
    return edge


def mutating_routes() -> list[tuple[str, str]]:
    """Every (method, template) of the REST table that takes a body (POST, PUT, PATCH) and is
    served by a handler."""
    return [(m, p) for m, p, f in API_ROUTES if m in ("POST", "PUT", "PATCH") and f in API_HANDLERS]


def expired_and_revoked(keys: InMemoryKeyStore) -> tuple[str, str]:
    long_ago = datetime.now(UTC) - timedelta(days=2)
    expired, _ = issue_key(keys, CUSTOMER, name="old", expires_in=timedelta(days=1), now=long_ago)
    revoked, who = issue_key(keys, CUSTOMER, name="gone")
    keys.revoke(who.key_id, datetime.now(UTC))
    return expired, revoked


@contextmanager
def serve(edge: Edge) -> Iterator[str]:
    """The real local API server (``ferry.local.apiserver``) on 127.0.0.1, invoking ``edge``'s
    resolvers as its Lambda functions; yields the base URL."""
    from ferry.local import apiserver

    class Functions(apiserver._Functions):
        def __init__(self) -> None:
            super().__init__(apiserver.HANDLERS)
            self._lock = threading.Lock()

        def invoke(self, spec: str, event: dict[str, Any]) -> dict[str, Any]:
            module = spec.split(":")[0]
            function = next(f for f, m in API_HANDLERS.items() if m == module)
            with self._lock:  # like one Lambda instance per function
                response = edge.resolvers[function].resolve(event, None)
                edge.statuses.append(int(response["statusCode"]))
                return response

    handler_class = type(
        "EdgeApiRequestHandler", (apiserver.ApiRequestHandler,), {"functions": Functions()}
    )
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
