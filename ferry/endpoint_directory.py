"""The endpoint directory: the one port (and its one DynamoDB adapter) through which every service
looks an endpoint up in the endpoints read model (``<prefix>-endpoints``, pk ``endpoint_id``,
written by ``services/projections``; docs/architecture.md describes the item).

Users: the jobs service (submit checks the endpoints named), the routes service (a route's source
and target), the executor (``services/executor/endpoint_access.py`` builds its typed
``EndpointView`` from the same item). In-memory fakes for tests: ``tests/support/fakes``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from events.contract import Direction, EndpointStatus, EndpointType

__all__ = ["DynamoEndpointDirectory", "EndpointDirectory", "EndpointInfo"]


@dataclass(frozen=True, kw_only=True)
class EndpointInfo:
    """An endpoint as the read model holds it (never a credential value)."""

    endpoint_id: str
    customer_id: str
    type: EndpointType
    status: EndpointStatus
    direction: Direction = Direction.BOTH
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def bucket(self) -> str | None:
        return self.config.get("bucket")

    @property
    def prefix(self) -> str:
        """The S3 prefix, ending in ``/`` unless empty."""
        prefix = str(self.config.get("prefix") or "")
        return prefix if not prefix or prefix.endswith("/") else prefix + "/"

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> EndpointInfo | None:
        """From a plain read-model item; None for an item the projection has not completed (no
        status, an unknown type) — it is not a usable endpoint."""
        try:
            config = dict(item.get("config") or {})
            return cls(
                endpoint_id=str(item["endpoint_id"]),
                customer_id=str(item["customer_id"]),
                type=EndpointType(item.get("type") or config["type"]),
                status=EndpointStatus(item["status"]),
                direction=Direction(item.get("direction") or Direction.BOTH),
                config=config,
            )
        except (KeyError, ValueError):
            return None


class EndpointDirectory(ABC):
    """Looks an endpoint up by id."""

    @abstractmethod
    def get(self, endpoint_id: str) -> EndpointInfo | None:
        """The endpoint, or None when there is no such (usable) endpoint."""


class DynamoEndpointDirectory(EndpointDirectory):
    """Reads the endpoints read model table, strongly consistent."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        self._table = table_name
        self._client = client

    def item(self, endpoint_id: str) -> dict[str, Any] | None:
        """The plain read-model item (what the executor's typed view is built from)."""
        from events.dynamodb_values import deserialize

        raw = self._client.get_item(
            TableName=self._table, Key={"endpoint_id": {"S": endpoint_id}}, ConsistentRead=True
        ).get("Item")
        return deserialize(raw) if raw else None

    def get(self, endpoint_id: str) -> EndpointInfo | None:
        found = self.item(endpoint_id)
        return None if found is None else EndpointInfo.from_item(found)
