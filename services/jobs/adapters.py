"""DynamoDB adapters of the jobs service's ports (the only boto3 in services/jobs)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from events.contract import EndpointType
from events.dynamodb_values import deserialize
from services.jobs.ports import (
    EndpointInfo,
    IdempotencyRecord,
    IdempotencyStore,
    QueuedJobs,
    SourceIdentity,
)
from services.jobs.sla import SlowWatch, minute_of

log = logging.getLogger(__name__)


def _client(client: Any) -> Any:
    if client is not None:
        return client
    import boto3

    return boto3.client("dynamodb")


def create_idempotency_table(client: Any, table_name: str) -> bool:
    """Create the idempotency table (pk ``id``; TTL attribute ``expiration``). False if it exists."""
    try:
        client.create_table(
            TableName=table_name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except client.exceptions.ResourceInUseException:
        return False
    client.get_waiter("table_exists").wait(TableName=table_name)
    try:
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
        )
    except ClientError:
        pass  # TTL is housekeeping only: expiry is enforced by the claim's condition
    return True


class DynamoIdempotencyStore(IdempotencyStore):
    """Idempotency keys as conditional puts on the ``<prefix>-idempotency`` table.

    A claim succeeds when no item exists or the existing one has expired
    (``attribute_not_exists(id) OR expiration < :now``; DynamoDB's TTL deletion is lazy, so
    expiry is checked here, not left to TTL). DynamoDB serialises writes to one item, so two
    concurrent claims of one key cannot both succeed.
    """

    def __init__(
        self, table_name: str, client: Any = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._table = table_name
        self._client = _client(client)
        self._clock = clock

    def claim(
        self, key: str, record: IdempotencyRecord, ttl_seconds: float
    ) -> tuple[IdempotencyRecord, bool]:
        for _ in range(5):
            now = self._clock()
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item={
                        "id": {"S": key},
                        "job_id": {"S": record.job_id},
                        "request_hash": {"S": record.request_hash},
                        "spec": {"S": json.dumps(record.spec, sort_keys=True)},
                        "expiration": {"N": str(int(now + ttl_seconds))},
                        "expires_at": {"N": repr(now + ttl_seconds)},
                        "created_at": {"S": datetime.now(UTC).isoformat()},
                    },
                    ConditionExpression="attribute_not_exists(#id) OR #exp < :now",
                    ExpressionAttributeNames={"#id": "id", "#exp": "expires_at"},
                    ExpressionAttributeValues={":now": {"N": repr(now)}},
                )
                return record, True
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
            item = self._client.get_item(
                TableName=self._table, Key={"id": {"S": key}}, ConsistentRead=True
            ).get("Item")
            if item is None:
                continue  # deleted (TTL) between the put and the get: claim again
            plain = deserialize(item)
            return (
                IdempotencyRecord(
                    job_id=str(plain["job_id"]),
                    request_hash=str(plain["request_hash"]),
                    spec=json.loads(plain["spec"]),
                ),
                False,
            )
        raise RuntimeError(f"could not claim idempotency key {key!r}")  # pragma: no cover


class EndpointSourceIdentity(SourceIdentity):
    """Looks the source up through the executor's endpoint access (the same clients, the same
    per-endpoint credentials and network policy as a transfer): S3 HeadObject → ETag and
    VersionId; SFTP stat → size and mtime. Any failure → None (dedupe by the request alone)."""

    def __init__(self, endpoints_table: str, *, timeout: float = 10.0) -> None:
        self._table = endpoints_table
        self._timeout = timeout
        self._access: tuple[Any, Any] | None = None  # (directory, secrets), built on first use

    def identify(self, endpoint: EndpointInfo, path: str) -> str | None:
        from services.executor.endpoint_access import (
            DynamoEndpointDirectory,
            SecretsReader,
            open_sftp,
            resolve_path,
            s3_client_for,
        )

        try:
            if self._access is None:
                self._access = (DynamoEndpointDirectory(self._table), SecretsReader())
            directory, secrets = self._access
            view = directory.get(endpoint.endpoint_id)
            if view is None or view.customer_id != endpoint.customer_id:
                return None
            remote = resolve_path(view, path)
            if view.type == EndpointType.S3:
                head = s3_client_for(view).head_object(Bucket=view.config.bucket, Key=remote)
                identity = f"etag={head.get('ETag', '')}"
                if head.get("VersionId") and head["VersionId"] != "null":
                    identity += f";version={head['VersionId']}"
                return identity
            session = open_sftp(view, secrets, self._timeout)
            try:
                st = session.stat(remote)
            finally:
                session.close()
            if st is None or st.is_dir:
                return None
            return f"size={int(st.size)};mtime={int(st.mtime)}"
        except Exception:  # unreachable, missing, denied: say so, never fail the submit
            return None


class DynamoSlowWatch(SlowWatch):
    """The slow watch (services/jobs/sla.py) on the idempotency table: one item per due
    minute (``slow-watch#<minute>``, a string set of job ids, expiring after 14 days) and a
    cursor item (``slow-watch#cursor``: the last minute every job of which was looked at), so
    a run reads only the minutes since the last one — also after a late or missed run."""

    CURSOR = "slow-watch#cursor"
    FIRST_LOOKBACK_MINUTES = 24 * 60
    MAX_CATCH_UP_MINUTES = 7 * 24 * 60

    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = _client(client)

    @staticmethod
    def _key(bucket: int) -> dict[str, Any]:
        return {"id": {"S": f"slow-watch#{bucket}"}}

    def watch(self, job_id: str, due_at: datetime) -> None:
        bucket = minute_of(due_at)
        self._client.update_item(
            TableName=self._table,
            Key=self._key(bucket),
            UpdateExpression="ADD jobs :j SET expiration = :e",
            ExpressionAttributeValues={
                ":j": {"SS": [job_id]},
                ":e": {"N": str(bucket * 60 + 14 * 86400)},
            },
        )

    def due(self, now: datetime) -> list[tuple[int, list[str]]]:
        current = minute_of(now)
        raw = self._client.get_item(
            TableName=self._table, Key={"id": {"S": self.CURSOR}}, ConsistentRead=True
        ).get("Item")
        start = int(raw["minute"]["N"]) + 1 if raw else current - self.FIRST_LOOKBACK_MINUTES
        start = max(start, current - self.MAX_CATCH_UP_MINUTES)
        found: list[tuple[int, list[str]]] = []
        buckets = list(range(start, current))
        for at in range(0, len(buckets), 100):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [self._key(b) for b in buckets[at : at + 100]],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    bucket = int(item["id"]["S"].rsplit("#", 1)[1])
                    found.append((bucket, sorted(item.get("jobs", {}).get("SS", []))))
                request = response.get("UnprocessedKeys") or {}
        return sorted(found)

    def done(self, bucket: int) -> None:
        self._client.delete_item(TableName=self._table, Key=self._key(bucket))

    def checked_until(self, bucket: int) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={"id": {"S": self.CURSOR}, "minute": {"N": str(bucket)}},
                ConditionExpression="attribute_not_exists(id) OR #m < :m",
                ExpressionAttributeNames={"#m": "minute"},
                ExpressionAttributeValues={":m": {"N": str(bucket)}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            pass  # another checker got further already


#: The jobs read model's status index (its definition: services/projections/tables.py, which
#: this service may not import; tests/integration/test_queued_limit.py runs on that definition)
JOBS_CUSTOMER_STATUS_INDEX = "customer-status-index"
WAITING_STATUSES = ("RECEIVED", "QUEUED")


class DynamoQueuedJobs(QueuedJobs):
    """Counts on the read model's ``customer-status-index`` (partition ``<customer>#<status>``),
    ``Select=COUNT`` with ``Limit``: one or two small queries per submission. A failed read
    counts 0 (logged): the limit never refuses a transfer because the read model is down."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table = table_name
        self.client = _client(client)

    def count(self, customer_id: str, at_most: int) -> int:
        total = 0
        for status in WAITING_STATUSES:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": JOBS_CUSTOMER_STATUS_INDEX,
                "KeyConditionExpression": "customer_status = :p",
                "ExpressionAttributeValues": {":p": {"S": f"{customer_id}#{status}"}},
                "Select": "COUNT",
            }
            while total < at_most:
                kwargs["Limit"] = at_most - total
                try:
                    page = self.client.query(**kwargs)
                except (ClientError, BotoCoreError) as exc:  # never refuse on a failed read
                    log.warning("queued jobs of %s not counted: %r", customer_id, exc)
                    return 0
                total += int(page.get("Count", 0))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return min(total, at_most)
