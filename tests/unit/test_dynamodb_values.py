"""The one DynamoDB value conversion (events/dynamodb_values.py) every read-model store uses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from events.dynamodb_values import deserialize, from_attribute, plain, serialize, to_attribute
from services.projections import adapters as projections_adapters

ITEM: dict[str, Any] = {
    "job_id": "j1",
    "attempt": 3,
    "throughput_bytes_per_second": 1234.5678,
    "tiny": 1e-7,
    "ratio": 0.1,
    "enabled": True,
    "error_code": None,
    "source": {"endpoint_id": "e1", "path": "/in/a.csv", "size": 2**53 + 1},
    "legs": [{"n": 1, "seconds": 0.25}, {"n": 2, "seconds": 3.0}],
}


def test_a_plain_item_round_trips_exactly() -> None:
    raw = serialize(ITEM)
    assert raw["attempt"] == {"N": "3"}
    assert raw["ratio"] == {"N": "0.1"}  # repr: the shortest exact form, not 0.1000000000000000055…
    assert raw["error_code"] == {"NULL": True}
    back = deserialize(raw)
    assert back == ITEM
    assert type(back["attempt"]) is int and type(back["legs"][0]["seconds"]) is float
    assert type(back["legs"][1]["seconds"]) is int  # an integral float reads back as int (== 3.0)


def test_numbers_read_back_as_int_when_integral_sets_as_sorted_lists() -> None:
    assert plain(Decimal("7")) == 7 and type(plain(Decimal("7"))) is int
    assert plain(Decimal("7.5")) == 7.5
    assert plain({"a": [Decimal("1"), {"b": Decimal("2.5")}]}) == {"a": [1, {"b": 2.5}]}
    assert from_attribute({"SS": ["b", "a"]}) == ["a", "b"]
    assert from_attribute({"NS": ["2", "1"]}) == [1, 2]


def test_tuples_are_lists_and_floats_inside_them_are_storable() -> None:
    assert to_attribute((1.5, "x")) == {"L": [{"N": "1.5"}, {"S": "x"}]}


def test_a_float_dynamodb_cannot_hold_is_refused_not_mangled() -> None:
    with pytest.raises(Exception):  # noqa: B017 - boto3 raises decimal.InvalidOperation/TypeError
        to_attribute(float("nan"))


def test_the_projections_store_drops_none_rather_than_storing_null() -> None:
    raw = projections_adapters.serialize(ITEM)
    assert "error_code" not in raw
    assert projections_adapters.deserialize(raw) == {k: v for k, v in ITEM.items() if v is not None}
