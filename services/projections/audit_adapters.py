"""Adapters of the audit ports: the events table's customer-and-time index (DynamoDB GSI) and
the checkpoint documents (S3; the bucket has Object Lock in compliance mode in AWS, so a written
checkpoint can be neither overwritten nor deleted before its retention ends)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from events.dynamodb import CUSTOMER_TIME_INDEX, expand_item, plain_item
from services.projections.audit import IndexPage

CHECKPOINT_PREFIX = "checkpoints/"


class DynamoCustomerIndex:
    """GSI ``by-customer-time`` of the events table (partition customer_id, sort at_key)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    def page(
        self, customer_id: str, low: str, high: str, start_at_key: str | None, limit: int
    ) -> IndexPage:
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": CUSTOMER_TIME_INDEX,
            "KeyConditionExpression": "customer_id = :c AND at_key BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {
                ":c": {"S": customer_id},
                ":lo": {"S": low or "0"},
                ":hi": {"S": high},
            },
            "Limit": max(1, min(limit, 1000)),
        }
        if start_at_key:
            stream_id, version = start_at_key.split("#")[1:3]
            query["ExclusiveStartKey"] = {
                "customer_id": {"S": customer_id},  # always the caller's partition
                "at_key": {"S": start_at_key},
                "stream_id": {"S": stream_id},
                "version": {"N": str(int(version))},
            }
        response = self.client.query(**query)
        # One index entry per append, at its first event's time: its later events follow it
        # with the same at_key.
        items = [plain_item(e) for i in response.get("Items", []) for e in expand_item(i)]
        last = response.get("LastEvaluatedKey")
        return IndexPage(items=items, last_at_key=last["at_key"]["S"] if last else None, reads=1)


class S3CheckpointStore:
    """``checkpoints/<customer>/<seq, 12 digits>.json``, written with ``IfNoneMatch: *`` (a
    checkpoint is never replaced)."""

    def __init__(self, client: Any, bucket: str, prefix: str = CHECKPOINT_PREFIX) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix  # "access-checkpoints/" for the access log (ferry/access_log.py)
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}  # (key, etag): immutable objects

    def _keys(self, prefix: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            try:
                response = self.client.list_objects_v2(**kwargs)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "NoSuchBucket":
                    return []
                raise
            out.extend((o["Key"], o.get("ETag", "")) for o in response.get("Contents", []))
            if not response.get("IsTruncated"):
                return sorted(out)
            token = response.get("NextContinuationToken")

    def documents(self, customer_id: str) -> list[dict[str, Any]]:
        out = []
        for key, etag in self._keys(f"{self.prefix}{customer_id}/"):
            cached = self._cache.get((key, etag))
            if cached is None:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                cached = json.loads(body)
                self._cache[(key, etag)] = cached
            out.append(cached)
        return out

    def put(self, customer_id: str, document: Mapping[str, Any]) -> str:
        key = f"{self.prefix}{customer_id}/{int(document['seq']):012d}.json"
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(document, sort_keys=True, indent=1).encode(),
            ContentType="application/json",
            IfNoneMatch="*",
        )
        return f"s3://{self.bucket}/{key}"

    def customers(self) -> list[str]:
        names = set()
        for key, _ in self._keys(self.prefix):
            parts = key.split("/")
            if len(parts) == 3:
                names.add(parts[1])
        return sorted(names)
