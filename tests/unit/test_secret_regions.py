"""Endpoint secrets across regions (ferry/secret_regions.py) and the data plane's reader of them
(SecretsReader: the local replica first, the primary only while the replica is missing), with
fake per-region Secrets Manager clients."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ferry.secret_regions import SecretsClients, in_region, region_of
from services.endpoints.settings import EndpointsSettings
from services.executor.endpoint_access import CredentialsUnavailable, SecretsReader

PRIMARY = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ferry/endpoints/c/e1-AbCdEf"
REPLICA = "arn:aws:secretsmanager:us-west-2:123456789012:secret:ferry/endpoints/c/e1-AbCdEf"


class RegionalSecrets:
    """One region's Secrets Manager: the secrets it holds by ARN, the ARNs asked for."""

    def __init__(self, region: str, values: dict[str, dict[str, Any]] | None = None) -> None:
        self.meta = SimpleNamespace(region_name=region, endpoint_url=None)
        self.values = values or {}
        self.asked: list[str] = []
        self.fail: str | None = None  # an error code every call raises

    def get_secret_value(self, SecretId: str, VersionStage: str) -> dict[str, Any]:
        assert VersionStage == "AWSCURRENT"
        self.asked.append(SecretId)
        if self.fail:
            raise ClientError({"Error": {"Code": self.fail, "Message": "x"}}, "GetSecretValue")
        if SecretId not in self.values:
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "x"}}, "GetSecretValue"
            )
        return {"SecretString": json.dumps(self.values[SecretId])}


def test_arns_name_their_region_and_a_replica_differs_only_by_it() -> None:
    assert region_of(PRIMARY) == "us-east-1"
    assert in_region(PRIMARY, "us-west-2") == REPLICA
    assert in_region(REPLICA, "us-east-1") == PRIMARY
    # names and other services' ARNs are not rewritten
    assert region_of("ferry/endpoints/c/e1") is None
    assert in_region("ferry/endpoints/c/e1", "us-west-2") == "ferry/endpoints/c/e1"
    assert region_of("arn:aws:kms:us-east-1:123456789012:key/k") is None
    assert region_of("arn:secret") is None


def test_clients_by_region_build_each_other_region_once() -> None:
    own = RegionalSecrets("us-west-2")
    built: list[str] = []

    def factory(region: str) -> RegionalSecrets:
        built.append(region)
        return RegionalSecrets(region)

    clients = SecretsClients(own, factory)
    assert clients.for_arn(REPLICA) is own
    assert clients.for_arn("a-name") is own
    east = clients.for_arn(PRIMARY)
    assert east.meta.region_name == "us-east-1" and clients.for_arn(PRIMARY) is east
    assert built == ["us-east-1"]


def test_the_reader_uses_its_own_regions_replica() -> None:
    west = RegionalSecrets("us-west-2", {REPLICA: {"password": "pw"}})
    east = RegionalSecrets("us-east-1", {PRIMARY: {"password": "pw"}})
    reader = SecretsReader(west, clients=lambda region: {"us-east-1": east}[region])
    assert reader.read(PRIMARY)["password"] == "pw"
    assert west.asked == [REPLICA] and east.asked == []  # region A is not needed


def test_the_reader_falls_back_to_the_primary_while_the_replica_is_missing() -> None:
    west = RegionalSecrets("us-west-2")  # replication not there yet
    east = RegionalSecrets("us-east-1", {PRIMARY: {"password": "pw"}})
    reader = SecretsReader(west, clients=lambda region: east)
    assert reader.read(PRIMARY, version=1)["password"] == "pw"
    assert west.asked == [REPLICA] and east.asked == [PRIMARY]
    east.values.clear()
    with pytest.raises(CredentialsUnavailable, match="in us-west-2 and in us-east-1"):
        reader.read(PRIMARY, version=2)


def test_a_primary_in_the_readers_own_region_is_read_alone() -> None:
    east = RegionalSecrets("us-east-1")
    reader = SecretsReader(east, clients=lambda region: pytest.fail(f"asked {region}"))
    with pytest.raises(CredentialsUnavailable, match="ResourceNotFoundException"):
        reader.read(PRIMARY)
    assert east.asked == [PRIMARY]


def test_denied_is_not_retried_elsewhere_and_other_errors_propagate() -> None:
    west = RegionalSecrets("us-west-2", {REPLICA: {"password": "pw"}})
    east = RegionalSecrets("us-east-1", {PRIMARY: {"password": "pw"}})
    reader = SecretsReader(west, clients=lambda region: east)
    west.fail = "AccessDeniedException"
    with pytest.raises(CredentialsUnavailable, match="AccessDeniedException"):
        reader.read(PRIMARY)
    west.fail = "ThrottlingException"  # transient: the caller retries the job
    with pytest.raises(ClientError):
        reader.read(PRIMARY)
    assert east.asked == []


def test_replica_regions_setting() -> None:
    settings = EndpointsSettings(region="us-east-1", secrets_replica_regions="us-west-2, us-east-1")
    assert settings.replica_regions == ("us-west-2",)  # never its own region
    assert EndpointsSettings(region="us-east-1").replica_regions == ()
    with pytest.raises(ValueError, match="FERRY_SECRETS_REPLICA_REGIONS: 'mars' is not a region"):
        EndpointsSettings(secrets_replica_regions="us-west-2,mars")
