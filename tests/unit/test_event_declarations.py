"""Every stored event class is declared against the contract: mapped explicitly, fields equal.

Walks every aggregate of every bounded context (``services.*.domain``): each event class an
aggregate can store names its contract model (``contract = c.JobQueued``) or is marked
``internal = True``; every contract model is what some stored event class publishes; and a
stored event's own fields are exactly its contract model's fields minus the envelope.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
from pathlib import Path

import pytest
from eventsourcing.domain import Aggregate, decorated_funcs
from eventsourcing.utils import get_topic

from events.aggregate import FerryAggregate
from events.contract import EVENT_TYPES, FerryEvent
from events.translate import contract_of_topic

DOMAINS = ("services.endpoints.domain", "services.jobs.domain", "services.executor.domain",
           "services.routes.domain", "services.routes.sla")  # fmt: skip
AGGREGATES = {"Endpoint", "EndpointName", "Job", "Transfer", "Route", "RouteFile", "DeliveryWindow",
              "EndpointCheck"}  # fmt: skip
#: Contract models no stored aggregate event publishes (documented where they are published).
PUBLISHED_ELSEWHERE: frozenset[str] = frozenset()
#: Envelope fields: set by the translation (ids, version, time) or stamped on every event.
ENVELOPE = frozenset(FerryEvent.model_fields)
#: Fields eventsourcing keeps on every stored event (originator, version, time; the created
#: event also the aggregate's topic).
STORE_FIELDS = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})
FIXTURE = Path(__file__).parent.parent / "fixtures" / "stored_events_v1.json"


def _aggregates() -> list[type[FerryAggregate]]:
    for module in DOMAINS:
        importlib.import_module(module)
    found: list[type[FerryAggregate]] = []
    todo = list(FerryAggregate.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__ in DOMAINS:
            found.append(cls)
    return found


def _event_classes(namespace: type) -> list[type[Aggregate.Event]]:
    out: list[type[Aggregate.Event]] = []
    for value in vars(namespace).values():
        if not isinstance(value, type) or value.__module__ != namespace.__module__:
            continue
        if issubclass(value, FerryAggregate.Event):
            if value.__qualname__.startswith(namespace.__qualname__ + "."):
                out.append(value)
        elif not issubclass(value, Aggregate):
            out.extend(_event_classes(value))  # a plain namespace class (Transfer.Opened)
    return out


EVENT_CLASSES = {
    get_topic(cls): cls
    for aggregate in _aggregates()
    for cls in _event_classes(aggregate)
    if cls.__qualname__.split(".")[-1] not in ("Event", "Created")
}


def test_every_aggregate_is_walked() -> None:
    assert {a.__name__ for a in _aggregates()} == AGGREGATES
    assert len(EVENT_CLASSES) == 50


@pytest.mark.parametrize("topic", sorted(EVENT_CLASSES))
def test_every_stored_event_class_is_mapped_or_marked_internal(topic: str) -> None:
    cls = EVENT_CLASSES[topic]
    contract = getattr(cls, "contract", None)
    internal = getattr(cls, "internal", False)
    assert (contract is None) == (internal is True), f"{topic}: exactly one of contract/internal"
    assert contract_of_topic(topic) is contract  # raises UnmappedEvent when unmapped


def test_every_contract_model_is_published_by_a_stored_event() -> None:
    published = {contract_of_topic(t) for t in EVENT_CLASSES} - {None}
    unpublished = {m.detail_type() for m in EVENT_TYPES.values()} - {
        m.detail_type() for m in published if m is not None
    }
    assert unpublished == PUBLISHED_ELSEWHERE


@pytest.mark.parametrize("topic", sorted(EVENT_CLASSES))
def test_stored_event_fields_equal_the_contract_fields_minus_the_envelope(topic: str) -> None:
    cls = EVENT_CLASSES[topic]
    contract = contract_of_topic(topic)
    stored = {f.name for f in dataclasses.fields(cls)} - STORE_FIELDS  # type: ignore[arg-type]
    assert {"customer_id", "correlation_id"} <= stored  # stamped by FerryAggregate
    if contract is None:
        return
    assert stored - ENVELOPE == set(contract.model_fields) - ENVELOPE


def test_the_compatibility_fixture_holds_every_stored_event_class() -> None:
    stored_topics = {item["topic"] for item in json.loads(FIXTURE.read_text())}
    assert stored_topics == set(EVENT_CLASSES)


@pytest.mark.parametrize("topic", sorted(EVENT_CLASSES))
def test_an_event_method_takes_exactly_the_events_fields(topic: str) -> None:
    """An ``@event(Cls)`` method's parameters are its event's fields: a parameter the event
    lacks would be dropped on the way to the store, and one it misses could not be applied."""
    cls = EVENT_CLASSES[topic]
    method = decorated_funcs.get(cls)
    if method is None:
        return  # applied by the aggregate's __init__ (a created event) or a legacy apply()
    stored = {f.name for f in dataclasses.fields(cls)} - STORE_FIELDS  # type: ignore[arg-type]
    params = set(inspect.signature(method).parameters) - {"self"}
    # ``timestamp`` (defaulting to None: trigger_event sets it) hands the body the event's time
    assert params - {"timestamp"} == stored - {"customer_id", "correlation_id"}
    if "timestamp" in params:
        assert inspect.signature(method).parameters["timestamp"].default is None
