"""Stands in for the AWS Lambda SQS event source mapping (with ReportBatchItemFailures).

Long-polls one queue, builds the SQS event Lambda would (``{"Records": [...]}``, each record with
messageId, receiptHandle, body, attributes, messageAttributes, md5OfBody, eventSource "aws:sqs",
eventSourceARN, awsRegion), invokes the handler, then deletes every message that the returned
``batchItemFailures`` does not list. Failed messages (or the whole batch, if the handler raises)
stay on the queue and come back after the visibility timeout; the queue's redrive policy moves
them to the DLQ after maxReceiveCount receives — exactly as in AWS.

    python -m ferry.local.sqs_poller --queue-url URL --handler services.projections.consumer:handler
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from ferry.local.lambda_runtime import Handler, LocalLambdaContext, load_handler

log = logging.getLogger("ferry.local.sqs_poller")


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda passes to an SQS-triggered function."""
    records = []
    for m in messages:
        attrs = m.get("Attributes", {})
        records.append(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    k: attrs[k]
                    for k in (
                        "ApproximateReceiveCount",
                        "SentTimestamp",
                        "SenderId",
                        "ApproximateFirstReceiveTimestamp",
                    )
                    if k in attrs
                },
                "messageAttributes": {
                    k: {
                        "stringValue": v.get("StringValue"),
                        "binaryValue": v.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": v.get("DataType", "String"),
                    }
                    for k, v in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


class SqsPoller:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        function_name: str,
        region: str,
        batch_size: int = 10,
        wait_seconds: int = 1,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.function_name = function_name
        self.region = region
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    def poll_once(self) -> int:
        """Receive one batch, invoke the handler, delete what succeeded. Returns batch size."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = sqs_event(messages, self.queue_arn, self.region)
        context = LocalLambdaContext(function_name=self.function_name, region=self.region)
        try:
            result = self.handler(event, context)
        except Exception:
            log.exception("handler raised: the whole batch stays on the queue")
            return len(messages)
        failed = {
            f.get("itemIdentifier")
            for f in ((result or {}).get("batchItemFailures") or [])
            if isinstance(f, dict)
        }
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
        if failed:
            log.warning("%d message(s) reported as failed; they will be retried", len(failed))
        return len(messages)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("poll failed; retrying")
                stop.wait(1.0)


def main(argv: list[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(description="SQS → Lambda handler poller (local stand-in)")
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--handler", required=True, help="module:function")
    parser.add_argument("--function-name", default=None)
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    handler = load_handler(args.handler)
    poller = SqsPoller(
        boto3.client("sqs", region_name=region),
        args.queue_url,
        handler,
        function_name=args.function_name or args.handler.replace(":", "-").replace(".", "-"),
        region=region,
        batch_size=args.batch_size,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("polling %s for %s", args.queue_url, args.handler)
    poller.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
