"""Plain JSON values ↔ DynamoDB attribute values: the one conversion every read-model store uses.

Ferry's read models (projections' endpoints/jobs tables, routes' read model and scan state, the
tables other services read through their ports) hold plain JSON-like values: ``str``, ``int``,
``float``, ``bool``, ``None``, ``dict``, ``list``. DynamoDB's own converters
(``boto3.dynamodb.types``) refuse ``float`` and hand numbers back as ``Decimal`` and string/number
sets as ``set``; this module bridges both ways so that ``deserialize(serialize(item)) == item``:

- a ``float`` is stored as the ``Decimal`` of its ``repr`` (the shortest exact form, so it reads
  back as the same float);
- a number reads back as ``int`` when integral, else ``float``;
- a set reads back as a list (sorted, so the item is deterministic), a tuple is written as a list.

It sits beside ``events/dynamodb.py`` (the event store's own item format is there, not here); it
imports only ``boto3.dynamodb.types``, which needs no client and no credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

__all__ = ["deserialize", "from_attribute", "plain", "serialize", "to_attribute"]

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def _storable(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """A value as boto3 reads it (``Decimal``, ``set``, nested) → plain JSON-like values."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def to_attribute(value: Any) -> dict[str, Any]:
    """One plain value → a DynamoDB attribute value (``{"S": ...}``, ``{"M": ...}``, ...)."""
    attribute: dict[str, Any] = dict(_SERIALIZER.serialize(_storable(value)))
    return attribute


def from_attribute(attribute: Mapping[str, Any]) -> Any:
    """One DynamoDB attribute value → a plain value."""
    raw: Any = dict(attribute)
    return plain(_DESERIALIZER.deserialize(raw))


def serialize(item: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A plain item → a low-level DynamoDB item (``None`` attributes are stored as NULL; drop
    them first where absence is what is meant)."""
    return {k: to_attribute(v) for k, v in item.items()}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """A low-level DynamoDB item (``get_item``/``query``/stream image) → a plain item."""
    return {k: from_attribute(v) for k, v in item.items()}
