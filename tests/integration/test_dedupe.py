"""Dedupe is explicit (issue 9): the automatic key includes the source's content identity,
looked up at submit time through the executor's endpoint access (moto S3 HeadObject, a real
OpenSSH sshd stat)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from events.contract import Flow
from ferry.endpoint_directory import DynamoEndpointDirectory
from services.jobs.adapters import EndpointSourceIdentity
from services.jobs.application import JobsApplication, TransferRequest
from tests.integration.executor_harness import Stack
from tests.integration.test_executor_flows import put_source, target_of
from tests.support.fakes.jobs import InMemoryIdempotencyStore
from tests.support.sshd import SshdServer

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def stack(aws_env: dict[str, str], sshd: SshdServer, sftp_dir: Path) -> Stack:
    return Stack(aws_env, sshd, sftp_dir)


def jobs(stack: Stack) -> JobsApplication:
    return JobsApplication(
        endpoints=DynamoEndpointDirectory(stack.names.endpoints_table),
        idempotency=InMemoryIdempotencyStore(),
        sources=EndpointSourceIdentity(stack.names.endpoints_table, timeout=5),
        env={
            "PERSISTENCE_MODULE": "events.dynamodb",
            "FERRY_EVENTS_TABLE": stack.names.events_table,
        },
    )


def request(source: tuple[str, str], target: tuple[str, str], **extra: object) -> TransferRequest:
    return TransferRequest.model_validate(
        {
            "source": {"endpoint_id": source[0], "path": source[1]},
            "target": {"endpoint_id": target[0], "path": target[1]},
            **extra,
        }
    )


def test_s3_source_same_request_twice_dedupes_and_a_rewritten_object_does_not(
    stack: Stack,
) -> None:
    app = jobs(stack)
    flow = Flow.S3_TO_SFTP
    req = request(put_source(stack, flow, b"v1"), target_of(stack, flow))
    first = app.submit(stack.customer_id, "k", req)
    second = app.submit(stack.customer_id, "k", req)
    assert (first.deduplicated, first.dedupe) == (False, "content")
    assert (second.deduplicated, second.job_id) == (True, first.job_id)

    put_source(stack, flow, b"v2 - rewritten")  # a new ETag
    third = app.submit(stack.customer_id, "k", req)
    assert (third.deduplicated, third.dedupe) == (False, "content")
    assert third.job_id != first.job_id


def test_sftp_source_size_and_mtime(stack: Stack) -> None:
    app = jobs(stack)
    flow = Flow.SFTP_TO_S3
    source = put_source(stack, flow, b"0123456789")
    req = request(source, target_of(stack, flow))
    first = app.submit(stack.customer_id, "k", req)
    second = app.submit(stack.customer_id, "k", req)
    assert first.dedupe == "content", "the sftp stat did not work"
    assert (second.deduplicated, second.job_id) == (True, first.job_id)

    assert stack.sftp_dir is not None
    os.utime(stack.sftp_dir / source[1], (1_700_000_000, 1_700_000_000))  # touched: same size
    third = app.submit(stack.customer_id, "k", req)
    assert (third.deduplicated, third.dedupe) == (False, "content")


def test_missing_source_dedupes_by_the_request_alone_and_says_so(stack: Stack) -> None:
    app = jobs(stack)
    req = request((stack.s3_src, "in/not-there.bin"), target_of(stack, Flow.S3_TO_S3))
    first = app.submit(stack.customer_id, "k", req)
    second = app.submit(stack.customer_id, "k", req)
    assert (first.dedupe, second.dedupe) == ("request", "request")
    assert second.deduplicated and second.job_id == first.job_id


def test_dedupe_false_is_a_new_job_each_time(stack: Stack) -> None:
    app = jobs(stack)
    flow = Flow.S3_TO_S3
    req = request(put_source(stack, flow, b"x"), target_of(stack, flow), dedupe=False)
    ids = {app.submit(stack.customer_id, "k", req).job_id for _ in range(3)}
    assert len(ids) == 3
