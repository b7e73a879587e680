"""Stands in for the AWS Lambda event source mapping on the event table's DynamoDB stream.

Reads every shard of the table's latest stream (from TRIM_HORIZON, or after the last checkpointed
sequence number), builds the event Lambda would (``{"Records": [...]}`` with eventID, eventName,
eventSource "aws:dynamodb", dynamodb.{Keys, NewImage, SequenceNumber, ...} — binary attributes as
base64 text, as in Lambda's JSON) and invokes the publisher handler (``events.publisher:handler``).
As with ReportBatchItemFailures, a batch is retried from the first failed record (or entirely if
the handler raises) and the shard does not advance past it: in-order, at-least-once publication.

Checkpoints (per stream ARN and shard) go to ``<data-dir>/stream-checkpoints.json`` so that a
restarted poller does not re-publish the whole table (a re-publication would be harmless:
consumers are idempotent).

    python -m ferry.local.stream_poller --table ferry-events --data-dir .ferry
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from ferry.local.lambda_runtime import Handler, LocalLambdaContext, load_handler

log = logging.getLogger("ferry.local.stream_poller")

DEFAULT_HANDLER = "events.publisher:handler"


def _lambda_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """boto3's typed attribute value → its form in a Lambda event (JSON: bytes as base64)."""
    (kind, inner), *_ = value.items()
    if kind == "B":
        return {"B": base64.b64encode(bytes(inner)).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(bytes(b)).decode() for b in inner]}
    if kind == "M":
        return {"M": {k: _lambda_attribute(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_lambda_attribute(v) for v in inner]}
    return {kind: inner}


def _lambda_image(image: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if image is None else {k: _lambda_attribute(v) for k, v in image.items()}


def stream_event(records: list[dict[str, Any]], stream_arn: str, region: str) -> dict[str, Any]:
    out = []
    for r in records:
        ddb = dict(r["dynamodb"])
        created = ddb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            ddb["ApproximateCreationDateTime"] = created.timestamp()
        for image in ("Keys", "NewImage", "OldImage"):
            if image in ddb:
                ddb[image] = _lambda_image(ddb[image])
        out.append(
            {
                "eventID": r.get("eventID"),
                "eventName": r.get("eventName"),
                "eventVersion": r.get("eventVersion", "1.1"),
                "eventSource": "aws:dynamodb",
                "awsRegion": r.get("awsRegion", region),
                "dynamodb": ddb,
                "eventSourceARN": stream_arn,
            }
        )
    return {"Records": out}


class StreamPoller:
    def __init__(
        self,
        dynamodb: Any,
        streams: Any,
        table: str,
        handler: Handler,
        *,
        region: str,
        checkpoint_path: Path | None = None,
        batch_size: int = 100,
    ) -> None:
        self.dynamodb = dynamodb
        self.streams = streams
        self.table = table
        self.handler = handler
        self.region = region
        self.checkpoint_path = checkpoint_path
        self.batch_size = batch_size
        self.stream_arn: str = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self._checkpoints: dict[str, str] = self._load_checkpoints()
        self._iterators: dict[str, str | None] = {}

    # ---------------------------------------------------------------- checkpoints
    def _load_checkpoints(self) -> dict[str, str]:
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return {}
        try:
            data = json.loads(self.checkpoint_path.read_text())
        except (OSError, ValueError):
            return {}
        found = data.get(self.stream_arn, {})
        return dict(found) if isinstance(found, dict) else {}

    def _save_checkpoint(self, shard_id: str, sequence_number: str) -> None:
        self._checkpoints[shard_id] = sequence_number
        if self.checkpoint_path is None:
            return
        tmp = self.checkpoint_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({self.stream_arn: self._checkpoints}))
        tmp.replace(self.checkpoint_path)

    # ---------------------------------------------------------------- polling
    def _iterator(self, shard_id: str) -> str | None:
        if shard_id not in self._iterators:
            after = self._checkpoints.get(shard_id)
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
            if after:
                kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
            else:
                kwargs.update(ShardIteratorType="TRIM_HORIZON")
            self._iterators[shard_id] = self.streams.get_shard_iterator(**kwargs)["ShardIterator"]
        return self._iterators[shard_id]

    def poll_once(self) -> int:
        """One get_records per shard; returns the number of records published."""
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"][
            "Shards"
        ]
        published = 0
        for shard in shards:
            shard_id = shard["ShardId"]
            iterator = self._iterator(shard_id)
            if iterator is None:
                continue  # a closed shard, fully read
            response = self.streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
            records = response.get("Records", [])
            if records:
                delivered = self._deliver(shard_id, records)
                published += delivered
                if delivered < len(records):
                    continue  # retried from the checkpoint next time
            self._iterators[shard_id] = response.get("NextShardIterator")
        return published

    def _deliver(self, shard_id: str, records: list[dict[str, Any]]) -> int:
        event = stream_event(records, self.stream_arn, self.region)
        context = LocalLambdaContext(function_name="ferry-publisher", region=self.region)
        try:
            result = self.handler(event, context)
        except Exception:
            log.exception("publisher raised: the batch will be retried")
            self._iterators.pop(shard_id, None)
            return 0
        failures = [
            f.get("itemIdentifier")
            for f in ((result or {}).get("batchItemFailures") or [])
            if isinstance(f, dict)
        ]
        sequence_numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
        if failures:
            first = min(sequence_numbers.index(f) for f in failures if f in sequence_numbers)
            if first > 0:
                self._save_checkpoint(shard_id, sequence_numbers[first - 1])
            log.warning("publisher reported %d failure(s); retrying from there", len(failures))
            self._iterators.pop(shard_id, None)
            return first
        self._save_checkpoint(shard_id, sequence_numbers[-1])
        return len(records)

    def run(self, stop: threading.Event, idle_wait: float = 0.2) -> None:
        while not stop.is_set():
            try:
                if self.poll_once() == 0:
                    stop.wait(idle_wait)
            except Exception:
                log.exception("stream poll failed; retrying")
                self._iterators.clear()
                stop.wait(1.0)


def main(argv: list[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(description="DynamoDB stream → publisher (local stand-in)")
    parser.add_argument("--table", default=os.environ.get("FERRY_EVENTS_TABLE", "ferry-events"))
    parser.add_argument("--handler", default=DEFAULT_HANDLER, help="module:function")
    parser.add_argument("--data-dir", default=None, help="where to keep checkpoints")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    poller = StreamPoller(
        boto3.client("dynamodb", region_name=region),
        boto3.client("dynamodbstreams", region_name=region),
        args.table,
        load_handler(args.handler),
        region=region,
        checkpoint_path=Path(args.data_dir) / "stream-checkpoints.json" if args.data_dir else None,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("reading %s → %s", poller.stream_arn, args.handler)
    poller.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
