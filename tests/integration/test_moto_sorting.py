"""events/_moto.py sorts moto's items by a key per item instead of DynamoType comparisons: the
same order and pages for S and N keys, on a table and on an index (what the local stack's
read-model queries rely on)."""

from __future__ import annotations

import os
import random
from typing import Any

import boto3
import pytest
from moto import mock_aws

from events._moto import _sort_keys_once


@pytest.fixture
def client() -> Any:
    _sort_keys_once()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        made = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        made.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "n", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "n", "AttributeType": "N"},
                {"AttributeName": "g", "AttributeType": "S"},
                {"AttributeName": "at", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-g",
                    "KeySchema": [
                        {"AttributeName": "g", "KeyType": "HASH"},
                        {"AttributeName": "at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield made


def test_table_and_index_queries_keep_dynamodb_order_and_pages(client: Any) -> None:
    rng = random.Random(3)
    numbers = rng.sample(range(-500, 500), 60)  # numeric order differs from text order
    for i, n in enumerate(numbers):
        client.put_item(
            TableName="t",
            Item={
                "pk": {"S": "p"},
                "n": {"N": str(n)},
                "g": {"S": "g1" if i % 3 else "g2"},
                "at": {"S": f"2026-01-01T00:{rng.randrange(60):02d}:{i:02d}"},
            },
        )
    got = [
        int(i["n"]["N"])
        for i in client.query(
            TableName="t",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "p"}},
        )["Items"]
    ]
    assert got == sorted(numbers)
    seen: list[str] = []
    start = None
    while True:
        extra = {"ExclusiveStartKey": start} if start else {}
        page = client.query(
            TableName="t",
            IndexName="by-g",
            KeyConditionExpression="g = :g",
            ExpressionAttributeValues={":g": {"S": "g1"}},
            ScanIndexForward=False,
            Limit=7,
            **extra,
        )
        seen += [i["at"]["S"] for i in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    expected = sorted(
        (i["at"]["S"] for i in client.scan(TableName="t")["Items"] if i["g"]["S"] == "g1"),
        reverse=True,
    )
    assert seen == expected and len(seen) == 40
