"""Adapters of the replay ports (``services.projections.replay``): SQS ``SendMessageBatch`` and
EventBridge ``PutEvents`` publishers (10 entries a call; per-entry failures are reported back,
never counted as sent) and the state file.

An SQS message body is the event as an EventBridge rule targeting the queue would deliver it
(``events.translate.to_eventbridge_event``, ``id`` = the event's ``event_id``), so a consumer
parses a replayed event exactly as a live one. On a FIFO queue (``.fifo``) each stream is a
message group (order within a stream is kept by SQS) and ``event_id`` the deduplication id.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from events.contract import FerryEvent
from events.translate import to_eventbridge_event, to_put_events_entry
from services.projections.replay import BATCH, PublishResult


def _check(events: Sequence[FerryEvent]) -> None:
    if len(events) > BATCH:
        raise ValueError(f"at most {BATCH} events per call, got {len(events)}")


class SqsPublisher:
    def __init__(self, client: Any, queue_url: str, *, region: str | None = None) -> None:
        self.client = client
        self.queue_url = queue_url
        parts = [p for p in queue_url.split("/") if p]
        self.account = parts[-2] if len(parts) >= 2 else ""
        self.region = region or str(client.meta.region_name)
        self.fifo = queue_url.endswith(".fifo")

    def body(self, event: FerryEvent) -> str:
        document = to_eventbridge_event(
            event, account=self.account, region=self.region, eventbridge_id=event.event_id
        )
        return json.dumps(document, separators=(",", ":"))

    def publish(self, events: Sequence[FerryEvent]) -> PublishResult:
        _check(events)
        if not events:
            return PublishResult(sent=[])
        entries = []
        for number, event in enumerate(events):
            entry: dict[str, Any] = {"Id": str(number), "MessageBody": self.body(event)}
            if self.fifo:
                entry["MessageGroupId"] = event.stream_id
                entry["MessageDeduplicationId"] = event.event_id
            entries.append(entry)
        response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        sent = [events[int(s["Id"])].event_id for s in response.get("Successful", [])]
        failed = {
            events[int(f["Id"])].event_id: f"{f.get('Code', 'Failed')}: {f.get('Message', '')}"
            for f in response.get("Failed", [])
        }
        return PublishResult(sent=sent, failed=failed)


class EventBridgePublisher:
    def __init__(self, client: Any, bus: str) -> None:
        self.client = client
        self.bus = bus

    def publish(self, events: Sequence[FerryEvent]) -> PublishResult:
        _check(events)
        if not events:
            return PublishResult(sent=[])
        entries = [to_put_events_entry(e, self.bus) for e in events]
        response = self.client.put_events(Entries=entries)
        sent: list[str] = []
        failed: dict[str, str] = {}
        results = response.get("Entries", [])
        for number, event in enumerate(events):
            result = results[number] if number < len(results) else {}
            if result.get("EventId") and not result.get("ErrorCode"):
                sent.append(event.event_id)
            else:
                failed[event.event_id] = (
                    f"{result.get('ErrorCode', 'NoResult')}: {result.get('ErrorMessage', '')}"
                )
        return PublishResult(sent=sent, failed=failed)


class JsonFileStateStore:
    """The replay's state in one JSON file, replaced atomically (write a temporary file in the
    same directory, fsync, rename): a kill at any instant leaves the old or the new state."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            return {"format": "unreadable"}
        return document if isinstance(document, dict) else {"format": "unreadable"}

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".replay-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(state, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
