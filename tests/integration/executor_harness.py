"""A self-contained stack for executor tests: event table, leases table, endpoints and jobs
read-model tables (items written directly, in the documented shape), a Secrets Manager secret
with the sshd test user's key, S3 buckets (source, target, staging) and an SQS queue, all on
the session's moto server; plus helpers to queue jobs, run executors in-process or as
``python -m services.executor`` subprocesses, and read the Transfer stream."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from events.aggregate import transfer_stream_id
from events.contract import FerryEvent, Flow, JobQueued, JobSpec, Location, TransferOptions
from events.dynamodb import create_events_table
from events.translate import stream_events
from ferry.names import ResourceNames
from services.executor.adapters import Message, create_leases_table
from services.executor.bootstrap import bootstrap, build_executor
from services.executor.settings import ExecutorSettings
from services.executor.worker import Executor
from tests.support.moto_server import unique_name
from tests.support.sshd import SshdServer

KiB = 1024
MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _simple_table(client: Any, name: str, key: str) -> None:
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


class Stack:
    customer_id = "cust-test"

    def __init__(
        self, aws_env: dict[str, str], sshd: SshdServer | None, sftp_dir: Path | None
    ) -> None:
        self.aws_env = aws_env
        self.sshd = sshd
        self.sftp_dir = sftp_dir
        self.prefix = unique_name("fx")
        self.names = ResourceNames(self.prefix)
        self.ddb = boto3.client("dynamodb")
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.sm = boto3.client("secretsmanager")
        create_events_table(self.ddb, self.names.events_table)
        create_leases_table(self.ddb, self.names.leases_table)
        _simple_table(self.ddb, self.names.endpoints_table, "endpoint_id")
        _simple_table(self.ddb, self.names.jobs_table, "job_id")
        self.src_bucket = unique_name("src")
        self.dst_bucket = unique_name("dst")
        for bucket in (self.src_bucket, self.dst_bucket, self.names.staging_bucket):
            self.s3.create_bucket(Bucket=bucket)
        for bucket in (self.src_bucket, self.dst_bucket):  # granted to the customer (tenancy)
            self.s3.put_bucket_tagging(
                Bucket=bucket,
                Tagging={"TagSet": [{"Key": "ferry:customer", "Value": self.customer_id}]},
            )
        self.queue_url = self.sqs.create_queue(
            QueueName=self.names.executor_queue, Attributes={"VisibilityTimeout": "3"}
        )["QueueUrl"]
        self.s3_src = self.endpoint_s3(self.src_bucket)
        self.s3_dst = self.endpoint_s3(self.dst_bucket)
        self.sftp_ep = self.endpoint_sftp() if sshd is not None else ""

    # --- endpoints (read-model items written directly) --------------------------------------
    def _put_endpoint(
        self,
        endpoint_id: str,
        type_: str,
        config: dict[str, Any],
        *,
        max_concurrency: int,
        secret_arn: str | None,
    ) -> str:
        item: dict[str, Any] = {
            "endpoint_id": {"S": endpoint_id},
            "customer_id": {"S": self.customer_id},
            "name": {"S": f"ep-{endpoint_id[:6]}"},
            "type": {"S": type_},
            "direction": {"S": "BOTH"},
            "max_concurrency": {"N": str(max_concurrency)},
            "status": {"S": "ACTIVE"},
            "config": {
                "M": {
                    k: ({"N": str(v)} if isinstance(v, int) else {"S": str(v)})
                    for k, v in config.items()
                    if v is not None
                }
            },
            "version": {"N": "1"},
        }
        if secret_arn:
            item["secret_arn"] = {"S": secret_arn}
        self.ddb.put_item(TableName=self.names.endpoints_table, Item=item)
        return endpoint_id

    def endpoint_s3(self, bucket: str, prefix: str = "", max_concurrency: int = 10) -> str:
        return self._put_endpoint(
            str(uuid.uuid4()),
            "s3",
            {"type": "s3", "bucket": bucket, "prefix": prefix or None, "region": "us-east-1"},
            max_concurrency=max_concurrency,
            secret_arn=None,
        )

    def endpoint_sftp(
        self,
        *,
        max_concurrency: int = 10,
        secret: dict[str, Any] | None = None,
        host_key: str | None = None,
        base_path: str | None = None,
    ) -> str:
        assert self.sshd is not None
        endpoint_id = str(uuid.uuid4())
        value = secret or {
            "username": self.sshd.username,
            "private_key": self.sshd.private_key_text,
        }
        arn = self.sm.create_secret(
            Name=self.names.endpoint_secret_name(self.customer_id, endpoint_id),
            SecretString=json.dumps(value),
        )["ARN"]
        return self._put_endpoint(
            endpoint_id,
            "sftp",
            {
                "type": "sftp",
                "host": self.sshd.host,
                "port": self.sshd.port,
                "username": self.sshd.username,
                "base_path": base_path or str(self.sftp_dir),
                "host_key": host_key or self.sshd.host_key_line,
                "auth_method": "password" if "password" in value else "private_key",
            },
            max_concurrency=max_concurrency,
            secret_arn=arn,
        )

    def set_job_status(self, job_id: str, status: str) -> None:
        self.ddb.put_item(
            TableName=self.names.jobs_table,
            Item={"job_id": {"S": job_id}, "status": {"S": status}},
        )

    # --- settings / executors -------------------------------------------------------------------
    def env(self, **overrides: Any) -> dict[str, str]:
        env = {
            **self.aws_env,
            "PERSISTENCE_MODULE": "events.dynamodb",
            "FERRY_PREFIX": self.prefix,
            "FERRY_EVENTS_TABLE": self.names.events_table,
            "FERRY_EXECUTOR_QUEUE_URL": self.queue_url,
            "FERRY_EXECUTOR_CHUNK_SIZE": str(256 * KiB),
            "FERRY_EXECUTOR_SINGLE_PUT_THRESHOLD": str(1 * MiB),
            "FERRY_EXECUTOR_COPY_PART_THRESHOLD": str(6 * MiB),
            "FERRY_EXECUTOR_COPY_PART_SIZE": str(5 * MiB),
            "FERRY_EXECUTOR_LEASE_SECONDS": "3",
            "FERRY_EXECUTOR_HEARTBEAT_SECONDS": "1",
            "FERRY_EXECUTOR_POLL_WAIT_SECONDS": "1",
            "FERRY_EXECUTOR_SLOT_WAIT_VISIBILITY_SECONDS": "1",
            "FERRY_EXECUTOR_SFTP_TIMEOUT": "5",
            "FERRY_EGRESS_ALLOW": os.environ.get("FERRY_EGRESS_ALLOW", "127.0.0.0/8"),
        }
        env.update({f"FERRY_EXECUTOR_{k.upper()}": str(v) for k, v in overrides.items()})
        return env

    def settings(self, **overrides: Any) -> ExecutorSettings:
        env = self.env(**overrides)
        values = {
            k[len("FERRY_EXECUTOR_") :].lower(): v
            for k, v in env.items()
            if k.startswith("FERRY_EXECUTOR_") and k != "FERRY_EXECUTOR_QUEUE_URL"
        }
        values.update(
            queue_url=self.queue_url,
            prefix=self.prefix,
            persistence_module="events.dynamodb",
            events_table=self.names.events_table,
        )
        return ExecutorSettings.model_validate(values)

    def executor(self, stop: threading.Event | None = None, **overrides: Any) -> Executor:
        return build_executor(bootstrap(self.settings(**overrides)), stop_event=stop)

    def spawn(self, **overrides: Any) -> subprocess.Popen[bytes]:
        """``python -m services.executor`` as a subprocess (its own output in a log file)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "AWS_"))}
        env.pop("AWS_CA_BUNDLE", None)
        env.update(self.env(**overrides))
        log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"{self.prefix}-executor.log", "ab")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-m", "services.executor"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    # --- jobs ----------------------------------------------------------------------------------
    def queue_job(
        self,
        flow: Flow,
        source: tuple[str, str],
        target: tuple[str, str],
        *,
        job_id: str | None = None,
        attempt: int = 1,
        **options: Any,
    ) -> str:
        job_id = job_id or str(uuid.uuid4())
        spec = JobSpec(
            flow=flow,
            source=Location(endpoint_id=source[0], path=source[1]),
            target=Location(endpoint_id=target[0], path=target[1]),
            options=TransferOptions(**options),
        )
        event = JobQueued(
            event_id=str(uuid.uuid4()),
            stream_id=job_id,
            version=2,
            occurred_at=datetime.now(UTC),
            customer_id=self.customer_id,
            correlation_id=job_id,
            job_id=job_id,
            spec=spec,
            attempt=attempt,
        )
        self.send(event)
        return job_id

    def send(self, event: FerryEvent) -> None:
        body = {
            "source": event.SOURCE,
            "detail-type": event.detail_type(),
            "detail": event.model_dump(mode="json"),
        }
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body))

    def receive(self, wait: int = 1) -> Message | None:
        resp = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=wait
        )
        msgs = resp.get("Messages", [])
        return (
            Message(msgs[0]["Body"], msgs[0]["ReceiptHandle"], msgs[0]["MessageId"])
            if msgs
            else None
        )

    def drain(
        self, executor: Executor, *, timeout: float = 60.0, until: Any = None, jobs: int | None = 1
    ) -> list[str]:
        """Handle messages in this thread until ``jobs`` attempts ended (or the queue stays
        empty when jobs is None, or ``until()``)."""
        results: list[str] = []
        terminal = ("succeeded", "failed", "cancelled", "retry", "finished")
        deadline = time.monotonic() + timeout
        idle = 0
        while time.monotonic() < deadline:
            msg = self.receive(wait=1)
            if msg is None:
                idle += 1
                if until is None and jobs is None and idle >= 2 and self.queue_empty():
                    return results
                if until is not None and until():
                    return results
                continue
            idle = 0
            results.append(executor.handle(msg))
            if jobs is not None and until is None and sum(r in terminal for r in results) >= jobs:
                return results
            if until is not None and until():
                return results
        raise AssertionError(f"queue not drained in {timeout}s: {results}")

    def queue_empty(self) -> bool:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            attrs["ApproximateNumberOfMessages"] == "0"
            and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
        )

    def events(self, job_id: str) -> list[Any]:
        from events.dynamodb import DynamoDBAggregateRecorder  # noqa: F401 - import check
        from services.executor.application import TransferApplication

        app = TransferApplication(
            env={
                "PERSISTENCE_MODULE": "events.dynamodb",
                "FERRY_EVENTS_TABLE": self.names.events_table,
            }
        )
        return stream_events(app.recorder, transfer_stream_id(job_id))

    def types(self, job_id: str) -> list[str]:
        return [e.detail_type() for e in self.events(job_id)]

    def released(self, job_id: str) -> str | None:
        evs = [e for e in self.events(job_id) if e.detail_type() == "LeaseReleased"]
        return evs[-1].outcome if evs else None

    # --- real job streams (the jobs application on the same event table) + process manager --
    def jobs(self) -> Any:
        """The jobs application on this stack's event table and endpoints read model."""
        if getattr(self, "_jobs", None) is None:
            from ferry.endpoint_directory import DynamoEndpointDirectory
            from services.jobs.application import JobsApplication
            from tests.support.fakes.jobs import InMemoryIdempotencyStore

            self._jobs = JobsApplication(
                endpoints=DynamoEndpointDirectory(self.names.endpoints_table),
                idempotency=InMemoryIdempotencyStore(),
                env={
                    "PERSISTENCE_MODULE": "events.dynamodb",
                    "FERRY_EVENTS_TABLE": self.names.events_table,
                },
            )
        return self._jobs

    def submit(
        self, flow: Flow, source: tuple[str, str], target: tuple[str, str], **options: Any
    ) -> str:
        """POST /transfers through the jobs application; its JobQueued goes to the queue."""
        from services.jobs.application import TransferRequest

        del flow  # the jobs service derives it from the endpoints
        request = TransferRequest.model_validate(
            {
                "source": {"endpoint_id": source[0], "path": source[1]},
                "target": {"endpoint_id": target[0], "path": target[1]},
                "options": options,
                "dedupe": False,
            }
        )
        job_id = str(self.jobs().submit(self.customer_id, "key-test", request).job_id)
        self.forward_job_events(job_id)
        return job_id

    def job_events(self, job_id: str) -> list[Any]:
        return stream_events(self.jobs().recorder, uuid.UUID(job_id))

    def forward_job_events(self, job_id: str) -> int:
        """What the executor rule routes (JobQueued, JobRetryScheduled) → the executor queue,
        once per event (as EventBridge would)."""
        sent: set[int] = self.__dict__.setdefault("_forwarded", {}).setdefault(job_id, set())
        count = 0
        for event in self.job_events(job_id):
            if event.detail_type() in ("JobQueued", "JobRetryScheduled") and (
                event.version not in sent
            ):
                sent.add(event.version)
                self.send(event)
                count += 1
        return count

    def process_manager(self, job_id: str) -> Any:
        """The jobs process manager over the job's Transfer stream (in order; idempotent), then
        the job's events to the executor queue. Returns the job."""
        for event in self.events(job_id):
            self.jobs().on_executor_event(event)
        self.forward_job_events(job_id)
        return self.jobs().get_job(self.customer_id, job_id)

    def incomplete_uploads(self, bucket: str) -> list[Any]:
        uploads: list[Any] = self.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return uploads

    def get_s3(self, bucket: str, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
