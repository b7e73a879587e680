"""The DynamoDB read-model store (the only boto3 user of this service); its in-memory fake is
``tests/support/fakes/projections.py``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from events import dynamodb_values
from events.dynamodb_values import deserialize
from ferry.names import ResourceNames
from services.projections.application import (
    ConcurrentUpdate,
    IndexQuery,
    Page,
    ReadModelStore,
    strip_none,
)
from services.projections.readmodels import ENDPOINTS, JOBS, KEY_ATTRIBUTE, Item
from services.projections.store import StatsDelta, row_range

_BATCH_GET_ATTEMPTS = 5


def serialize(item: Item) -> dict[str, Any]:
    """A read-model item → DynamoDB (absent, not NULL, where a value is None)."""
    return dynamodb_values.serialize(strip_none(item))


class DynamoReadModelStore(ReadModelStore):
    def __init__(self, client: Any, names: ResourceNames | None = None, **tables: str):
        names = names or ResourceNames()
        self.client = client
        self.tables = {
            ENDPOINTS: tables.get("endpoints_table") or names.endpoints_table,
            JOBS: tables.get("jobs_table") or names.jobs_table,
        }
        self.stats_table = tables.get("job_stats_table") or names.job_stats_table

    def get(self, kind: str, key: str) -> Item | None:
        found = self.client.get_item(
            TableName=self.tables[kind],
            Key={KEY_ATTRIBUTE[kind]: {"S": key}},
            ConsistentRead=True,
        ).get("Item")
        return deserialize(found) if found else None

    def get_many(self, kind: str, keys: Iterable[str]) -> dict[str, Item]:
        """BatchGetItem (strongly consistent), 100 keys a call, unprocessed keys asked again."""
        table, attribute = self.tables[kind], KEY_ATTRIBUTE[kind]
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Item] = {}
        for start in range(0, len(wanted), 100):
            request: dict[str, Any] = {
                table: {
                    "Keys": [{attribute: {"S": k}} for k in wanted[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            for _ in range(_BATCH_GET_ATTEMPTS):
                response = self.client.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(table, []):
                    item = deserialize(raw)
                    found[item[attribute]] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise RuntimeError(f"{kind}: keys still unprocessed after BatchGetItem retries")
        return found

    def put(
        self,
        kind: str,
        item: Item,
        expected: dict[str, int] | None,
        stats: Sequence[StatsDelta] = (),
    ) -> None:
        """One conditional PutItem; with counter changes, one TransactWriteItems of the put and
        an ADD per counters row (all or nothing). A failed condition, or a conflict with another
        transaction on one of the rows, is a ``ConcurrentUpdate``: nothing was written, and the
        projector re-reads and re-applies."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        if expected is None:
            names["#k"] = KEY_ATTRIBUTE[kind]
            condition = "attribute_not_exists(#k)"
        else:
            parts = []
            for i, (attribute, version) in enumerate(sorted(expected.items())):
                names[f"#v{i}"] = attribute
                values[f":v{i}"] = {"N": str(version)}
                parts.append(f"#v{i} = :v{i}")
            condition = " AND ".join(parts)
        request: dict[str, Any] = {
            "TableName": self.tables[kind],
            "Item": serialize(item),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values:
            request["ExpressionAttributeValues"] = values
        if not stats:
            try:
                self.client.put_item(**request)
            except self.client.exceptions.ConditionalCheckFailedException:
                raise ConcurrentUpdate(f"{kind}/{item[KEY_ATTRIBUTE[kind]]} changed") from None
            return
        transaction = [{"Put": request}, *({"Update": self._counting(d)} for d in stats)]
        try:
            self.client.transact_write_items(TransactItems=transaction)
        except self.client.exceptions.TransactionCanceledException as error:
            codes = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if "ConditionalCheckFailed" in codes or "TransactionConflict" in codes:
                raise ConcurrentUpdate(
                    f"{kind}/{item[KEY_ATTRIBUTE[kind]]} changed ({', '.join(map(str, codes))})"
                ) from None
            raise

    def _counting(self, delta: StatsDelta) -> dict[str, Any]:
        names = {f"#c{i}": counter for i, counter in enumerate(delta.counts)}
        values = {f":c{i}": {"N": str(amount)} for i, amount in enumerate(delta.counts.values())}
        return {
            "TableName": self.stats_table,
            "Key": {"customer_id": {"S": delta.customer_id}, "hour_shard": {"S": delta.sort_key}},
            "UpdateExpression": "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(names))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def stats_rows(self, customer_id: str, first_hour: str, last_hour: str) -> list[Item]:
        """One Query of the customer's partition, the hours' key range (paginated)."""
        low, high = row_range(first_hour, last_hour)
        request: dict[str, Any] = {
            "TableName": self.stats_table,
            "KeyConditionExpression": "customer_id = :c AND hour_shard BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":c": {"S": customer_id},
                ":low": {"S": low},
                ":high": {"S": high},
            },
            "ConsistentRead": True,
        }
        rows: list[Item] = []
        while True:
            page = self.client.query(**request)
            rows.extend(deserialize(i) for i in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return rows
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def query(self, query: IndexQuery) -> Page:
        names = {"#p": query.partition_attribute}
        values: dict[str, Any] = {":p": {"S": query.partition_value}}
        condition = "#p = :p"
        if query.since and query.until:
            condition += " AND #c BETWEEN :s AND :u"
            values[":s"], values[":u"] = {"S": query.since}, {"S": query.until}
        elif query.since:
            condition += " AND #c >= :s"
            values[":s"] = {"S": query.since}
        elif query.until:
            condition += " AND #c <= :u"
            values[":u"] = {"S": query.until}
        if query.since or query.until:
            names["#c"] = "created_at"
        request: dict[str, Any] = {
            "TableName": self.tables[query.kind],
            "IndexName": query.index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not query.newest_first,
            "Limit": query.limit,
        }
        if query.start_key:
            request["ExclusiveStartKey"] = {k: {"S": v} for k, v in query.start_key.items()}
        if query.attributes:
            keys = (KEY_ATTRIBUTE[query.kind], query.partition_attribute, "created_at")
            wanted = dict.fromkeys((*keys, *query.attributes))
            names.update({f"#a{i}": a for i, a in enumerate(wanted)})
            request["ProjectionExpression"] = ", ".join(f"#a{i}" for i in range(len(wanted)))
        page = self.client.query(**request)
        last = page.get("LastEvaluatedKey")
        return Page(
            items=[deserialize(i) for i in page.get("Items", [])],
            last_key={k: v["S"] for k, v in last.items()} if last else None,
        )

    def scan(self, kind: str) -> list[Item]:
        items: list[Item] = []
        request: dict[str, Any] = {"TableName": self.tables[kind], "ConsistentRead": True}
        while True:
            page = self.client.scan(**request)
            items.extend(deserialize(i) for i in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
