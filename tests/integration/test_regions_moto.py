"""The simulation's moto server answers every region from us-east-1 (ferry/local/regions.py):
a client built for region B's FERRY_REGION reaches the same tables and queues as region A's.
Secrets Manager stays regional, and a killed region's refuses every request."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ferry.local.regions import (
    REGION_A,
    REGION_B,
    OneRegionMotoServer,
    one_region,
    refused_requests,
    region_down,
)
from ferry.secret_regions import in_region


def _client(service: str, url: str, region: str) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_a_region_b_client_sees_region_a_resources() -> None:
    with OneRegionMotoServer() as server:
        a = _client("dynamodb", server.url, REGION_A)
        a.create_table(
            TableName="shared",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        b = _client("dynamodb", server.url, REGION_B)
        b.put_item(TableName="shared", Item={"pk": {"S": "from-b"}})
        assert a.get_item(TableName="shared", Key={"pk": {"S": "from-b"}})["Item"]
        url = _client("sqs", server.url, REGION_A).create_queue(QueueName="q")["QueueUrl"]
        _client("sqs", server.url, REGION_B).send_message(QueueUrl=url, MessageBody="x")
        got = _client("sqs", server.url, REGION_A).receive_message(QueueUrl=url)
        assert [m["Body"] for m in got["Messages"]] == ["x"]


def test_the_middleware_rewrites_only_the_scope_region() -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        return [b""]

    auth = (
        "AWS4-HMAC-SHA256 Credential=testing/20261203/us-west-2/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=abc"
    )
    query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=testing%2F20261203%2Feu-west-1%2Fs3"
    one_region(app)({"HTTP_AUTHORIZATION": auth, "QUERY_STRING": query}, None)
    assert seen["HTTP_AUTHORIZATION"] == auth.replace("us-west-2", "us-east-1")
    assert seen["QUERY_STRING"] == query.replace("eu-west-1", "us-east-1")


def test_secrets_stay_regional_and_a_killed_regions_are_refused() -> None:
    with OneRegionMotoServer() as server:
        a = _client("secretsmanager", server.url, REGION_A)
        b = _client("secretsmanager", server.url, REGION_B)
        arn = a.create_secret(Name="s", SecretString="x", AddReplicaRegions=[{"Region": REGION_B}])[
            "ARN"
        ]
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            b.get_secret_value(SecretId=arn)  # as in AWS: region B knows its replica only
        assert b.get_secret_value(SecretId=in_region(arn, REGION_B))["SecretString"] == "x"

        region_down(server.url, REGION_A)
        with pytest.raises(ClientError, match="ServiceUnavailable"):
            a.get_secret_value(SecretId=arn)
        assert b.get_secret_value(SecretId=in_region(arn, REGION_B))["SecretString"] == "x"
        # the MRSC tables stay reachable with region A's scope (region B's replica of them)
        _client("dynamodb", server.url, REGION_A).list_tables()
        assert refused_requests(server.url) == {REGION_A: 1}


def test_the_middleware_leaves_a_regional_services_scope_alone() -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        return [b""]

    auth = (
        "AWS4-HMAC-SHA256 Credential=testing/20261205/us-west-2/secretsmanager/aws4_request, "
        "SignedHeaders=host, Signature=abc"
    )
    one_region(app)({"HTTP_AUTHORIZATION": auth}, None)
    assert seen["HTTP_AUTHORIZATION"] == auth
