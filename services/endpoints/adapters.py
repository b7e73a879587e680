"""Secrets Manager adapter for the endpoints service, and the endpoint usage reader (jobs and
routes read models) that guards retirement. Their fakes: ``tests/support/fakes/endpoints.py``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger

from ferry.secret_regions import ReplicatedSecrets, delete_everywhere
from services.endpoints.application import Credentials, EndpointUsage, SecretStore, SecretWrite

__all__ = [
    "NOT_FINAL_JOB_STATUSES",
    "ReadModelEndpointUsage",
    "SecretsManagerStore",
]

logger = Logger(service="ferry-endpoints", child=True)

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


class SecretsManagerStore(ReplicatedSecrets, SecretStore):
    """Endpoint credentials as JSON SecretStrings in AWS Secrets Manager.

    ``replica_regions`` (active-active, ``ferry.secret_regions``): a new secret is created with
    a replica in each (``AddReplicaRegions``, encrypted with ``replica_kms_key_id`` as that
    region resolves it), so every region's executor reads it locally. A replica is read-only:
    rotation, its undo and deletion go to the region the secret's ARN names (the primary),
    whichever region's API took the command; deletion first removes the replicas (Secrets
    Manager refuses to delete a primary that has some)."""

    def __init__(self, client: Any = None, **kwargs: Any) -> None:
        if client is None:
            import boto3

            client = boto3.client("secretsmanager")
        super().__init__(client, **kwargs)

    def create(self, name: str, value: Credentials, *, tags: Mapping[str, str]) -> str:
        arn, failed = self._create(name, value.secret_string(), "Ferry endpoint credentials", tags)
        for region, reason in failed:  # readers there use the primary
            logger.warning(
                "endpoint secret not replicated", extra={"region": region, "reason": reason}
            )
        return arn

    def put(self, arn: str, value: Credentials) -> SecretWrite:
        previous = self._current_version(arn)
        response = self._clients.for_arn(arn).put_secret_value(
            SecretId=arn, SecretString=value.secret_string()
        )
        return SecretWrite(arn=arn, version_id=response["VersionId"], previous_version_id=previous)

    def revert(self, write: SecretWrite) -> None:
        if write.previous_version_id is None:
            return
        self._clients.for_arn(write.arn).update_secret_version_stage(
            SecretId=write.arn,
            VersionStage="AWSCURRENT",
            MoveToVersionId=write.previous_version_id,
            RemoveFromVersionId=write.version_id,
        )

    def delete(self, arn: str) -> None:
        delete_everywhere(self._clients, arn)

    def _current_version(self, arn: str) -> str | None:
        stages = (
            self._clients.for_arn(arn).describe_secret(SecretId=arn).get("VersionIdsToStages", {})
        )
        for version_id, labels in stages.items():
            if "AWSCURRENT" in labels:
                return str(version_id)
        return None
