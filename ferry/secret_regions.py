"""Endpoint secrets across regions (active-active, docs/multi-region.md §8).

Secrets Manager is regional. In active-active the endpoints service creates each endpoint's
secret in its own region (the *primary*) with a replica in every peer region
(``AddReplicaRegions``). A replica's ARN is the primary's with the region replaced [1], and it
is read-only: a new value is written to the primary and Secrets Manager copies it to the
replicas. So:

- readers (the executor, the validator, the routes scanner, the jobs API's checks) read the
  replica in their own region (``in_region``), and the primary only if the replica is not there
  yet (replication is asynchronous in AWS) — a region failure leaves every surviving region
  able to read every endpoint's credentials;
- writers (rotation, its undo, retire) go to the region the ARN names (``SecretsClients``),
  whichever region's API took the command.

[1] "The ARN for a replicated secret is the same as the primary secret except for the Region",
    https://docs.aws.amazon.com/secretsmanager/latest/userguide/create-manage-multi-region-secrets.html
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse


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
