"""The routes tables (the read model and the scan state table) and the two DynamoDB read
models routes reads: its own routes read model, and the job statuses it follows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from events.dynamodb_values import deserialize, serialize
from services.routes.adapters._boto import client_or_default as _client
from services.routes.ports import (
    JobState,
    JobStatusReader,
    RouteDirectory,
)
from services.routes.readmodel import (
    FILE_SK,
    ROUTE_SK,
    Item,
    RoutesReadModel,
    VersionConflict,
)

CUSTOMER_INDEX = "customer-index"


def create_tables(client: Any, routes_table: str, scan_table: str) -> None:
    """The routes read model (pk route_id, sk sk; GSI customer-index) and the scan state table
    (pk route_id, sk key). Idempotent."""
    definitions = [
        {
            "TableName": routes_table,
            "KeySchema": [
                {"AttributeName": "route_id", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "route_id", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "customer_id", "AttributeType": "S"},
                {"AttributeName": "created_at", "AttributeType": "S"},
            ],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": CUSTOMER_INDEX,
                    "KeySchema": [
                        {"AttributeName": "customer_id", "KeyType": "HASH"},
                        {"AttributeName": "created_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
        {
            "TableName": scan_table,
            "KeySchema": [
                {"AttributeName": "route_id", "KeyType": "HASH"},
                {"AttributeName": "key", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "route_id", "AttributeType": "S"},
                {"AttributeName": "key", "AttributeType": "S"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
    ]
    for definition in definitions:
        try:
            client.create_table(**definition)
        except client.exceptions.ResourceInUseException:
            continue


class DynamoRoutesReadModel(RoutesReadModel, RouteDirectory):
    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = _client(client)

    def get(self, route_id: str, sk: str) -> Item | None:
        found = self._client.get_item(
            TableName=self._table,
            Key={"route_id": {"S": route_id}, "sk": {"S": sk}},
            ConsistentRead=True,
        ).get("Item")
        return deserialize(found) if found else None

    def put(self, item: Item, expected_version: int | None) -> None:
        condition: dict[str, Any]
        if expected_version is None:
            condition = {"ConditionExpression": "attribute_not_exists(route_id)"}
        else:
            condition = {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": {"N": str(expected_version)}},
            }
        try:
            self._client.put_item(TableName=self._table, Item=serialize(item), **condition)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise VersionConflict(item["sk"]) from None
            raise

    def _query(self, **kwargs: Any) -> Iterator[Item]:
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(TableName=self._table, **kwargs):
            for raw in page.get("Items", []):
                yield deserialize(raw)

    def routes_of(self, customer_id: str) -> list[Item]:
        return list(
            self._query(
                IndexName=CUSTOMER_INDEX,
                KeyConditionExpression="customer_id = :c",
                ExpressionAttributeValues={":c": {"S": customer_id}},
            )
        )

    def enabled(self, trigger: str) -> list[Item]:
        out: list[Item] = []
        paginator = self._client.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self._table,
            FilterExpression="sk = :r AND enabled = :t AND trigger_type = :g",
            ExpressionAttributeValues={
                ":r": {"S": ROUTE_SK},
                ":t": {"BOOL": True},
                ":g": {"S": trigger},
            },
        ):
            out.extend(deserialize(raw) for raw in page.get("Items", []))
        return out

    def enabled_routes(self, trigger: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [(i["route_id"], i["customer_id"], i["definition"]) for i in self.enabled(trigger)]

    def settling_routes(self) -> list[str]:
        out: list[str] = []
        paginator = self._client.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self._table,
            FilterExpression="sk = :r",
            ExpressionAttributeValues={":r": {"S": ROUTE_SK}},
            ProjectionExpression="route_id",
        ):
            out.extend(str(deserialize(raw)["route_id"]) for raw in page.get("Items", []))
        return out

    def files(self, route_id: str, name: str | None, limit: int) -> list[Item]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "route_id = :r AND begins_with(sk, :f)",
            "ExpressionAttributeValues": {":r": {"S": route_id}, ":f": {"S": FILE_SK}},
        }
        if name:
            kwargs["FilterExpression"] = "#p = :n OR #n = :n OR contains(#p, :n)"
            kwargs["ExpressionAttributeNames"] = {"#p": "path", "#n": "name"}
            kwargs["ExpressionAttributeValues"][":n"] = {"S": name}
        out: list[Item] = []
        for item in self._query(**kwargs):
            out.append(item)
            if len(out) >= limit:
                break
        return out


class DynamoJobStatusReader(JobStatusReader):
    """Reads the jobs read model (``<prefix>-jobs``, pk job_id)."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = _client(client)

    def get(self, job_id: str) -> JobState | None:
        raw = self._client.get_item(
            TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        if not raw:
            return None
        item = deserialize(raw)
        return JobState(
            str(item.get("status")),
            item.get("error_code"),
            item.get("error_message"),
            item.get("redriven_to"),
            item.get("finished_at"),
        )
