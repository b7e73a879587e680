"""What a Lambda SQS event source hands Ferry's queue consumers: records whose bodies are
EventBridge envelopes (``events.translate.from_eventbridge`` parses them), for tests that call a
consumer's handler directly."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from events.contract import FerryEvent

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:q"


def eventbridge_body(event: FerryEvent) -> str:
    """The EventBridge event JSON a rule delivers for ``event`` (the SQS message body)."""
    return json.dumps(
        {
            "version": "0",
            "id": "x",
            "source": event.SOURCE,
            "detail-type": event.detail_type(),
            "detail": event.model_dump(mode="json"),
        }
    )


def sqs_record(body: str, message_id: str, receipt_handle: str = "") -> dict[str, Any]:
    """One SQS record of a Lambda batch (first delivery)."""
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle or f"r-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1",
    }


def sqs_batch(items: Sequence[FerryEvent | str], *, start: int = 0) -> dict[str, Any]:
    """A Lambda SQS batch: events as EventBridge bodies, strings as raw bodies (poison, say);
    message ids ``m<start>``, ``m<start+1>``, … (what ``batchItemFailures`` names)."""
    return {
        "Records": [
            sqs_record(
                item if isinstance(item, str) else eventbridge_body(item),
                f"m{start + i}",
                f"r{start + i}",
            )
            for i, item in enumerate(items)
        ]
    }
