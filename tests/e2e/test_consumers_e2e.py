"""Tenant-scoped event delivery on the local stack, as an operator would set it up: two
customers (``ferry keys create``), one consumer each (``ferry consumers add --queue-url``),
every customer (and the operator's own ``demo``) registers an endpoint through the API; the
stack's own publisher puts the events on its bus — each consumer's queue gets only its
customer's events."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.e2e.harness import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def post_endpoint(stack: Stack, key: str, name: str, bucket: str) -> str:
    body = {"name": name, "type": "s3", "direction": "BOTH", "bucket": bucket, "prefix": "in/"}
    req = urllib.request.Request(
        stack.api_url + "/endpoints",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"x-api-key": key, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 201
        return str(json.loads(resp.read())["endpoint_id"])


def drain(stack: Stack, queue_url: str, until: Any, timeout: float = 60) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(got):
        for m in sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            got.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return got


def test_two_consumers_each_see_only_their_customers_events(stack: Stack) -> None:
    keys = {c: stack.cli_json("keys", "create", c)["api_key"] for c in ("acme", "bravo")}
    keys["demo"] = stack.api_key
    sqs = stack.client("sqs")
    queues = {c: sqs.create_queue(QueueName=f"consumer-{c}")["QueueUrl"] for c in ("acme", "bravo")}
    for customer, url in queues.items():
        added = stack.cli_json(
            "consumers", "add", "--customer", customer, "--name", "audit", "--queue-url", url
        )
        assert added["customer_id"] == customer

    # a consumer cannot be created without a customer, nor for an unknown one
    missing = stack.cli(
        "consumers", "add", "--name", "x", "--queue-url", queues["acme"], check=False
    )
    assert missing.returncode != 0 and "customer" in missing.stderr
    unknown = stack.cli(
        "consumers", "add", "--customer", "nobody", "--name", "x", "--queue-url", queues["acme"],
        check=False,
    )  # fmt: skip
    assert unknown.returncode != 0 and "nobody" in unknown.stderr

    ids = {c: post_endpoint(stack, keys[c], f"ep-{c}", f"consumers-{c}") for c in keys}

    def has_registered(customer: str) -> Any:
        return lambda got: any(
            e["detail-type"] == "EndpointRegistered" and e["detail"]["endpoint_id"] == ids[customer]
            for e in got
        )

    received = {c: drain(stack, queues[c], has_registered(c)) for c in queues}
    time.sleep(3)  # the validators' verdicts and anything misrouted arrive meanwhile
    for c in queues:
        received[c] += drain(stack, queues[c], lambda got: False, timeout=3)
    for customer, events in received.items():
        assert has_registered(customer)(events), (customer, events)
        assert {e["detail"]["customer_id"] for e in events} == {customer}
        assert {e["detail"]["endpoint_id"] for e in events} == {ids[customer]}
        assert all(e["source"].startswith("ferry.") for e in events)

    listed = stack.cli_json("consumers", "list")["consumers"]
    assert [(c["customer_id"], c["pattern_ok"]) for c in listed] == [
        ("acme", True),
        ("bravo", True),
    ]
