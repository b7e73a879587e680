"""Endpoint secrets across regions (active-active, docs/multi-region.md §8).

Secrets Manager is regional. In active-active the endpoints service creates each endpoint's
secret in its own region (the *primary*) with a replica in every peer region
(``AddReplicaRegions``). A replica's ARN is the primary's with the region replaced [1], and it
is read-only: a new value is written to the primary and Secrets Manager copies it to the
replicas. So:

- readers (the executor, the validator, the routes scanner, the jobs API's checks; the
  notifier for webhook signing secrets) read the replica in their own region, and the primary
  only if the replica is not there yet (replication is asynchronous in AWS):
  ``SecretsClients.candidates``. A region failure leaves every surviving region able to read
  every secret;
- writers (rotation, its undo, deletion) go to the region the ARN names
  (``SecretsClients.for_arn``), whichever region's API took the command; deletion removes the
  replicas first (``delete_everywhere``).

[1] "The ARN for a replicated secret is the same as the primary secret except for the Region",
    https://docs.aws.amazon.com/secretsmanager/latest/userguide/create-manage-multi-region-secrets.html
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings

from ferry import names

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class SecretReplicaSettings(BaseSettings):
    """The replica regions of the secrets a service creates (a mixin of its settings model)."""

    secrets_replica_regions: str = Field(
        default="",
        validation_alias=AliasChoices(names.ENV_SECRETS_REPLICA_REGIONS, "secrets_replica_regions"),
        description="Active-active: the peer regions every new secret is replicated to "
        "(AddReplicaRegions), comma-separated. Empty: one region.",
    )
    secrets_replica_kms_key_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            names.ENV_SECRETS_REPLICA_KMS_KEY_ID, "secrets_replica_kms_key_id"
        ),
        description="The replicas' KMS key, as each replica region resolves it (an alias: "
        "alias/<prefix>-data); unset: aws/secretsmanager.",
    )

    @field_validator("secrets_replica_regions")
    @classmethod
    def _valid_regions(cls, value: str) -> str:
        for item in (r.strip() for r in value.split(",")):
            if item and not _REGION.match(item):
                raise ValueError(
                    f"{names.ENV_SECRETS_REPLICA_REGIONS}: {item!r} is not a region name"
                )
        return value

    def replicas(self, own: str | None) -> tuple[str, ...]:
        """The replica regions, without ``own`` (this deployment's region)."""
        found = (r.strip() for r in self.secrets_replica_regions.split(","))
        return tuple(dict.fromkeys(r for r in found if r and r != own))


def region_of(arn: str) -> str | None:
    """``arn:aws:secretsmanager:<region>:...`` → ``<region>`` (None for a name, not an ARN)."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "secretsmanager" or not parts[3]:
        return None
    return parts[3]


def in_region(arn: str, region: str) -> str:
    """The ARN of ``arn``'s replica in ``region`` (``arn`` itself when it is not an ARN)."""
    parts = arn.split(":", 5)
    if region_of(arn) is None:
        return arn
    parts[3] = region
    return ":".join(parts)


def client_region(client: Any) -> str | None:
    """The region a boto3 client was built for (None for a fake without ``meta``)."""
    region = getattr(getattr(client, "meta", None), "region_name", None)
    return str(region) if region else None


def _local_endpoint(client: Any) -> str | None:
    """The client's endpoint URL when it is not AWS's own (moto server): a client for another
    region must reach the same server; in AWS each region has its own endpoint."""
    url = getattr(getattr(client, "meta", None), "endpoint_url", None)
    if not url:
        return None
    host = urlparse(str(url)).hostname or ""
    if host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws")):
        return None
    return str(url)


class SecretsClients:
    """Secrets Manager clients by region: the given one for its own region, and one built on
    first use for each other region an ARN names (``factory(region)``, by default boto3's
    client for that region, on the same local endpoint as the given client if it has one)."""

    def __init__(self, client: Any, factory: Callable[[str], Any] | None = None) -> None:
        self.own = client
        self.region = client_region(client)
        self._factory = factory or self._boto3
        self._lock = threading.Lock()
        self._by_region: dict[str, Any] = {}

    def _boto3(self, region: str) -> Any:
        import boto3

        endpoint = _local_endpoint(self.own)
        if endpoint:
            return boto3.client("secretsmanager", region_name=region, endpoint_url=endpoint)
        return boto3.client("secretsmanager", region_name=region)

    def for_region(self, region: str | None) -> Any:
        if region is None or self.region is None or region == self.region:
            return self.own
        with self._lock:
            found = self._by_region.get(region)
            if found is None:
                found = self._by_region[region] = self._factory(region)
            return found

    def for_arn(self, arn: str) -> Any:
        """The client of the region ``arn`` names (the primary's, for a write)."""
        return self.for_region(region_of(arn))

    def candidates(self, arn: str) -> list[tuple[str | None, str]]:
        """Where to read ``arn``, in order: (region, secret id) of this region's replica, then
        of the primary; just the secret itself when it lives in this region (region None:
        this client's). ``for_region`` gives each one's client."""
        own, named = self.region, region_of(arn)
        if own is None or named is None or named == own:
            return [(None, arn)]
        return [(own, in_region(arn, own)), (named, arn)]


def replica_kwargs(regions: Sequence[str], kms_key_id: str | None) -> dict[str, Any]:
    """CreateSecret's ``AddReplicaRegions`` for ``regions`` (nothing for none)."""
    if not regions:
        return {}
    key = {"KmsKeyId": kms_key_id} if kms_key_id else {}
    return {"AddReplicaRegions": [{"Region": r, **key} for r in regions]}


def failed_replicas(response: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(region, reason) of each replica CreateSecret could not make (readers there fall back to
    the primary)."""
    return [
        (str(r.get("Region")), str(r.get("StatusMessage")))
        for r in response.get("ReplicationStatus") or ()
        if r.get("Status") == "Failed"
    ]


def delete_everywhere(clients: SecretsClients, arn: str) -> None:
    """Delete the secret at once (no recovery window) in the primary's region, its replicas
    first (Secrets Manager refuses to delete a primary that has some)."""
    client = clients.for_arn(arn)
    replicas = client.describe_secret(SecretId=arn).get("ReplicationStatus") or ()
    regions = [str(r["Region"]) for r in replicas if r.get("Region")]
    if regions:
        client.remove_regions_from_replication(SecretId=arn, RemoveReplicaRegions=regions)
    client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


class ReplicatedSecrets:
    """What a service's Secrets Manager adapter shares (endpoint credentials, webhook signing
    secrets): its region's client, clients for the other regions, the secrets' KMS key and
    their replicas (none: one region)."""

    def __init__(
        self,
        client: Any,
        *,
        kms_key_id: str | None = None,
        replica_regions: Sequence[str] = (),
        replica_kms_key_id: str | None = None,
        clients: Callable[[str], Any] | None = None,
    ) -> None:
        self._client = client
        self._clients = SecretsClients(client, clients)
        self._kms_key_id = kms_key_id
        self._replicas = replica_kwargs(replica_regions, replica_kms_key_id)

    def _create(
        self, name: str, value: str, description: str, tags: Mapping[str, str]
    ) -> tuple[str, list[tuple[str, str]]]:
        """CreateSecret here, with the replicas; (its ARN, the replicas that failed)."""
        kwargs: dict[str, Any] = {
            "Name": name,
            "SecretString": value,
            "Description": description,
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            **self._replicas,
        }
        if self._kms_key_id:
            kwargs["KmsKeyId"] = self._kms_key_id
        response = self._client.create_secret(**kwargs)
        return str(response["ARN"]), failed_replicas(response)
