"""Adapters of the audit-export job ports (``services.projections.audit_exports``): the status
table (DynamoDB), the exporter's queue (SQS), the export's files in the audit bucket (S3, with
presigned GET URLs).

The table ``<prefix>-audit-exports``: partition ``customer_id``, sort ``sk`` —
``export#<export_id>`` for an export (its record as JSON text in ``record``, its ``status``
beside it for conditional transitions) and ``key#<sha256 of an Idempotency-Key>`` for a claimed
key (``export_id``, ``request_hash``, ``expires_at``: the table's TTL attribute). Every read names
the caller's partition, so another customer's export id is simply not found.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from ferry.errors import Invalid
from services.projections.audit_export_adapters import S3ExportSink
from services.projections.audit_exports import (
    IDEMPOTENCY_HEADER,
    ExportRecord,
    export_prefix,
)

EXPORT_SK = "export#"
KEY_SK = "key#"
TTL_ATTRIBUTE = "expires_at"


def create_audit_exports_table(client: Any, table_name: str) -> None:
    """The status table (what infra deploys), for the local stack and tests; idempotent."""
    try:
        client.create_table(
            TableName=table_name,
            KeySchema=[
                {"AttributeName": "customer_id", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "customer_id", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise


def _item(record: ExportRecord) -> dict[str, Any]:
    return {
        "customer_id": {"S": record.customer_id},
        "sk": {"S": EXPORT_SK + record.export_id},
        "status": {"S": record.status},
        "record": {"S": record.model_dump_json()},
    }


def _record(item: dict[str, Any]) -> ExportRecord:
    return ExportRecord.model_validate_json(item["record"]["S"])


class DynamoExportStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    def create(
        self, record: ExportRecord, claim: tuple[str, str, datetime] | None
    ) -> ExportRecord | None:
        put = {
            "Put": {
                "TableName": self.table_name,
                "Item": _item(record),
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }
        if claim is None:
            self.client.transact_write_items(TransactItems=[put])
            return None
        scope, request_hash, expires = claim
        key = {"customer_id": {"S": record.customer_id}, "sk": {"S": KEY_SK + scope}}
        claim_put = {
            "Put": {
                "TableName": self.table_name,
                "Item": {
                    **key,
                    "export_id": {"S": record.export_id},
                    "request_hash": {"S": request_hash},
                    TTL_ATTRIBUTE: {"N": str(int(expires.timestamp()))},
                },
                "ConditionExpression": "attribute_not_exists(sk) OR #e < :now",
                "ExpressionAttributeNames": {"#e": TTL_ATTRIBUTE},
                "ExpressionAttributeValues": {
                    ":now": {"N": str(int(expires.timestamp()) - 24 * 3600)}
                },
            }
        }
        try:
            self.client.transact_write_items(TransactItems=[claim_put, put])
            return None
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
        held = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True)
        item = held.get("Item")
        if item is None:  # pragma: no cover - expired and removed between the two calls
            raise Invalid(f"{IDEMPOTENCY_HEADER}: try again", field=IDEMPOTENCY_HEADER)
        if item["request_hash"]["S"] != request_hash:
            raise Invalid(
                f"{IDEMPOTENCY_HEADER}: already used for another period within 24 hours",
                field=IDEMPOTENCY_HEADER,
                code="idempotency_key_reused",
            )
        found = self.get(record.customer_id, item["export_id"]["S"])
        if found is None:  # pragma: no cover - the claim and its export are written together
            raise Invalid(f"{IDEMPOTENCY_HEADER}: try again", field=IDEMPOTENCY_HEADER)
        return found

    def get(self, customer_id: str, export_id: str) -> ExportRecord | None:
        item = self.client.get_item(
            TableName=self.table_name,
            Key={"customer_id": {"S": customer_id}, "sk": {"S": EXPORT_SK + export_id}},
            ConsistentRead=True,
        ).get("Item")
        return _record(item) if item else None

    def list(self, customer_id: str, limit: int) -> list[ExportRecord]:
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="customer_id = :c AND begins_with(sk, :p)",
            ExpressionAttributeValues={":c": {"S": customer_id}, ":p": {"S": EXPORT_SK}},
            ScanIndexForward=False,  # export ids are UUIDv7: newest first
            Limit=max(1, min(limit, 100)),
        )
        return [_record(i) for i in response.get("Items", [])]

    def update(self, record: ExportRecord, expected: frozenset[str]) -> bool:
        names = sorted(expected)
        values = {f":s{i}": {"S": s} for i, s in enumerate(names)}
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=_item(record),
                ConditionExpression=f"#st IN ({', '.join(values)})",
                ExpressionAttributeNames={"#st": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True


class SqsExportQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    def send(self, customer_id: str, export_id: str) -> None:
        body = json.dumps({"customer_id": customer_id, "export_id": export_id})
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)


class S3ExportFiles:
    """``exports/<customer>/<export_id>/<file>`` in the audit bucket."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def sink(self, customer_id: str, export_id: str) -> S3ExportSink:
        return S3ExportSink(self.client, self.bucket, export_prefix(customer_id, export_id))

    def url(self, customer_id: str, export_id: str, name: str, expires_in: int) -> str:
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": export_prefix(customer_id, export_id) + name},
                ExpiresIn=expires_in,
            )
        )
