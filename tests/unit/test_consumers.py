"""The pure parts of tenant-scoped delivery (ferry/consumers.py): the spec, the rule name and
the one pattern a managed rule may have."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.consumers import (
    InvalidConsumer,
    _pattern_is_scoped,
    consumer_pattern,
    consumer_rule_name,
    parse_spec,
)
from ferry.names import ALL_SOURCES, ResourceNames

QUEUE = "https://sqs.us-east-1.amazonaws.com/111122223333/acme-events"
BUS = "arn:aws:events:eu-west-1:111122223333:event-bus/acme-inbox"


def test_pattern_always_filters_on_the_customer() -> None:
    assert consumer_pattern("acme") == {
        "source": list(ALL_SOURCES),
        "detail": {"customer_id": ["acme"]},
    }
    assert consumer_pattern("acme", ["JobFailed", "JobFailed", "EndpointValidated"]) == {
        "source": list(ALL_SOURCES),
        "detail-type": ["EndpointValidated", "JobFailed"],
        "detail": {"customer_id": ["acme"]},
    }


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        (consumer_pattern("acme"), True),
        (consumer_pattern("acme", ["JobFailed"]), True),
        ({"source": ["ferry.jobs"], "detail": {"customer_id": ["acme"]}}, True),
        ({"source": ["ferry.jobs"]}, False),  # every tenant
        ({"source": ["ferry.jobs"], "detail": {"customer_id": ["acme", "bravo"]}}, False),
        ({"source": ["ferry.jobs"], "detail": {"customer_id": [{"prefix": "a"}]}}, False),
        ({"source": ["ferry.jobs"], "detail": {"customer_id": ["bravo"]}}, False),
        ({"source": ["other"], "detail": {"customer_id": ["acme"]}}, False),
        ({"source": [], "detail": {"customer_id": ["acme"]}}, False),
        (
            {"source": ["ferry.jobs"], "detail": {"customer_id": ["acme"], "x": ["y"]}},
            False,
        ),
        ({"source": ["ferry.jobs"], "detail": {"customer_id": ["acme"]}, "$or": []}, False),
        (None, False),
    ],
)
def test_scoped_pattern_check(pattern: Any, ok: bool) -> None:
    assert _pattern_is_scoped(pattern, "acme") is ok


def test_rule_names_differ_per_customer_and_stay_short() -> None:
    names = ResourceNames("ferry")
    a = consumer_rule_name(names, "acme", "audit")
    b = consumer_rule_name(names, "bravo", "audit")
    assert a != b and a.startswith("ferry-bus-c-") and a.endswith("-audit")
    assert len(consumer_rule_name(names, "x" * 128, "n" * 32)) <= 64
    with pytest.raises(InvalidConsumer):
        consumer_rule_name(ResourceNames("p" * 30), "acme", "n" * 32)


def test_a_valid_spec() -> None:
    spec = parse_spec(
        customer_id="acme", name="audit", queue_url=QUEUE, detail_types=("JobFailed",)
    )
    assert spec.customer_id == "acme" and spec.detail_types == ("JobFailed",)
    assert parse_spec(customer_id="acme-1.eu", name="a_b-2", target_bus_arn=BUS).queue_url is None


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"name": "audit", "queue_url": QUEUE}, "customer"),
        ({"customer_id": "", "name": "audit", "queue_url": QUEUE}, "customer"),
        ({"customer_id": " acme", "name": "audit", "queue_url": QUEUE}, "customer"),
        ({"customer_id": "ac\nme", "name": "audit", "queue_url": QUEUE}, "customer"),
        ({"customer_id": "a" * 129, "name": "audit", "queue_url": QUEUE}, "customer"),
        ({"customer_id": "acme", "name": "", "queue_url": QUEUE}, "name"),
        ({"customer_id": "acme", "name": "Audit", "queue_url": QUEUE}, "name"),
        ({"customer_id": "acme", "name": "audit"}, "target"),
        ({"customer_id": "acme", "name": "audit", "queue_url": QUEUE, "target_bus_arn": BUS}, "target"),
        ({"customer_id": "acme", "name": "audit", "queue_url": "ftp://x/1/q"}, "queue-url"),
        ({"customer_id": "acme", "name": "audit", "target_bus_arn": BUS + "\n"}, "target-bus-arn"),
        ({"customer_id": "acme", "name": "audit", "target_bus_arn": "arn:aws:events:us-east-1:1:event-bus/x"}, "target-bus-arn"),
        ({"customer_id": "acme", "name": "audit", "queue_url": QUEUE, "detail_types": ("Nope",)}, "detail-type"),
    ],
)  # fmt: skip
def test_invalid_specs_name_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidConsumer) as error:
        parse_spec(**values)
    assert error.value.field == field
