"""Shared set-up of the routes integration tests (moto server over HTTP): tables, endpoints as
read-model items, the routes and jobs applications on the DynamoDB event store, SQS draining."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import boto3

from events.dynamodb import create_events_table
from events.translate import stream_events
from ferry.endpoint_directory import DynamoEndpointDirectory
from ferry.names import S3_OBJECT_CREATED_PATTERN, ResourceNames
from services.jobs.adapters import create_idempotency_table
from services.jobs.bootstrap import bootstrap as jobs_bootstrap
from services.jobs.settings import JobsSettings
from services.projections.tables import create_read_model_tables
from services.routes.adapters import (
    DynamoRouteIndex,
    DynamoRoutesReadModel,
    DynamoScanStateStore,
    JobsApplicationSubmitter,
    create_tables,
)
from services.routes.application import RoutesApplication
from services.routes.ports import JobStatusReader, JobSubmitter, SourceOpener
from services.routes.readmodel import RoutesProjector
from services.routes.scanner import Scanner
from services.routes.settings import RoutesSettings
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.moto_server import unique_name
from tests.support.sqs import sqs_record

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class RoutesStack:
    def __init__(self) -> None:
        self.names = ResourceNames(unique_name("routes"))
        self.ddb = boto3.client("dynamodb")
        create_events_table(self.ddb, self.names.events_table)
        create_read_model_tables(self.ddb, self.names)
        create_idempotency_table(self.ddb, self.names.idempotency_table)
        create_tables(self.ddb, self.names.routes_table, self.names.route_scan_table)
        self.customer = unique_name("cust")
        self.env = {
            "PERSISTENCE_MODULE": "events.dynamodb",
            "FERRY_EVENTS_TABLE": self.names.events_table,
        }
        self.settings = RoutesSettings(
            prefix=self.names.prefix,
            dispatch_limit=100,
        )
        self.jobs = jobs_bootstrap(
            settings=JobsSettings(
                endpoints_table=self.names.endpoints_table,
                idempotency_table=self.names.idempotency_table,
                api_keys_table=self.names.api_keys_table,
            ),
            keys=InMemoryKeyStore(),
            env=self.env,
        ).app
        self.app = RoutesApplication(
            endpoints=DynamoEndpointDirectory(self.names.endpoints_table),
            jobs=JobsApplicationSubmitter(self.jobs),
            staging_bucket=self.names.staging_bucket,
            index=DynamoRouteIndex(self.names.route_scan_table),
            env=self.env,
        )
        self.read_model = DynamoRoutesReadModel(self.names.routes_table)
        self.projector = RoutesProjector(
            self.read_model, lambda s: stream_events(self.app.aggregate_recorder, s)
        )

    def put_endpoint(
        self,
        kind: str,
        *,
        customer: str | None = None,
        status: str = "ACTIVE",
        endpoint_id: str | None = None,
        **config: Any,
    ) -> str:
        """An endpoints read-model item (``endpoint_id`` given: overwrite that endpoint's)."""
        endpoint_id = endpoint_id or str(uuid4())
        now = datetime.now(UTC).isoformat()
        item = {
            "endpoint_id": endpoint_id,
            "customer_id": customer or self.customer,
            "name": f"{kind}-{endpoint_id[:6]}",
            "type": kind,
            "direction": "BOTH",
            "max_concurrency": 4,
            "status": status,
            "config": {"type": kind, **config},
            "secret_arn": config.pop("secret_arn", None),
            "created_at": now,
            "updated_at": now,
            "version": 2,
        }
        from events.dynamodb_values import serialize

        self.ddb.put_item(
            TableName=self.names.endpoints_table,
            Item=serialize({k: v for k, v in item.items() if v is not None}),
        )
        return endpoint_id

    def grant_bucket(self, bucket: str) -> None:
        """Tenancy: a same-account bucket is the customer's only when tagged for it."""
        boto3.client("s3").put_bucket_tagging(
            Bucket=bucket,
            Tagging={"TagSet": [{"Key": "ferry:customer", "Value": self.customer}]},
        )

    def buckets(self, *prefixes: str) -> list[str]:
        """A fresh bucket per prefix (unique names: the moto server is shared), each granted to
        the stack's customer."""
        s3 = boto3.client("s3")
        names = [unique_name(prefix) for prefix in prefixes]
        for name in names:
            s3.create_bucket(Bucket=name)
            self.grant_bucket(name)
        return names

    def use_jobs(self, jobs: JobSubmitter) -> RoutesApplication:
        """The routes application with another jobs service (a test's FakeJobs, whose outcomes
        the test sets; the ledger, event store and S3 stay real)."""
        self.app = RoutesApplication(
            endpoints=self.app.endpoints,
            jobs=jobs,
            staging_bucket=self.names.staging_bucket,
            index=self.app.index,
            env=self.env,
        )
        return self.app

    def scanner(self, sources: SourceOpener, job_status: JobStatusReader) -> Scanner:
        """A scanner of this stack's routes (from its read model) and its DynamoDB scan state."""
        return Scanner(
            app=self.app,
            routes=self.read_model,
            endpoints=self.app.endpoints,
            sources=sources,
            state=DynamoScanStateStore(self.names.route_scan_table),
            job_status=job_status,
        )

    def create_route(self, definition: dict[str, Any]) -> str:
        route = self.app.create(self.customer, "key-test", definition)
        for event in self.app.route_events(self.customer, route.route_id):
            self.projector.handle(event)
        return route.route_id

    def project_file(self, route_id: str, path: str) -> None:
        for event in self.app.file_events(route_id, path):
            self.projector.handle(event)

    def job_requested_count(self) -> int:
        count = 0
        paginator = self.ddb.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self.names.events_table,
            FilterExpression="contains(topic, :t)",
            ExpressionAttributeValues={":t": {"S": "JobRequested"}},
            Select="COUNT",
        ):
            count += page["Count"]
        return count


def drain(
    queue_url: str,
    handle: Handler | list[Handler],
    *,
    idle_polls: int = 3,
    keep: list[str] | None = None,
    expect: int = 0,
    timeout: float = 15.0,
) -> int:
    """Receive every message of a queue and give it to SQS-batch Lambda handlers (a list: one
    thread each, like concurrent Lambda instances); returns the number of messages handled."""
    handlers = handle if isinstance(handle, list) else [handle]
    counts = [0] * len(handlers)
    errors: list[BaseException] = []
    lock = threading.Lock()
    deadline = time.monotonic() + timeout

    def work(index: int) -> None:
        sqs = boto3.client("sqs")
        idle = 0
        try:
            while idle < idle_polls or (sum(counts) < expect and time.monotonic() < deadline):
                messages = sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                ).get("Messages", [])
                if not messages:
                    idle += 1
                    time.sleep(0.1)
                    continue
                idle = 0
                records = [
                    sqs_record(m["Body"], m["MessageId"], m["ReceiptHandle"]) for m in messages
                ]
                response = handlers[index]({"Records": records}, None)
                failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
                assert not failed, f"handler failed messages: {failed}"
                for m in messages:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
                with lock:
                    counts[index] += len(messages)
                    if keep is not None:
                        keep.extend(m["Body"] for m in messages)
        except BaseException as error:  # surfaced in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(handlers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(counts)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def queue_with_rule(bus: str, rule: str, pattern: dict[str, Any]) -> str:
    sqs = boto3.client("sqs")
    events = boto3.client("events")
    # a visibility timeout well above a batch's handling time on a loaded machine (as the
    # Lambda event source's queues have): a redelivery is then a real failure, not slowness
    url = sqs.create_queue(QueueName=unique_name("q"), Attributes={"VisibilityTimeout": "300"})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "routes", "Arn": arn}])
    return url


def s3_events_queue(bucket: str, rule: str | None = None) -> str:
    """S3 → EventBridge notifications for ``bucket``, and the routes rule
    (``ferry.names.routes_rule``) narrowed to that bucket (the moto server is shared) delivering
    to a fresh queue, whose URL is returned."""
    boto3.client("s3").put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    pattern = {**S3_OBJECT_CREATED_PATTERN, "detail": {"bucket": {"name": [bucket]}}}
    return queue_with_rule("default", rule or unique_name("s3-to-routes"), pattern)
