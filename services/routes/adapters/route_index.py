"""The routes' own index (in the scan table; written before a route command's event is saved),
and the unrouted-object entries that expire after UNROUTED_TTL_SECONDS."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from events.dynamodb_values import deserialize, serialize
from services.routes.adapters._boto import client_or_default as _client
from services.routes.ports import (
    IndexedRoute,
    RouteIndex,
)
from services.routes.readmodel import (
    Item,
    path_key,
)

UNROUTED_TTL_SECONDS = 14 * 86400


class DynamoRouteIndex(RouteIndex):
    """Items of ``<prefix>-route-scan`` beside the scanner's state, under partition keys no
    route id can take: ``name#<customer_id>`` / ``<name>`` (the conditional name claim),
    ``bucket#<bucket>`` / ``<route_id>`` (push routes listening on a bucket) and
    ``unrouted#<bucket>`` / ``<key>\x00<version>`` (objects no route took, with a TTL).
    Every read is ConsistentRead: it is the strongly consistent source the push consumer and
    the create command rely on."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = _client(client)

    def claim_name(
        self, customer_id: str, name: str, route_id: str, when: float, *, replace: str | None = None
    ) -> IndexedRoute | None:
        allowed = {":me": {"S": route_id}}
        condition = "attribute_not_exists(holder) OR holder = :me"
        if replace is not None:
            condition = "holder = :old"
            allowed = {":old": {"S": replace}}
        item = serialize(
            {"route_id": f"name#{customer_id}", "key": name, "holder": route_id, "since": when}
        )
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeValues=allowed,
            )
            return None
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        raw = self._client.get_item(
            TableName=self._table,
            Key={"route_id": {"S": f"name#{customer_id}"}, "key": {"S": name}},
            ConsistentRead=True,
        ).get("Item")
        if not raw:  # released meanwhile: try once more
            return self.claim_name(customer_id, name, route_id, when) if replace is None else None
        held = deserialize(raw)
        return IndexedRoute(str(held["holder"]), customer_id, float(held.get("since") or 0))

    def release_name(self, customer_id: str, name: str, route_id: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={"route_id": {"S": f"name#{customer_id}"}, "key": {"S": name}},
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": {"S": route_id}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def add_bucket(self, bucket: str, route_id: str, customer_id: str, when: float) -> None:
        self._put_if_absent(
            {
                "route_id": f"bucket#{bucket}",
                "key": route_id,
                "customer_id": customer_id,
                "since": when,
            }
        )

    def _put_if_absent(self, item: Item) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": "key"},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def routes_on(self, bucket: str) -> list[IndexedRoute]:
        out: list[IndexedRoute] = []
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="route_id = :b",
            ExpressionAttributeValues={":b": {"S": f"bucket#{bucket}"}},
            ConsistentRead=True,
        ):
            for raw in page.get("Items", []):
                item = deserialize(raw)
                out.append(
                    IndexedRoute(
                        str(item["key"]), str(item["customer_id"]), float(item.get("since") or 0)
                    )
                )
        return out

    def record_unrouted(self, bucket: str, entry: dict[str, Any]) -> None:
        import time

        key = f"{path_key(str(entry['key']))}\x00{entry['version']}"
        self._client.put_item(
            TableName=self._table,
            Item=serialize(
                {
                    **entry,
                    "route_id": f"unrouted#{bucket}",
                    "key": key,
                    "object_key": entry["key"],
                    "ttl": int(time.time()) + UNROUTED_TTL_SECONDS,
                }
            ),
        )

    def unrouted(self, bucket: str, prefix: str, limit: int) -> list[dict[str, Any]]:
        import time

        now = time.time()
        out: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "KeyConditionExpression": "route_id = :b",
            "ExpressionAttributeValues": {":b": {"S": f"unrouted#{bucket}"}},
        }
        if prefix:
            query["KeyConditionExpression"] += " AND begins_with(#k, :p)"
            query["ExpressionAttributeNames"] = {"#k": "key"}
            query["ExpressionAttributeValues"][":p"] = {"S": prefix}
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(TableName=self._table, ConsistentRead=True, **query):
            for raw in page.get("Items", []):
                item = deserialize(raw)
                if not str(item["object_key"]).startswith(prefix):
                    continue  # a long key stored by its digest: checked on the real key
                if float(item.get("ttl") or 0) < now:
                    continue  # expired (DynamoDB's TTL deletes it eventually)
                out.append(
                    {
                        "key": item["object_key"],
                        **{k: item.get(k) for k in ("size", "version", "reason", "detail", "at")},
                    }
                )
                if len(out) >= limit:
                    return out
        return out
