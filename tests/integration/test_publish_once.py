"""Publish once across regions (events/publications.py) against moto server: two regions'
publishers read the same stream records; each event reaches each region's bus exactly once."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import boto3
import pytest

from events import publisher
from events.dynamodb import DynamoDBAggregateRecorder, create_events_table
from events.publications import Publications, claim_key, create_publications_table
from ferry.names import ALL_SOURCES, ResourceNames
from services.projections.samples import History, to_stored
from tests.integration.test_publisher import downstream_queue, stream_records
from tests.support.moto_server import unique_name

A, B = "us-east-1", "us-west-2"


class World:
    def __init__(self) -> None:
        self.ddb = boto3.client("dynamodb")
        self.events = boto3.client("events")
        self.names = {A: ResourceNames(unique_name("pa")), B: ResourceNames(unique_name("pb"))}
        self.events_table = unique_name("pub-events")
        self.publications_table = unique_name("pub-claims")
        create_events_table(self.ddb, self.events_table)
        create_publications_table(self.ddb, self.publications_table)
        self.bus_arn: dict[str, str] = {}
        self.queue: dict[str, str] = {}
        for region, names in self.names.items():
            self.bus_arn[region] = self.events.create_event_bus(Name=names.bus)["EventBusArn"]
            self.queue[region] = downstream_queue(names, {"source": list(ALL_SOURCES)})

    def append_history(self, jobs: int = 3) -> int:
        history = History()
        endpoint_id = history.endpoint("acme")
        for _ in range(jobs):
            history.job("acme", endpoint_id, endpoint_id, outcome="succeeded")
        recorder = DynamoDBAggregateRecorder(self.ddb, self.events_table)
        for stream in dict.fromkeys(e.stream_id for e in history.events):
            recorder.insert_events([to_stored(e) for e in history.events if e.stream_id == stream])
        return len(history.events)

    def publications(self, region: str, **kwargs: Any) -> Publications:
        return Publications(self.ddb, self.publications_table, region, **kwargs)

    def publish(self, region: str, records: list[dict[str, Any]], **kwargs: Any) -> list[str]:
        peer = B if region == A else A
        return publisher.publish_records(
            records,
            events_client=self.events,
            bus_name=self.names[region].bus,
            publications=kwargs.pop("publications", None) or self.publications(region),
            peer_buses=[self.bus_arn[peer]],
            **kwargs,
        )

    def deliveries(self, region: str, expected: int, timeout: float = 15.0) -> Counter[str]:
        """event_id -> deliveries on the region's bus (waits for ``expected``, then 1.5 s more)."""
        sqs = boto3.client("sqs")
        seen: Counter[str] = Counter()
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            messages = sqs.receive_message(
                QueueUrl=self.queue[region], MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            for m in messages:
                seen[json.loads(m["Body"])["detail"]["event_id"]] += 1
                sqs.delete_message(QueueUrl=self.queue[region], ReceiptHandle=m["ReceiptHandle"])
            if sum(seen.values()) >= expected and quiet_until is None:
                quiet_until = time.monotonic() + 1.5
            if quiet_until is not None and time.monotonic() >= quiet_until:
                break
        return seen

    def claim_item(self, key: str) -> dict[str, Any]:
        return dict(
            self.ddb.get_item(
                TableName=self.publications_table, Key={"pk": {"S": key}}, ConsistentRead=True
            )["Item"]
        )


def _published(records: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(record index, claim key) of every published event the records hold, in order (a
    record holds one append: one or more events; internal events are not claimed)."""
    from events.dynamodb import stored_events_from_item
    from events.translate import to_integration

    out = []
    for index, r in enumerate(records):
        for stored in stored_events_from_item(r["dynamodb"]["NewImage"]):
            if to_integration(stored) is not None:
                key = claim_key(str(stored.originator_id), int(stored.originator_version))
                out.append((index, key))
    return out


def _keys(records: list[dict[str, Any]]) -> list[str]:
    """The claim keys of the published events, in order."""
    return [key for _, key in _published(records)]


def _published_event_count(records: list[dict[str, Any]]) -> int:
    return len(_published(records))


@pytest.fixture
def world(aws_env: dict[str, str]) -> World:
    return World()


def test_two_regions_racing_on_the_same_stream_publish_each_event_once_per_bus(
    world: World,
) -> None:
    world.append_history(jobs=4)
    records = stream_records(world.events_table)
    expected = _published_event_count(records)
    assert expected > 20

    def poller(region: str, batch: int) -> None:
        """Like the stream poller: a batch, retried from the first reported failure."""
        position = 0
        while position < len(records):
            chunk = records[position : position + batch]
            failed = world.publish(region, chunk)
            ids = [r["dynamodb"]["SequenceNumber"] for r in chunk]
            position += min(ids.index(f) for f in failed) if failed else len(chunk)
            if failed:
                time.sleep(0.05)

    threads = [
        threading.Thread(target=poller, args=(A, 7)),
        threading.Thread(target=poller, args=(B, 5)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for region in (A, B):
        seen = world.deliveries(region, expected)
        assert len(seen) == expected, region
        assert set(seen.values()) == {1}, f"{region}: duplicates {seen.most_common(3)}"
    items = [world.claim_item(k) for k in _keys(records)]
    winners = Counter(item["region"]["S"] for item in items)
    assert len(items) == expected
    assert all(item["published"]["BOOL"] for item in items)
    assert not any("takeover_of" in item for item in items)
    print(f"claims won: {dict(winners)} of {expected} events")


def test_a_claim_whose_winner_died_before_publishing_is_taken_over_once_stale(
    world: World,
) -> None:
    world.append_history(jobs=1)
    records = stream_records(world.events_table)
    expected = _published_event_count(records)
    published = _published(records)
    keys = [key for _, key in published]
    held_record = published[2][0]  # the record holding the third event
    # region A claimed the third event, then died before PutEvents
    assert world.publications(A).claim(keys[2]).verdict == "won"

    b = world.publications(B, stale_after=1.0)
    failed = world.publish(B, records, publications=b)
    ids = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert failed == ids[held_record:]  # held from the pending claim on: retried, never skipped
    time.sleep(1.1)
    assert world.publish(B, records[held_record:], publications=b) == []
    item = world.claim_item(keys[2])
    assert item["region"]["S"] == B and item["takeover_of"]["S"] == A
    assert item["published"]["BOOL"] is True
    for region in (A, B):
        seen = world.deliveries(region, expected)
        assert len(seen) == expected and set(seen.values()) == {1}, region
    # the dead region comes back and reads the same records: every claim is published, skipped
    assert world.publish(A, records) == []
    for region in (A, B):
        assert world.deliveries(region, 0, timeout=2.5) == Counter()


def test_a_region_retries_its_own_unpublished_claim_at_once(world: World) -> None:
    world.append_history(jobs=1)
    records = stream_records(world.events_table)
    expected = _published_event_count(records)

    class Down:
        def put_events(self, **_: Any) -> dict[str, Any]:
            raise RuntimeError("EventBridge down")

    ids = [r["dynamodb"]["SequenceNumber"] for r in records]
    failed = publisher.publish_records(
        records,
        events_client=Down(),
        bus_name=world.names[A].bus,
        publications=world.publications(A),
        peer_buses=[world.bus_arn[B]],
        sleep=lambda _: None,
    )
    assert failed == ids
    assert world.publish(A, records) == []  # its own claims: no wait for staleness
    for region in (A, B):
        seen = world.deliveries(region, expected)
        assert len(seen) == expected and set(seen.values()) == {1}, region


def test_a_dead_peer_bus_does_not_stop_the_living_region(world: World) -> None:
    world.append_history(jobs=1)
    records = stream_records(world.events_table)
    expected = _published_event_count(records)
    dead = world.bus_arn[B].replace(world.names[B].bus, "no-such-bus")
    failed = publisher.publish_records(
        records,
        events_client=world.events,
        bus_name=world.names[A].bus,
        publications=world.publications(A),
        peer_buses=[dead],
        sleep=lambda _: None,
    )
    assert failed == []
    seen = world.deliveries(A, expected)
    assert len(seen) == expected and set(seen.values()) == {1}
    item = world.claim_item(_keys(records)[0])
    assert item["missed_buses"]["SS"] == [dead] and item["published"]["BOOL"] is True


def test_the_handler_claims_only_with_the_publications_table_set(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERRY_REGION", B)
    world.append_history(jobs=1)
    records = stream_records(world.events_table)
    expected = _published_event_count(records)
    image = records[0]["dynamodb"]["NewImage"]
    assert image["origin_region"] == {"S": B}  # the appending process's FERRY_REGION

    monkeypatch.setattr(publisher, "_clients", {})
    monkeypatch.setenv("FERRY_BUS_NAME", world.names[A].bus)
    monkeypatch.delenv("FERRY_PUBLICATIONS_TABLE", raising=False)
    assert publisher._publications() is None  # single region: no claim, no extra call
    monkeypatch.setenv("FERRY_PUBLICATIONS_TABLE", world.publications_table)
    monkeypatch.setenv("FERRY_PEER_BUS_ARNS", f" {world.bus_arn[B]} ,")
    assert publisher._peer_buses() == [world.bus_arn[B]]
    from ferry.local.stream_poller import stream_event

    event = stream_event(records, "arn:stream", A)
    assert publisher.handler(event, None) == {"batchItemFailures": []}
    assert world.claim_item(_keys(records)[0])["region"]["S"] == B
    for region in (A, B):
        seen = world.deliveries(region, expected)
        assert len(seen) == expected and set(seen.values()) == {1}, region
