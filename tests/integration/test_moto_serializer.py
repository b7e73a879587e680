"""events/_moto.py writes maps of DynamoDB AttributeValue in one pass instead of moto's
shape-walking serializer: the response bodies must be the same, for every AttributeValue type,
nested, in every operation that returns items."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from moto.core.serialize import BaseJSONSerializer, XFormedAttributePicker, get_serializer_class
from moto.core.utils import get_service_model
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.utilities import dynamo_to_dict

from events._moto import _serialize_items_once

WIRE_ITEM: dict[str, Any] = {
    "job_id": {"S": "6c0c5d8e-0000-4000-8000-000000000001"},
    "empty": {"S": ""},
    "unicode": {"S": "naïve ✓ 日本"},
    "size": {"N": "33554432"},
    "ratio": {"N": "-0.125"},
    "blob": {"B": base64.b64encode(b"\x00\xffbinary").decode()},
    "tags": {"SS": ["a", "b"]},
    "sizes": {"NS": ["1", "2.5"]},
    "blobs": {"BS": [base64.b64encode(b"x").decode(), base64.b64encode(b"\x01").decode()]},
    "gone": {"NULL": True},
    "flag": {"BOOL": False},
    "source": {
        "M": {
            "endpoint_id": {"S": "e1"},
            "nested": {"M": {"deep": {"L": [{"N": "1"}, {"S": "two"}, {"M": {}}]}}},
        }
    },
    "history": {"L": [{"M": {"at": {"S": "2026-01-01"}}}, {"BOOL": True}, {"NULL": True}]},
    "nothing": {"M": {}},
    "none": {"L": []},
}


def body(operation: str, result: dict[str, Any]) -> Any:
    serializer_class = get_serializer_class("dynamodb", "json")
    serializer = serializer_class(
        operation_model=get_service_model("dynamodb").operation_model(operation),
        pretty_print=False,
        value_picker=XFormedAttributePicker(),
    )
    return json.loads(serializer.serialize(result)["body"])


def item() -> dict[str, Any]:
    """The item as moto's handlers hand it to the serializer (``DynamoResult``)."""
    return dynamo_to_dict({k: DynamoType(v) for k, v in WIRE_ITEM.items()})


RESULTS = {
    "Query": lambda: {
        "Count": 2,
        "ScannedCount": 2,
        "Items": [item(), item()],
        "LastEvaluatedKey": {"job_id": {"S": "k"}, "created_at": {"S": "2026"}},
    },
    "Scan": lambda: {"Count": 1, "ScannedCount": 1, "Items": [item()]},
    "GetItem": lambda: {"Item": item()},
    "BatchGetItem": lambda: {"Responses": {"t": [item()]}, "UnprocessedKeys": {}},
    "UpdateItem": lambda: {"Attributes": item()},
}


@pytest.mark.parametrize("operation", sorted(RESULTS))
def test_the_one_pass_writer_gives_the_same_body(operation: str, monkeypatch: Any) -> None:
    _serialize_items_once()
    fast = BaseJSONSerializer._serialize_type_map
    expected_fast = body(operation, RESULTS[operation]())
    monkeypatch.setattr(BaseJSONSerializer, "_serialize_type_map", fast._ferry_plain)  # type: ignore[attr-defined]
    plain = body(operation, RESULTS[operation]())
    assert expected_fast == plain
    if operation == "GetItem":  # the wire form comes back (binary base64, numbers as text)
        assert plain["Item"] == WIRE_ITEM
