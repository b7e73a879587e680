"""Base classes every Ferry bounded context builds its aggregates and applications on.

- ``FerryAggregate`` stamps ``customer_id`` and ``correlation_id`` on every event it triggers,
  so that each stored event can be published on its own (see ``events.translate``).
- ``FerryApplication`` records through the persistence module's *aggregate* recorder: Ferry does
  not use eventsourcing's gapless application sequence (notification log); projections are fed by
  the event table's DynamoDB stream → EventBridge instead (see docs/architecture.md).

Every event class an aggregate stores declares what it is published as, explicitly: a class
attribute ``contract = events.contract.JobQueued`` (its contract model), or ``internal = True``
(never published). ``events.translate`` maps stored topic → contract model through that
declaration only; an event class with neither fails translation (and
``tests/unit/test_event_declarations.py``). Stored topics never change: to rename an event
class, register its old topic (``eventsourcing.utils.register_topic``). Event attributes are
plain JSON values (str, int, float, bool, dict, list, datetime, UUID), never pydantic models.
"""

from __future__ import annotations

import inspect
from typing import Any, TypeGuard
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import AggregateRecorder

from events.contract import FerryEvent

_TRANSFER_NS = uuid5(NAMESPACE_URL, "https://ferry.invalid/transfer")
_ENVELOPE = frozenset(FerryEvent.model_fields)


def _is_event_model(value: Any) -> TypeGuard[type[FerryEvent]]:
    return isinstance(value, type) and issubclass(value, FerryEvent)


def contract_fields(model: type[FerryEvent]) -> list[str]:
    """A contract model's own fields: what its stored event records (``customer_id`` and
    ``correlation_id`` are on every event; ids, version and time are the store's)."""
    return [name for name in model.model_fields if name not in _ENVELOPE]


class FerryAggregate(Aggregate):
    """An aggregate whose events all carry customer_id and correlation_id."""

    customer_id: str
    correlation_id: str

    class Event(Aggregate.Event):
        customer_id: str
        correlation_id: str

        def __init_subclass__(cls) -> None:
            """An event class that names its contract model and declares no fields of its own
            gets the model's fields (minus the envelope): each event's fields are declared
            once, in ``events/contract.py``."""
            model = cls.__dict__.get("contract")
            if _is_event_model(model) and not inspect.get_annotations(cls):
                cls.__annotations__ = {name: Any for name in contract_fields(model)}
            super().__init_subclass__()

    class Created(Event, Aggregate.Created):
        pass

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        kwargs.setdefault("customer_id", self.customer_id)
        kwargs.setdefault("correlation_id", self.correlation_id)
        super().trigger_event(event_class, **kwargs)


class FerryApplication(Application):
    """An eventsourcing Application on Ferry's event store (aggregate recorder only)."""

    def construct_recorder(self) -> Any:
        return self.factory.aggregate_recorder()

    @property
    def aggregate_recorder(self) -> AggregateRecorder:
        return self.recorder


def transfer_stream_id(job_id: str | UUID) -> UUID:
    """The executor's Transfer stream of a job: deterministic, so every executor finds it."""
    return uuid5(_TRANSFER_NS, str(job_id))
