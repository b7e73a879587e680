"""services/jobs against moto server over HTTP: the idempotency store under concurrency, the
DynamoDB endpoint directory on a read-model item, the process manager on a real SQS batch, and
the API and the process manager racing on one job in the DynamoDB event store."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import boto3
import pytest

from events.aggregate import transfer_stream_id
from events.contract import (
    EndpointStatus,
    EndpointType,
    FerryEvent,
    JobStatus,
    LeaseAcquired,
    TransferVerified,
)
from events.translate import event_id_for, stream_events, to_put_events_entry
from ferry.api import DynamoKeyStore, issue_key, json_handler
from ferry.apigw import rest_event
from ferry.endpoint_directory import DynamoEndpointDirectory
from ferry.names import ResourceNames
from services.jobs.adapters import (
    DynamoIdempotencyStore,
    create_idempotency_table,
)
from services.jobs.application import (
    IdempotencyKeyReused,
    JobsApplication,
    TransferRequest,
    request_hash,
)
from services.jobs.bootstrap import bootstrap
from services.jobs.handlers import build_resolver
from services.jobs.ports import IdempotencyRecord
from services.jobs.process_manager import make_handler
from services.jobs.settings import JobsSettings
from services.projections.tables import create_read_model_tables
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.moto_server import aws_environment, unique_name


class Stack:
    """Tables made once per module; each test gets its own customer (keys are per customer)."""

    def __init__(self, names: ResourceNames, client: Any) -> None:
        self.names = names
        self.client = client
        self.customer = unique_name("cust")
        self.source_id = self.put_endpoint(EndpointType.S3)
        self.target_id = self.put_endpoint(EndpointType.SFTP)
        self.settings = JobsSettings(
            endpoints_table=self.names.endpoints_table,
            idempotency_table=self.names.idempotency_table,
            api_keys_table=self.names.api_keys_table,
        )
        self.env = {
            "PERSISTENCE_MODULE": "events.dynamodb",
            "FERRY_EVENTS_TABLE": self.names.events_table,
        }

    def put_endpoint(
        self,
        type_: EndpointType,
        status: EndpointStatus = EndpointStatus.ACTIVE,
        customer: str | None = None,
    ) -> str:
        """An item shaped like the endpoints read model (docs/architecture.md)."""
        endpoint_id = str(uuid4())
        config = (
            {"bucket": {"S": "data"}, "prefix": {"S": "in/"}, "region": {"S": "us-east-1"}}
            if type_ == EndpointType.S3
            else {
                "host": {"S": "127.0.0.1"},
                "port": {"N": "2222"},
                "username": {"S": "ferry"},
                "base_path": {"S": "/srv/data"},
                "host_key": {"S": "SHA256:abc"},
                "auth_method": {"S": "private_key"},
            }
        )
        now = datetime.now(UTC).isoformat()
        self.client.put_item(
            TableName=self.names.endpoints_table,
            Item={
                "endpoint_id": {"S": endpoint_id},
                "customer_id": {"S": customer or self.customer},
                "name": {"S": f"{type_.value}-endpoint"},
                "type": {"S": type_.value},
                "direction": {"S": "BOTH"},
                "max_concurrency": {"N": "4"},
                "status": {"S": status.value},
                "status_reason": {"NULL": True},
                "config": {"M": config},
                "secret_arn": {"S": "arn:aws:secretsmanager:us-east-1:000000000000:secret:x"},
                "created_at": {"S": now},
                "updated_at": {"S": now},
                "version": {"N": "2"},
            },
        )
        return endpoint_id

    def app(self, **kwargs: Any) -> JobsApplication:
        return bootstrap(
            settings=self.settings, keys=InMemoryKeyStore(), env=self.env, **kwargs
        ).app

    def request(self, target_path: str = "out/file.bin") -> TransferRequest:
        return TransferRequest.model_validate(
            {
                "source": {"endpoint_id": self.source_id, "path": "in/file.bin"},
                "target": {"endpoint_id": self.target_id, "path": target_path},
            }
        )

    def idempotency_items(self) -> int:
        scan = self.client.scan(
            TableName=self.names.idempotency_table,
            FilterExpression="begins_with(#id, :customer)",
            ExpressionAttributeNames={"#id": "id"},
            ExpressionAttributeValues={":customer": {"S": f"{self.customer}#"}},
        )
        return len(scan["Items"])


@pytest.fixture(scope="module")
def tables(moto_server: str) -> ResourceNames:
    env = aws_environment(moto_server)
    client = boto3.client(
        "dynamodb",
        endpoint_url=moto_server,
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    names = ResourceNames(unique_name("jobs"))
    create_read_model_tables(client, names)
    create_idempotency_table(client, names.idempotency_table)
    return names


@pytest.fixture
def stack(tables: ResourceNames, aws_env: dict[str, str]) -> Stack:
    return Stack(tables, boto3.client("dynamodb"))


def _race(n: int, fn: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(n)

    def run() -> Any:
        barrier.wait()
        return fn()

    with ThreadPoolExecutor(n) as pool:
        return [f.result() for f in [pool.submit(run) for _ in range(n)]]


# --------------------------------------------------------------------------------------------
# Idempotency
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["order-1", None], ids=["header", "derived"])
def test_identical_requests_at_once_make_one_job(stack: Stack, key: str | None) -> None:
    apps = [stack.app() for _ in range(4)]  # four "Lambdas", two concurrent requests each
    calls = iter(range(8))
    lock = threading.Lock()

    def submit() -> Any:
        with lock:
            app = apps[next(calls) % len(apps)]
        return app.submit(stack.customer, "key-x", stack.request(), key)

    results = _race(8, submit)
    assert len({r.job_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert {r.status for r in results} == {JobStatus.QUEUED}
    assert stack.idempotency_items() == 1
    trail = stream_events(apps[0].recorder, results[0].job_id)
    assert [e.detail_type() for e in trail] == ["JobRequested", "JobQueued"]


def test_same_key_other_body_is_rejected(stack: Stack) -> None:
    app = stack.app()
    app.submit(stack.customer, "key-x", stack.request(), "order-2")
    with pytest.raises(IdempotencyKeyReused):
        app.submit(stack.customer, "key-x", stack.request("out/other.bin"), "order-2")


def test_the_dedupe_window_expires(stack: Stack) -> None:
    now = [1_800_000_000.0]
    store = DynamoIdempotencyStore(stack.names.idempotency_table, clock=lambda: now[0])
    app = stack.app(idempotency=store)
    first = app.submit(stack.customer, "key-x", stack.request())
    now[0] += 599
    assert app.submit(stack.customer, "key-x", stack.request()).job_id == first.job_id
    now[0] += 2
    later = app.submit(stack.customer, "key-x", stack.request())
    assert later.job_id != first.job_id
    assert later.created


def test_a_claim_whose_claimant_died_still_yields_its_job(stack: Stack) -> None:
    """A record claimed but never followed by a saved job: the next request creates that job."""
    app = stack.app()
    template = app.submit(stack.customer, "key-x", stack.request(), "template")
    spec = app.get_job(stack.customer, template.job_id).spec
    orphan = str(uuid4())
    _, claimed = app.idempotency.claim(
        f"{stack.customer}#key#" + hashlib.sha256(b"orphan-key").hexdigest(),
        IdempotencyRecord(job_id=orphan, request_hash=request_hash(stack.request()), spec=spec),
        3600,
    )
    assert claimed
    again = app.submit(stack.customer, "key-y", stack.request(), "orphan-key")
    assert again.job_id == orphan
    assert app.get_job(stack.customer, orphan).status == JobStatus.QUEUED


# --------------------------------------------------------------------------------------------
# Endpoint directory
# --------------------------------------------------------------------------------------------


def test_the_endpoint_directory_reads_the_read_model(stack: Stack) -> None:
    directory = DynamoEndpointDirectory(stack.names.endpoints_table)
    found = directory.get(stack.target_id)
    assert found is not None
    assert (found.customer_id, found.type, found.status) == (
        stack.customer,
        EndpointType.SFTP,
        EndpointStatus.ACTIVE,
    )
    assert found.config["base_path"] == "/srv/data"
    assert found.config["port"] == 2222
    assert directory.get(str(uuid4())) is None
    job = stack.app().submit(stack.customer, "key-x", stack.request())
    assert stack.app().get_job(stack.customer, job.job_id).spec["flow"] == "S3_TO_SFTP"


# --------------------------------------------------------------------------------------------
# Process manager on a real SQS batch
# --------------------------------------------------------------------------------------------


def _executor_event(
    cls: type[FerryEvent], customer: str, job_id: str, version: int, **fields: Any
) -> FerryEvent:
    stream = transfer_stream_id(job_id)
    return cls.model_validate(
        {
            "event_id": event_id_for(stream, version),
            "stream_id": str(stream),
            "version": version,
            "occurred_at": datetime.now(UTC).isoformat(),
            "customer_id": customer,
            "correlation_id": job_id,
            "job_id": job_id,
            **fields,
        }
    )


def _eventbridge_body(event: FerryEvent) -> str:
    entry = to_put_events_entry(event, "bus")
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid4()),
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "account": "000000000000",
            "time": event.occurred_at.isoformat(),
            "region": "us-east-1",
            "resources": [],
            "detail": json.loads(entry["Detail"]),
        }
    )


def test_the_process_manager_reports_exactly_the_bad_record(stack: Stack) -> None:
    app = stack.app()
    job_id = app.submit(stack.customer, "key-x", stack.request()).job_id
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=unique_name("jobs-pm"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    lease = _executor_event(
        LeaseAcquired,
        stack.customer,
        job_id,
        1,
        owner_id="exec-1",
        region="us-east-1",
        expires_at=(datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
        attempt=1,
    )
    verified = _executor_event(
        TransferVerified,
        stack.customer,
        job_id,
        5,
        size=10,
        sha256="b" * 64,
        verify="digest",
        duration_seconds=0.1,
        throughput_bytes_per_second=100.0,
    )
    bodies = [_eventbridge_body(lease), '{"detail-type": "LeaseAcquired", "detail": {}}']
    bodies.append(_eventbridge_body(verified))
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    messages: list[Any] = []
    for _ in range(20):
        if len(messages) >= 3:
            break
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=1
        )
        messages.extend(got.get("Messages", []))
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": "us-east-1",
        }
        for m in messages
    ]
    bad = next(m["MessageId"] for m in messages if '"detail": {}' in m["Body"])

    handler = make_handler(stack.app)
    assert handler({"Records": records}, None) == {"batchItemFailures": [{"itemIdentifier": bad}]}
    job = app.get_job(stack.customer, job_id)
    assert job.status == JobStatus.VERIFYING
    assert [e.detail_type() for e in stream_events(app.recorder, job_id)] == [
        "JobRequested",
        "JobQueued",
        "JobStarted",
        "JobVerified",
    ]
    # Redelivery of the whole batch: the good records change nothing, the bad one fails again.
    assert handler({"Records": records}, None) == {"batchItemFailures": [{"itemIdentifier": bad}]}
    assert len(stream_events(app.recorder, job_id)) == 4


# --------------------------------------------------------------------------------------------
# Optimistic concurrency on the DynamoDB event store
# --------------------------------------------------------------------------------------------


def test_api_and_process_manager_racing_on_one_job(stack: Stack) -> None:
    job_id = stack.app().submit(stack.customer, "key-x", stack.request()).job_id
    apps = [stack.app() for _ in range(3)]
    writers = 6

    def work(i: int) -> Any:
        app = apps[i % len(apps)]
        if i == 0:
            return app.cancel(stack.customer, "key-x", job_id).status
        return app.job_started(stack.customer, job_id, 1, f"exec-{i}")

    barrier = threading.Barrier(writers)

    def run(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(run, range(writers)))
    assert results[0] == JobStatus.CANCELLED
    trail = [e.detail_type() for e in stream_events(apps[0].recorder, UUID(job_id))]
    assert trail[:2] == ["JobRequested", "JobQueued"]
    assert trail[-1] == "JobCancelled"
    assert trail.count("JobCancelled") == 1
    assert trail.count("JobCancelRequested") == 1
    assert set(trail[2:-1]) <= {"JobStarted", "JobCancelRequested"}
    assert apps[0].get_job(stack.customer, job_id).status == JobStatus.CANCELLED


# --------------------------------------------------------------------------------------------
# The production wiring: bootstrap() defaults from the environment, through the HTTP handler
# --------------------------------------------------------------------------------------------


def test_the_http_handler_with_production_adapters(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERRY_ENDPOINTS_TABLE", stack.names.endpoints_table)
    monkeypatch.setenv("FERRY_IDEMPOTENCY_TABLE", stack.names.idempotency_table)
    monkeypatch.setenv("FERRY_API_KEYS_TABLE", stack.names.api_keys_table)
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    DynamoKeyStore.create_table(stack.client, stack.names.api_keys_table)
    key, _ = issue_key(DynamoKeyStore(stack.names.api_keys_table), stack.customer)
    handler = json_handler(lambda: build_resolver(bootstrap()))

    def call(method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        event = rest_event(
            method,
            path,
            body=None if body is None else json.dumps(body),
            headers={"x-api-key": key, **headers},
        )
        response = handler(event, None)
        return response["statusCode"], json.loads(response["body"])

    body = stack.request().model_dump(mode="json", exclude_none=True)
    status, first = call("POST", "/transfers", body, **{"Idempotency-Key": "http-1"})
    assert (status, first["status"]) == (202, "QUEUED")
    assert first["deduplicated"] is False
    replay = {**first, "deduplicated": True}  # the same job, and the answer says so
    assert call("POST", "/transfers", body, **{"Idempotency-Key": "http-1"}) == (202, replay)
    other = {**body, "target": {**body["target"], "path": "out/else.bin"}}
    status, error = call("POST", "/transfers", other, **{"Idempotency-Key": "http-1"})
    assert (status, error["error"]["code"]) == (409, "idempotency_key_reused")
    job_id = first["job_id"]
    assert call("POST", f"/jobs/{job_id}/cancel") == (
        202,
        {"job_id": job_id, "status": "CANCELLED", "cancel_requested": True},
    )
    status, redriven = call("POST", f"/jobs/{job_id}/redrive")
    assert (status, redriven["redrive_of"], redriven["status"]) == (202, job_id, "QUEUED")
    disabled = stack.put_endpoint(EndpointType.S3, EndpointStatus.DISABLED)
    bad = {**body, "source": {"endpoint_id": disabled, "path": "in/x"}}
    status, error = call("POST", "/transfers", bad)
    assert (status, error["error"]["field"]) == (409, "source.endpoint_id")
