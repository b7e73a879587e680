"""The scan state table: per-route listing state, pending deliveries and the scanner's ticks."""

from __future__ import annotations

from typing import Any

from events.dynamodb_values import deserialize, serialize
from services.routes.adapters._boto import client_or_default as _client
from services.routes.ports import (
    PendingDelivery,
    ScanState,
    ScanStateStore,
)
from services.routes.readmodel import (
    path_key,
)


class DynamoScanStateStore(ScanStateStore):
    """``<prefix>-route-scan``: pk route_id; sk ``f#<path>`` (file state), ``p#<path>#<version>``
    (pending delivery), ``tick`` (last tick)."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = _client(client)

    def get_many(self, route_id: str, paths: list[str]) -> dict[str, ScanState]:
        out: dict[str, ScanState] = {}
        unique = list(dict.fromkeys(paths))
        for start in range(0, len(unique), 100):
            keys = [
                {"route_id": {"S": route_id}, "key": {"S": "f#" + path_key(p)}}
                for p in unique[start : start + 100]
            ]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self._client.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self._table, []):
                    item = deserialize(raw)
                    out[item["path"]] = ScanState(
                        path=item["path"],
                        size=int(item["size"]),
                        mtime=float(item["mtime"]),
                        checks=int(item["checks"]),
                        first_seen=float(item["first_seen"]),
                        decided=str(item.get("decided") or ""),
                    )
                request = response.get("UnprocessedKeys") or {}
        return out

    def put_many(self, route_id: str, states: list[ScanState]) -> None:
        for start in range(0, len(states), 25):
            writes = [
                {
                    "PutRequest": {
                        "Item": serialize(
                            {
                                "route_id": route_id,
                                "key": "f#" + path_key(s.path),
                                "path": s.path,
                                "size": s.size,
                                "mtime": s.mtime,
                                "checks": s.checks,
                                "first_seen": s.first_seen,
                                "decided": s.decided,
                            }
                        )
                    }
                }
                for s in states[start : start + 25]
            ]
            request: dict[str, Any] = {self._table: writes}
            while request:
                response = self._client.batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems") or {}

    def pending(self, route_id: str, limit: int) -> list[PendingDelivery]:
        response = self._client.query(
            TableName=self._table,
            KeyConditionExpression="route_id = :r AND begins_with(#k, :p)",
            ExpressionAttributeNames={"#k": "key"},
            ExpressionAttributeValues={":r": {"S": route_id}, ":p": {"S": "p#"}},
            Limit=limit,
            ConsistentRead=True,
        )
        out = []
        for raw in response.get("Items", []):
            item = deserialize(raw)
            out.append(PendingDelivery(item["path"], item["file_version"], tuple(item["job_ids"])))
        return out

    def _pending_key(self, route_id: str, pending: PendingDelivery) -> dict[str, Any]:
        return {
            "route_id": {"S": route_id},
            "key": {"S": f"p#{path_key(pending.path)}#{pending.file_version}"},
        }

    def add_pending(self, route_id: str, pendings: list[PendingDelivery]) -> None:
        items = [
            {
                "PutRequest": {
                    "Item": {
                        **self._pending_key(route_id, pending),
                        **serialize(
                            {
                                "path": pending.path,
                                "file_version": pending.file_version,
                                "job_ids": list(pending.job_ids),
                            }
                        ),
                    }
                }
            }
            for pending in pendings
        ]
        for start in range(0, len(items), 25):
            request: dict[str, Any] = {self._table: items[start : start + 25]}
            while request:
                response = self._client.batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems") or {}

    def remove_pending(self, route_id: str, pending: PendingDelivery) -> None:
        self._client.delete_item(TableName=self._table, Key=self._pending_key(route_id, pending))

    def _watch_key(self, route_id: str, pending: PendingDelivery) -> dict[str, Any]:
        return {
            "route_id": {"S": route_id},
            "key": {"S": f"x#{path_key(pending.path)}#{pending.file_version}"},
        }

    def watching(
        self, route_id: str, limit: int, after: str | None
    ) -> tuple[list[PendingDelivery], str | None]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "route_id = :r AND begins_with(#k, :p)",
            "ExpressionAttributeNames": {"#k": "key"},
            "ExpressionAttributeValues": {":r": {"S": route_id}, ":p": {"S": "x#"}},
            "Limit": limit,
            "ConsistentRead": True,
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = {"route_id": {"S": route_id}, "key": {"S": after}}
        response = self._client.query(**kwargs)
        out = []
        for raw in response.get("Items", []):
            item = deserialize(raw)
            out.append(PendingDelivery(item["path"], item["file_version"], tuple(item["job_ids"])))
        last = response.get("LastEvaluatedKey")
        return out, (str(last["key"]["S"]) if last else None)

    def watch(self, route_id: str, pending: PendingDelivery) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                **self._watch_key(route_id, pending),
                **serialize(
                    {
                        "path": pending.path,
                        "file_version": pending.file_version,
                        "job_ids": list(pending.job_ids),
                    }
                ),
            },
        )
        self.remove_pending(route_id, pending)

    def unwatch(self, route_id: str, pending: PendingDelivery) -> None:
        self._client.delete_item(TableName=self._table, Key=self._watch_key(route_id, pending))

    def last_tick(self, route_id: str) -> float | None:
        raw = self._client.get_item(
            TableName=self._table,
            Key={"route_id": {"S": route_id}, "key": {"S": "tick"}},
            ConsistentRead=True,
        ).get("Item")
        return float(deserialize(raw)["at"]) if raw else None

    def set_last_tick(self, route_id: str, when: float) -> None:
        self._client.put_item(
            TableName=self._table,
            Item=serialize({"route_id": route_id, "key": "tick", "at": when}),
        )

    def acquire_scan(self, route_id: str, owner: str, now: float, ttl: float) -> bool:
        """A conditional write on the route's ``lease`` item: taken when there is none, it
        expired, or ``owner`` already holds it (a renewal)."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=serialize(
                    {"route_id": route_id, "key": "lease", "owner": owner, "expires": now + ttl}
                ),
                ConditionExpression="attribute_not_exists(#k) OR #o = :me OR #e < :now",
                ExpressionAttributeNames={"#k": "key", "#o": "owner", "#e": "expires"},
                ExpressionAttributeValues=serialize({":me": owner, ":now": now}),
            )
            return True
        except self._client.exceptions.ConditionalCheckFailedException:
            return False

    def release_scan(self, route_id: str, owner: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={"route_id": {"S": route_id}, "key": {"S": "lease"}},
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues=serialize({":me": owner}),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            pass  # expired and taken by another worker meanwhile: theirs now
