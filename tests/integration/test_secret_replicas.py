"""Endpoint secrets in two regions on moto server (regional Secrets Manager backends, real
sockets): the endpoints service's store creates each secret with a replica in the peer region,
region B's reader reads the replica (not region A's ARN, which B's Secrets Manager does not
know), a rotation taken by region B's API is written to the primary in A and reaches B's
replica, and retiring removes the replica before the primary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ferry.secret_regions import in_region, region_of
from services.endpoints.adapters import SecretsManagerStore
from services.endpoints.application import Credentials
from services.executor.endpoint_access import CredentialsUnavailable, SecretsReader
from tests.support.moto_server import unique_name

A, B = "us-east-1", "us-west-2"


@pytest.fixture
def clients(aws_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    yield {region: boto3.client("secretsmanager", region_name=region) for region in (A, B)}


def _missing(client: Any, secret_id: str) -> bool:
    try:
        client.describe_secret(SecretId=secret_id)
    except ClientError as exc:
        return exc.response["Error"]["Code"] == "ResourceNotFoundException"
    return False


def test_region_b_reads_the_replica_of_a_secret_created_in_region_a(
    clients: dict[str, Any],
) -> None:
    store_a = SecretsManagerStore(clients[A], replica_regions=[B], replica_kms_key_id=None)
    name = unique_name("ferry") + "/endpoints/c/e1"
    arn = store_a.create(name, Credentials("u", password="pw-1"), tags={"ferry:customer_id": "c"})
    assert region_of(arn) == A
    replica = clients[B].describe_secret(SecretId=in_region(arn, B))
    assert replica["Name"] == name and replica["PrimaryRegion"] == A
    # the premise: region B's Secrets Manager does not answer for region A's ARN
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        clients[B].get_secret_value(SecretId=arn)

    reader_b = SecretsReader(clients[B], clients=lambda region: pytest.fail(f"asked {region}"))
    assert reader_b.read(arn)["password"] == "pw-1"  # region A not asked

    # region B's API takes a rotation: written to the primary (A), seen in B's replica
    store_b = SecretsManagerStore(clients[B], replica_regions=[A])
    write = store_b.put(arn, Credentials("u", password="pw-2"))
    assert reader_b.read(arn, fresh=True)["password"] == "pw-2"
    store_b.revert(write)
    assert reader_b.read(arn, fresh=True)["password"] == "pw-1"

    # retire through region B: replica removed, then the primary deleted
    store_b.delete(arn)
    assert _missing(clients[A], arn) and _missing(clients[B], in_region(arn, B))
    with pytest.raises(CredentialsUnavailable):
        SecretsReader(clients[B]).read(arn, fresh=True)


def test_a_reader_falls_back_to_the_primary_without_a_replica(clients: dict[str, Any]) -> None:
    """A secret from before replication (or a replica not there yet) is read in its primary
    region, through a client the reader builds for it on the same endpoint."""
    store_a = SecretsManagerStore(clients[A])  # one region: no replica
    arn = store_a.create(unique_name("ferry") + "/e", Credentials("u", password="pw"), tags={})
    assert _missing(clients[B], in_region(arn, B))
    assert SecretsReader(clients[B]).read(arn)["password"] == "pw"
    store_a.delete(arn)  # no replicas to remove
    assert _missing(clients[A], arn)


def test_webhook_signing_secrets_are_replicated_and_read_in_either_region(
    clients: dict[str, Any],
) -> None:
    from services.notifications.adapters import SecretsManagerSigningSecrets

    store_a = SecretsManagerSigningSecrets(clients[A], replica_regions=[B])
    arn = store_a.create(unique_name("ferry") + "/subscriptions/c/s1", "whsec-1", tags={})
    store_b = SecretsManagerSigningSecrets(
        clients[B], replica_regions=[A], clients=lambda region: pytest.fail(f"asked {region}")
    )
    assert store_b.read(arn) == "whsec-1"  # B's replica; region A not asked
    # a subscription removed through region B: the primary (A) loses its replica, then itself
    SecretsManagerSigningSecrets(clients[B], replica_regions=[A]).delete(arn)
    assert _missing(clients[A], arn) and _missing(clients[B], in_region(arn, B))
    # one region: no replica, read and deleted in place
    single = SecretsManagerSigningSecrets(clients[A])
    arn = single.create(unique_name("ferry") + "/subscriptions/c/s2", "whsec-2", tags={})
    assert SecretsManagerSigningSecrets(clients[B]).read(arn) == "whsec-2"  # via the primary
    single.delete(arn)
    assert _missing(clients[A], arn)
