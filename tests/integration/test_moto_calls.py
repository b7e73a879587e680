"""The moto server's call counter (events/_moto_calls.py): every call named by caller, service
and operation, over real HTTP from boto3, the way the load run and the chaos suite read it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from events._moto import SerialMotoServer
from events._moto_calls import CALLS_PATH


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with SerialMotoServer(count_calls=True) as running:
        yield running.url


def _client(url: str, service: str, key: str) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key="x",
    )


def _calls(url: str, method: str = "GET") -> dict[tuple[str, str, str], tuple[int, float]]:
    req = urllib.request.Request(url + CALLS_PATH, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        rows = json.loads(resp.read())["calls"]
    return {(r["principal"], r["service"], r["operation"]): (r["count"], r["units"]) for r in rows}


def test_counts_every_service_and_operation_by_caller(server: str) -> None:
    _calls(server, "DELETE")
    ddb = _client(server, "dynamodb", "ferryproc")
    ddb.create_table(
        TableName="t",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}})
    ddb.transact_write_items(
        TransactItems=[{"Put": {"TableName": "t", "Item": {"pk": {"S": k}}}} for k in "bcd"]
    )
    ddb.get_item(TableName="t", Key={"pk": {"S": "a"}}, ConsistentRead=True)
    ddb.get_item(TableName="t", Key={"pk": {"S": "a"}})

    s3 = _client(server, "s3", "ferryproc")
    s3.create_bucket(Bucket="calls-b")
    s3.put_object(Bucket="calls-b", Key="k/one", Body=b"x")
    s3.copy_object(Bucket="calls-b", Key="k/two", CopySource={"Bucket": "calls-b", "Key": "k/one"})
    upload = s3.create_multipart_upload(Bucket="calls-b", Key="k/mp")["UploadId"]
    etag = s3.upload_part(Bucket="calls-b", Key="k/mp", UploadId=upload, PartNumber=1, Body=b"y")[
        "ETag"
    ]
    s3.complete_multipart_upload(
        Bucket="calls-b",
        Key="k/mp",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]},
    )
    s3.head_object(Bucket="calls-b", Key="k/one")
    s3.get_object(Bucket="calls-b", Key="k/one")["Body"].read()
    s3.list_objects_v2(Bucket="calls-b")
    s3.list_multipart_uploads(Bucket="calls-b")

    driver = _client(server, "s3", "bench")
    driver.get_object(Bucket="calls-b", Key="k/two")["Body"].read()

    sqs = _client(server, "sqs", "ferryproc")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m")
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"]
    sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
    )

    events = _client(server, "events", "ferryproc")
    events.put_events(
        Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"} for _ in range(3)]
    )
    sm = _client(server, "secretsmanager", "ferryproc")
    sm.create_secret(Name="sec", SecretString="v")
    sm.get_secret_value(SecretId="sec")
    _client(server, "sts", "ferryproc").get_caller_identity()

    calls = _calls(server)
    p = "ferryproc"
    assert calls[(p, "dynamodb", "PutItem")] == (1, 1.0)
    assert calls[(p, "dynamodb", "TransactWriteItems")] == (1, 6.0)  # 3 items, 2 WRU each
    assert calls[(p, "dynamodb", "GetItem")] == (2, 1.5)  # strong 1 + eventual 0.5
    assert calls[(p, "dynamodb", "CreateTable")][1] == 0.0
    for op in (
        "CreateBucket",
        "PutObject",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "HeadObject",
        "GetObject",
        "ListObjectsV2",
        "ListMultipartUploads",
    ):
        assert calls[(p, "s3", op)][0] == 1, (op, calls)
    assert calls[("bench", "s3", "GetObject")] == (1, 1.0)  # the driver's call, counted apart
    assert calls[(p, "sqs", "SendMessage")][0] == 1
    assert calls[(p, "sqs", "ReceiveMessage")][0] == 1
    assert calls[(p, "sqs", "DeleteMessageBatch")] == (1, 1.0)  # one call, one message
    assert calls[(p, "events", "PutEvents")] == (1, 3.0)  # billed per entry
    assert calls[(p, "secretsmanager", "GetSecretValue")][0] == 1
    assert calls[(p, "sts", "GetCallerIdentity")][0] == 1

    assert _calls(server, "DELETE") == calls  # what was counted, then zero
    assert _calls(server) == {}


def test_counting_leaves_the_requests_intact(server: str) -> None:
    """Bodies read to name the operation are handed on: the calls still do what they say."""
    ddb = _client(server, "dynamodb", "ferryproc")
    ddb.create_table(
        TableName="intact",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="intact", Item={"pk": {"S": "a"}, "v": {"N": "7"}})
    item = ddb.get_item(TableName="intact", Key={"pk": {"S": "a"}})["Item"]
    assert item["v"] == {"N": "7"}
    sts = _client(server, "sts", "ferryproc")
    assert sts.get_caller_identity()["Account"]
