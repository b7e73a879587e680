"""Secrets Manager adapter (and its in-memory fake) for the endpoints service, and the endpoint
usage reader (jobs and routes read models) that guards retirement."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any

from services.endpoints.application import Credentials, EndpointUsage, SecretStore, SecretWrite

__all__ = [
    "NOT_FINAL_JOB_STATUSES",
    "InMemoryEndpointUsage",
    "InMemorySecretStore",
    "ReadModelEndpointUsage",
    "SecretsManagerStore",
]

NOT_FINAL_JOB_STATUSES = ("RECEIVED", "QUEUED", "RUNNING", "VERIFYING")


class ReadModelEndpointUsage(EndpointUsage):
    """Jobs that are not final (jobs read model, GSI ``customer-status-index``: one query per
    non-final status, ``customer_status = <customer>#<STATUS>``) and enabled routes (routes
    read model, GSI ``customer-index``) naming the endpoint as source or target.

    Staleness: both read models are folded from the event stream by SQS consumers, so a job
    submitted or a route created less than the projection delay (typically < 1 s, minutes
    only when the consumers are down) before the retire is not seen. That is safe: a retired
    endpoint is RETIRED in the endpoints read model, so POST /transfers refuses it (not
    ACTIVE) and the executor fails such a job with a clear code instead of moving bytes."""

    def __init__(
        self, jobs_table: str, routes_table: str | None, client: Any = None, *, limit: int = 50
    ) -> None:
        self._given = client
        self._jobs = jobs_table
        self._routes = routes_table
        self._limit = limit

    @property
    def _client(self) -> Any:
        if self._given is None:
            import boto3

            self._given = boto3.client("dynamodb")
        return self._given

    def users(self, customer_id: str, endpoint_id: str) -> list[str]:
        found: list[str] = []
        names = {"#s": "source", "#t": "target", "#e": "endpoint_id"}
        for status in NOT_FINAL_JOB_STATUSES:
            kwargs: dict[str, Any] = {
                "TableName": self._jobs,
                "IndexName": "customer-status-index",
                "KeyConditionExpression": "customer_status = :cs",
                "FilterExpression": "#s.#e = :e OR #t.#e = :e",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {
                    ":cs": {"S": f"{customer_id}#{status}"},
                    ":e": {"S": endpoint_id},
                },
                "ProjectionExpression": "job_id",
            }
            for page in self._client.get_paginator("query").paginate(**kwargs):
                found += [f"job {i['job_id']['S']} ({status})" for i in page.get("Items", [])]
                if len(found) >= self._limit:
                    return found
        if not self._routes:
            return found
        kwargs = {
            "TableName": self._routes,
            "IndexName": "customer-index",
            "KeyConditionExpression": "customer_id = :c",
            "ExpressionAttributeValues": {":c": {"S": customer_id}},
        }
        from events.dynamodb_values import deserialize

        for page in self._client.get_paginator("query").paginate(**kwargs):
            for raw in page.get("Items", []):
                item = deserialize(raw)
                if item.get("sk") != "route" or not item.get("enabled"):
                    continue
                definition = item.get("definition") or {}
                ids = {(definition.get("source") or {}).get("endpoint_id")}
                ids |= {(t or {}).get("endpoint_id") for t in definition.get("targets") or []}
                if endpoint_id in ids:
                    found.append(f"enabled route {item.get('route_id')}")
        return found


class InMemoryEndpointUsage(EndpointUsage):
    """A fake: ``uses[(customer_id, endpoint_id)]`` = the descriptions to report."""

    def __init__(self) -> None:
        self.uses: dict[tuple[str, str], list[str]] = {}

    def users(self, customer_id: str, endpoint_id: str) -> list[str]:
        return list(self.uses.get((customer_id, endpoint_id), []))


class SecretsManagerStore(SecretStore):
    """Endpoint credentials as JSON SecretStrings in AWS Secrets Manager."""

    def __init__(self, client: Any = None, *, kms_key_id: str | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("secretsmanager")
        self._client = client
        self._kms_key_id = kms_key_id

    def create(self, name: str, value: Credentials, *, tags: Mapping[str, str]) -> str:
        kwargs: dict[str, Any] = {
            "Name": name,
            "SecretString": value.secret_string(),
            "Description": "Ferry endpoint credentials",
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        }
        if self._kms_key_id:
            kwargs["KmsKeyId"] = self._kms_key_id
        return str(self._client.create_secret(**kwargs)["ARN"])

    def put(self, arn: str, value: Credentials) -> SecretWrite:
        previous = self._current_version(arn)
        response = self._client.put_secret_value(SecretId=arn, SecretString=value.secret_string())
        return SecretWrite(arn=arn, version_id=response["VersionId"], previous_version_id=previous)

    def revert(self, write: SecretWrite) -> None:
        if write.previous_version_id is None:
            return
        self._client.update_secret_version_stage(
            SecretId=write.arn,
            VersionStage="AWSCURRENT",
            MoveToVersionId=write.previous_version_id,
            RemoveFromVersionId=write.version_id,
        )

    def delete(self, arn: str) -> None:
        self._client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)

    def _current_version(self, arn: str) -> str | None:
        stages = self._client.describe_secret(SecretId=arn).get("VersionIdsToStages", {})
        for version_id, labels in stages.items():
            if "AWSCURRENT" in labels:
                return str(version_id)
        return None


class InMemorySecretStore(SecretStore):
    """A fake for unit tests: versions per secret, the current one last. ``fail_next`` makes
    the next call of that method raise (to exercise the undo paths)."""

    def __init__(self, *, account: str = "123456789012", region: str = "us-east-1") -> None:
        self._prefix = f"arn:aws:secretsmanager:{region}:{account}:secret:"
        self._lock = threading.Lock()
        self.names: dict[str, str] = {}  # arn -> name
        self.versions: dict[str, list[tuple[str, dict[str, str | None]]]] = {}
        self.current: dict[str, str] = {}  # arn -> version id
        self.tags: dict[str, dict[str, str]] = {}
        self.deleted: list[str] = []
        self.fail_next: set[str] = set()

    def _maybe_fail(self, method: str) -> None:
        if method in self.fail_next:
            self.fail_next.discard(method)
            raise RuntimeError(f"injected {method} failure")

    def create(self, name: str, value: Credentials, *, tags: Mapping[str, str]) -> str:
        with self._lock:
            self._maybe_fail("create")
            if name in self.names.values():
                raise RuntimeError(f"secret {name} exists")
            arn = f"{self._prefix}{name}-{uuid.uuid4().hex[:6]}"
            version = uuid.uuid4().hex
            self.names[arn] = name
            self.versions[arn] = [(version, value.secret_value())]
            self.current[arn] = version
            self.tags[arn] = dict(tags)
            return arn

    def put(self, arn: str, value: Credentials) -> SecretWrite:
        with self._lock:
            self._maybe_fail("put")
            previous = self.current[arn]
            version = uuid.uuid4().hex
            self.versions[arn].append((version, value.secret_value()))
            self.current[arn] = version
            return SecretWrite(arn=arn, version_id=version, previous_version_id=previous)

    def revert(self, write: SecretWrite) -> None:
        with self._lock:
            self._maybe_fail("revert")
            if write.previous_version_id is not None:
                self.current[write.arn] = write.previous_version_id

    def delete(self, arn: str) -> None:
        with self._lock:
            self._maybe_fail("delete")
            self.names.pop(arn, None)
            self.versions.pop(arn, None)
            self.current.pop(arn, None)
            self.deleted.append(arn)

    # --- for tests ---------------------------------------------------------------------------
    def value(self, arn: str) -> dict[str, str | None]:
        """The current value of a secret."""
        version = self.current[arn]
        return next(v for vid, v in self.versions[arn] if vid == version)

    def all_values(self) -> list[str]:
        """Every secret string ever written (to search for leaks)."""
        return [
            str(s)
            for versions in self.versions.values()
            for _, value in versions
            for k, s in value.items()
            if s and k != "username"
        ]
