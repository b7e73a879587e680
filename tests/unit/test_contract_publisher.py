"""events/publisher.py with a fake EventBridge client: batching, retries, partial failures."""

from __future__ import annotations

import json
from typing import Any

from events.publisher import publish_records
from services.projections.samples import History, to_stored


class FakeEventBridge:
    """PutEvents that fails chosen entries (by detail event_id) a number of times."""

    def __init__(self, failures: dict[str, int] | None = None, raise_times: int = 0) -> None:
        self.failures = dict(failures or {})
        self.raise_times = raise_times
        self.calls: list[list[dict[str, Any]]] = []
        self.delivered: list[str] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        assert 1 <= len(Entries) <= 10
        self.calls.append(Entries)
        if self.raise_times:
            self.raise_times -= 1
            raise ConnectionError("endpoint unreachable")
        results = []
        for entry in Entries:
            event_id = json.loads(entry["Detail"])["event_id"]
            if self.failures.get(event_id, 0) > 0:
                self.failures[event_id] -= 1
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                self.delivered.append(event_id)
                results.append({"EventId": "eb-" + event_id})
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedEntryCount": failed, "Entries": results}


def records(count_jobs: int = 3) -> tuple[list[dict[str, Any]], list[str]]:
    h = History()
    endpoint_id = h.endpoint("acme")
    for _ in range(count_jobs):
        h.job("acme", endpoint_id, endpoint_id)
    out = []
    for i, event in enumerate(h.events):
        stored = to_stored(event)
        image = {
            "stream_id": {"S": str(stored.originator_id)},
            "version": {"N": str(stored.originator_version)},
            "topic": {"S": stored.topic},
            "state": {"B": stored.state},
        }
        out.append(
            {
                "eventName": "INSERT",
                "dynamodb": {"NewImage": image, "SequenceNumber": f"{i + 1:06d}"},
            }
        )
    return out, [e.event_id for e in h.events]


def no_sleep(_: float) -> None:
    pass


def test_everything_is_published_in_order_in_batches_of_ten() -> None:
    recs, ids = records()
    fake = FakeEventBridge()
    assert publish_records(recs, events_client=fake, bus_name="b", sleep=no_sleep) == []
    assert fake.delivered == ids
    assert all(len(c) <= 10 for c in fake.calls) and len(fake.calls) == -(-len(ids) // 10)
    entry = fake.calls[0][0]
    assert entry["Source"] == "ferry.endpoints" and entry["DetailType"] == "EndpointRegistered"
    assert entry["EventBusName"] == "b"


def test_failed_entries_are_retried() -> None:
    recs, ids = records(1)
    fake = FakeEventBridge(failures={ids[3]: 2, ids[4]: 1}, raise_times=1)
    assert publish_records(recs, events_client=fake, bus_name="b", sleep=no_sleep) == []
    assert sorted(fake.delivered) == sorted(ids)


def test_a_final_failure_reports_it_and_every_later_record() -> None:
    recs, ids = records(1)
    fake = FakeEventBridge(failures={ids[12]: 99})
    failed = publish_records(recs, events_client=fake, bus_name="b", sleep=no_sleep, attempts=3)
    assert failed == [r["dynamodb"]["SequenceNumber"] for r in recs[12:]]
    assert ids[12] not in fake.delivered
    assert set(ids[:10]) <= set(fake.delivered)
    assert not set(ids[20:]) & set(fake.delivered)  # later batches were not sent


def test_modify_and_remove_are_ignored_and_undecodable_records_fail() -> None:
    recs, _ = records(1)
    modify = {**recs[0], "eventName": "MODIFY"}
    remove = {"eventName": "REMOVE", "dynamodb": {"SequenceNumber": "x"}}
    fake = FakeEventBridge()
    assert publish_records([modify, remove], events_client=fake, bus_name="b") == []
    assert fake.calls == []
    broken = {"eventName": "INSERT", "dynamodb": {"NewImage": {}, "SequenceNumber": "000777"}}
    failed = publish_records([recs[0], broken, recs[1]], events_client=fake, bus_name="b")
    assert failed == ["000777", recs[1]["dynamodb"]["SequenceNumber"]]
    assert len(fake.delivered) == 1  # the record before the broken one went out
