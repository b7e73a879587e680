"""The endpoint validator and the endpoints service joined as in production, minus the bus.

In production the validator reads the endpoints read model, stores its verdict as
``EndpointCheckCompleted`` (published through the outbox) and the endpoints service's consumer
applies it. Tests that are about the checks, not the bus, use :class:`ValidationLoop`: the read
model is folded on read by the projections' own folds from the endpoints application's event
store (:class:`ProjectedEndpoints`: no projection lag), and each stored verdict is handed to
the endpoints application as its consumer would (``EndpointsApplication.record_check``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from events.contract import EndpointCheckCompleted
from events.translate import stream_events
from services.endpoints.application import EndpointsApplication
from services.executor.endpoint_access import SecretsReader
from services.executor.validator import EndpointChecks, EndpointReadModel, EndpointValidator
from services.projections.readmodels import Item, fold

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


class ProjectedEndpoints(EndpointReadModel):
    """The endpoints read model item, folded on every read from the endpoint's stream by the
    projections' folds (what the projection would hold once caught up)."""

    def __init__(self, app: EndpointsApplication) -> None:
        self.app = app

    def item(self, endpoint_id: str) -> Item | None:
        item: Item | None = None
        try:
            events = stream_events(self.app.recorder, endpoint_id)
        except ValueError:  # not a UUID
            return None
        for event in events:
            item = fold(item, event)
        return item


@dataclass
class ValidationLoop:
    """validator → verdict event → the endpoints application, in one call."""

    app: EndpointsApplication
    validator: EndpointValidator

    def deliver(self, verdict: EndpointCheckCompleted | None) -> bool | None:
        """None when there was no verdict; else whether the endpoint recorded it."""
        return None if verdict is None else self.app.record_check(verdict)

    def validate(self, endpoint_id: str, *, at_least: int = 1) -> bool | None:
        return self.deliver(self.validator.validate(endpoint_id, at_least=at_least))

    def handle_message(self, body: str) -> bool | None:
        return self.deliver(self.validator.handle_message(body))


def validation_loop(
    app: EndpointsApplication,
    secrets: SecretsReader,
    *,
    env: Mapping[str, str] | None = None,
    endpoints: EndpointReadModel | None = None,
    **options: Any,
) -> ValidationLoop:
    """A loop over ``app``; verdicts are stored on ``env``'s event store (in memory if None).
    ``options`` go to :class:`EndpointValidator` (timeouts, ``s3_client``, retries)."""
    options.setdefault("projection_wait_seconds", 0.0)  # ProjectedEndpoints never lags
    validator = EndpointValidator(
        endpoints or ProjectedEndpoints(app),
        EndpointChecks(env=dict(env or POPO)),
        secrets,
        **options,
    )
    return ValidationLoop(app, validator)
