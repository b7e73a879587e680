"""The executor's boto3 adapters: S3 (with error mapping), the endpoint semaphore (leases
table), the job status reader (jobs read model), the SQS queue, and endpoint access.

This is the only executor module (besides ``sftp.py``) that touches boto3.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from services.executor import errors

log = logging.getLogger(__name__)

_BOTO_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"},
    max_pool_connections=32,
    connect_timeout=10,
    read_timeout=60,
    tcp_keepalive=True,
    # Ferry checks integrity itself (chunk sha256, part MD5 ETags); botocore's default
    # CRC on every request/response costs CPU and rejects composite checksums of copies.
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
    # Uploads carry their own per-part ChecksumSHA256 (services/executor/transfer/s3.py): sign
    # UNSIGNED-PAYLOAD instead of hashing every body for SigV4 (botocore otherwise always
    # hashes the payload over plain HTTP, and over HTTPS without a checksum header).
    s3={"payload_signing_enabled": False},
)

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
_DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId"}
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "503"}
_EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


def s3_error(exc: BaseException, what: str) -> errors.TransferError:
    """Map a boto3/botocore exception to the executor's taxonomy (message without secrets)."""
    if isinstance(exc, errors.TransferError):
        return exc
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        msg = f"{what}: S3 {code or status}"
        if code in _NOT_FOUND:
            return errors.SourceNotFound(msg)
        if code in _DENIED:
            return errors.PermissionDenied(msg)
        if code in _EXISTS:
            return errors.TargetExists(msg)
        if code in _THROTTLED:
            return errors.Throttled(msg)
        if status >= 500 or code in {"InternalError", "ServiceUnavailable", "RequestTimeout"}:
            return errors.RemoteServerError(msg)
        return errors.TransferError(msg, code=f"S3_{code or status}".upper(), transient=False)
    if isinstance(exc, ReadTimeoutError):
        return errors.TransferTimeout(f"{what}: S3 timed out")
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | ConnectionError):
        return errors.ConnectionFailed(f"{what}: S3 connection failed")
    if isinstance(exc, BotoCoreError | OSError):
        return errors.ConnectionFailed(f"{what}: {type(exc).__name__}")
    return errors.TransferError(f"{what}: {type(exc).__name__}", code="INTERNAL", transient=False)


def s3_client(region: str | None = None) -> Any:
    return boto3.client("s3", region_name=region, config=_BOTO_CONFIG)


def md5_etag_of_parts(part_etags: list[str]) -> str:
    """The ETag S3 gives a multipart object whose parts have these (MD5) ETags."""
    digest = hashlib.md5(b"".join(bytes.fromhex(e.strip('"')) for e in part_etags))
    return f"{digest.hexdigest()}-{len(part_etags)}"


def is_md5_etag(etag: str | None) -> bool:
    e = (etag or "").strip('"')
    return len(e) == 32 and all(c in "0123456789abcdef" for c in e)


def sha256_from_checksum(value: str | None) -> str | None:
    """A full-object ChecksumSHA256 (base64) as hex; None for composite ones (``...-N``)."""
    if not value or "-" in value:
        return None
    try:
        return base64.b64decode(value).hex()
    except ValueError:
        return None


def iter_body(body: Any, size: int) -> Iterator[bytes]:
    """Read a botocore StreamingBody in pieces of ``size`` bytes (the last shorter). A read
    that returns the whole piece is passed on as it is (no copy: pieces are whole chunks)."""
    buf = bytearray()
    while True:
        data = body.read(size - len(buf))
        if not data:
            break
        if not buf and len(data) == size:
            yield data
            continue
        buf += data
        if len(buf) >= size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


# --- endpoint semaphore -----------------------------------------------------------------------
def create_leases_table(client: Any, table_name: str) -> None:
    """The endpoint semaphore table: pk endpoint_id (S), sk slot (N); TTL on ``ttl``."""
    try:
        client.create_table(
            TableName=table_name,
            AttributeDefinitions=[
                {"AttributeName": "endpoint_id", "AttributeType": "S"},
                {"AttributeName": "slot", "AttributeType": "N"},
            ],
            KeySchema=[
                {"AttributeName": "endpoint_id", "KeyType": "HASH"},
                {"AttributeName": "slot", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        return
    client.get_waiter("table_exists").wait(TableName=table_name)
    try:
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
        )
    except ClientError:  # pragma: no cover - optional
        pass


class DynamoSemaphore:
    """Per-endpoint counting semaphore across every executor. Each slot is a lease item
    (``endpoint_id``, ``slot``) taken with a conditional put when free or expired, renewed by
    the heartbeat and deleted on release; a dead holder's slot frees itself at expiry."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table = table_name
        self.client = client or boto3.client("dynamodb", config=_BOTO_CONFIG)

    def try_acquire(
        self,
        endpoint_id: str,
        limit: int,
        holder: str,
        lease_seconds: float,
        skip: Collection[int] = (),
    ) -> int | None:
        """A free (or expired, or already ours) slot below ``limit``; ``skip``: slots this
        holder has already (to take another one)."""
        now = time.time()
        for slot in range(max(1, limit)):
            if slot in skip:
                continue
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item={
                        "endpoint_id": {"S": endpoint_id},
                        "slot": {"N": str(slot)},
                        "holder": {"S": holder},
                        "expires_at": {"N": f"{now + lease_seconds:.3f}"},
                        "ttl": {"N": str(int(now + lease_seconds + 3600))},
                    },
                    ConditionExpression="attribute_not_exists(endpoint_id) OR expires_at < :now OR holder = :me",
                    ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}, ":me": {"S": holder}},
                )
                return slot
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        return None

    def renew(self, endpoint_id: str, slot: int, holder: str, lease_seconds: float) -> bool:
        now = time.time()
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"endpoint_id": {"S": endpoint_id}, "slot": {"N": str(slot)}},
                UpdateExpression="SET expires_at = :exp, #ttl = :ttl",
                ConditionExpression="holder = :me",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":exp": {"N": f"{now + lease_seconds:.3f}"},
                    ":ttl": {"N": str(int(now + lease_seconds + 3600))},
                    ":me": {"S": holder},
                },
            )
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False

    def release(self, endpoint_id: str, slot: int, holder: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={"endpoint_id": {"S": endpoint_id}, "slot": {"N": str(slot)}},
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": {"S": holder}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def holders(self, endpoint_id: str) -> int:
        """How many transfers hold live slots of the endpoint (a holder may hold several):
        what an endpoint's bandwidth cap is divided by (transfer/throttle.py)."""
        now = f"{time.time():.3f}"
        found: set[str] = set()
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "endpoint_id = :e",
            "FilterExpression": "expires_at > :now",
            "ProjectionExpression": "holder",
            "ExpressionAttributeValues": {":e": {"S": endpoint_id}, ":now": {"N": now}},
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**kwargs)
            found.update(item["holder"]["S"] for item in page.get("Items", []) if "holder" in item)
            if "LastEvaluatedKey" not in page:
                return len(found)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# --- job read model ----------------------------------------------------------------------------
class DynamoJobStatus:
    """Reads ``status`` from the jobs read model (None when the item is not there yet)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table = table_name
        self.client = client or boto3.client("dynamodb", config=_BOTO_CONFIG)

    def status(self, job_id: str) -> str | None:
        try:
            item = self.client.get_item(
                TableName=self.table,
                Key={"job_id": {"S": job_id}},
                ProjectionExpression="#s",
                ExpressionAttributeNames={"#s": "status"},
            ).get("Item")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        return item["status"]["S"] if item and "status" in item else None


# --- SQS -------------------------------------------------------------------------------------
@dataclass
class Message:
    body: str
    receipt_handle: str
    message_id: str
    #: SQS's ApproximateReceiveCount (this receive included): how close the message is to the
    #: DLQ's maxReceiveCount (services/executor/daily_budget.py starts a fresh copy in time)
    receive_count: int = 1


class SqsQueue:
    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.url = queue_url
        self.client = client or boto3.client("sqs", config=_BOTO_CONFIG)

    def receive(self, max_messages: int, wait_seconds: int) -> list[Message]:
        resp = self.client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["ApproximateReceiveCount"],
        )
        return [
            Message(
                m["Body"],
                m["ReceiptHandle"],
                m["MessageId"],
                int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            )
            for m in resp.get("Messages", [])
        ]

    def delete(self, message: Message) -> None:
        self.client.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt_handle)

    def extend(self, message: Message, seconds: int) -> None:
        self.client.change_message_visibility(
            QueueUrl=self.url,
            ReceiptHandle=message.receipt_handle,
            VisibilityTimeout=max(0, min(int(seconds), 43200)),
        )

    def requeue(self, messages: list[Message], delays: list[int] | None = None) -> list[Message]:
        """Each message back at the end of the queue as a fresh copy (same body, a receive
        count of its own; visible after its delay, 0-900 s), then the original deleted: a job
        that waits its customer's turn never climbs toward the DLQ's maxReceiveCount. Batches
        of 10. Returns the messages whose copy was not sent (their originals are still held).
        A failed delete leaves a duplicate, which the executor drops or leases as any
        redelivery."""
        unsent: list[Message] = []
        waits = delays or [0] * len(messages)
        for start in range(0, len(messages), 10):
            batch = messages[start : start + 10]
            sent = self.client.send_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": m.body,
                        "DelaySeconds": max(0, min(900, int(waits[start + i]))),
                    }
                    for i, m in enumerate(batch)
                ],
            )
            ok = {int(e["Id"]) for e in sent.get("Successful", [])}
            unsent += [m for i, m in enumerate(batch) if i not in ok]
            if ok:
                deleted = self.client.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m.receipt_handle}
                        for i, m in enumerate(batch)
                        if i in ok
                    ],
                )
                for failure in deleted.get("Failed", []):
                    log.warning("requeued message %s left a duplicate: %s", failure.get("Id"),
                                failure.get("Code"))  # fmt: skip
        return unsent

    def send(self, body: dict[str, Any] | str) -> None:
        self.client.send_message(
            QueueUrl=self.url, MessageBody=body if isinstance(body, str) else json.dumps(body)
        )


# --- endpoints ---------------------------------------------------------------------------------
class EndpointAccess:
    """The engine's endpoint port over ``endpoint_access`` (read model + Secrets Manager)."""

    def __init__(
        self, directory: Any, secrets: Any, *, sftp_timeout: float = 20.0, s3_access: Any = None
    ) -> None:
        from services.executor.endpoint_access import S3Access

        self.directory = directory
        self.secrets = secrets
        self.sftp_timeout = sftp_timeout
        # every S3 client of a customer endpoint comes from S3Access (assumed role, or Ferry's
        # credentials for a granted bucket only); s3(None) is Ferry's own (staging)
        self.s3_access = s3_access or S3Access(config=_BOTO_CONFIG)

    def get(self, endpoint_id: str) -> Any:
        from services.executor.ports import Endpoint

        view = self.directory.get(endpoint_id)
        if view is None:
            raise errors.InvalidConfiguration(f"endpoint {endpoint_id} not found")
        if str(getattr(view.status, "value", view.status)) == "RETIRED":
            raise errors.InvalidConfiguration(
                f"endpoint {endpoint_id} is retired", code="ENDPOINT_RETIRED"
            )
        cfg = view.config
        return Endpoint(
            endpoint_id=view.endpoint_id,
            type=str(view.type.value if hasattr(view.type, "value") else view.type),
            max_concurrency=int(view.max_concurrency or 1),
            bucket=cfg.bucket,
            prefix=cfg.prefix,
            base_path=cfg.base_path,
            kms_key_id=cfg.kms_key_id,
            bandwidth_limit=getattr(view, "bandwidth_limit", None),
            raw=view,
        )

    def resolve(self, endpoint: Any, path: str) -> str:
        from services.executor.endpoint_access import resolve_path

        return resolve_path(endpoint.raw, path)

    def sftp(self, endpoint: Any) -> Any:
        from services.executor.endpoint_access import open_sftp

        return open_sftp(endpoint.raw, self.secrets, self.sftp_timeout)

    def s3(self, endpoint: Any | None) -> Any:
        if endpoint is None:
            return self.s3_access.ferry_client(None)
        return self.s3_access.client_for(endpoint.raw)
