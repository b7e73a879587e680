"""Batched projection against moto server over HTTP: BatchGetItem, one conditional PutItem per
item per batch, partial batch failures, conflicts, and the same items as a rebuild."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import boto3
import pytest

from events.contract import FerryEvent
from events.dynamodb import DynamoDBAggregateRecorder, create_events_table
from ferry.names import ResourceNames
from services.projections import readmodels
from services.projections.adapters import DynamoReadModelStore
from services.projections.application import Delivery, Projector, Queries
from services.projections.bootstrap import ProjectionsContext
from services.projections.consumer import make_handler
from services.projections.readmodels import ENDPOINTS, JOBS, KEY_ATTRIBUTE, Item
from services.projections.samples import History, to_stored
from services.projections.store import StatsDelta
from services.projections.tables import create_read_model_tables
from tests.support.fakes.keys import InMemoryKeyStore
from tests.support.moto_server import unique_name
from tests.support.sqs import sqs_batch


@pytest.fixture
def names(aws_env: dict[str, str]) -> ResourceNames:
    return ResourceNames(prefix=unique_name("projb"))


@pytest.fixture
def client(aws_env: dict[str, str]) -> Any:
    return boto3.client("dynamodb")


class Calls:
    """DynamoDB operations the client sends (botocore's own event hooks: nothing is faked)."""

    def __init__(self, client: Any) -> None:
        self.counts: Counter[str] = Counter()
        client.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.counts[model.name] += 1


def write_events(recorder: DynamoDBAggregateRecorder, events: list[FerryEvent]) -> None:
    by_stream: dict[str, list[FerryEvent]] = defaultdict(list)
    for event in events:
        by_stream[event.stream_id].append(event)
    for stream in by_stream.values():
        for start in range(0, len(stream), 100):
            recorder.insert_events([to_stored(e) for e in stream[start : start + 100]])


def concurrent_jobs(h: History, jobs: int, chunks: int) -> tuple[list[str], list[FerryEvent]]:
    """``jobs`` transfers running at once: each job's events in order, the jobs round-robin."""
    endpoint = h.endpoint("acme")
    job_ids = [
        h.job("acme", endpoint, endpoint, size=chunks * 1024, chunk_size=1024) for _ in range(jobs)
    ]
    per_job = {j: [e for e in h.events if e.correlation_id == j] for j in job_ids}
    out = [e for e in h.events if e.stream_id == endpoint]
    while any(per_job.values()):
        for queue in per_job.values():
            if queue:
                out.append(queue.pop(0))
    return job_ids, out


def snapshot(store: DynamoReadModelStore) -> dict[str, dict[str, Item]]:
    return {
        kind: {item[KEY_ATTRIBUTE[kind]]: item for item in store.scan(kind)}
        for kind in (ENDPOINTS, JOBS)
    }


def rebuilt(client: Any, events: list[FerryEvent]) -> dict[str, dict[str, Item]]:
    """A clean replay of the same streams (what ``rebuild`` does) into fresh tables."""
    names = ResourceNames(prefix=unique_name("projr"))
    create_read_model_tables(client, names)
    store = DynamoReadModelStore(client, names)
    projector = Projector(store, None)
    by_stream: dict[str, list[FerryEvent]] = defaultdict(list)
    for event in events:
        by_stream[event.stream_id].append(event)
    for stream in by_stream.values():
        projector.apply_stream(stream)
    return snapshot(store)


def test_get_many_reads_more_than_one_batch_get_of_keys(client: Any, names: ResourceNames) -> None:
    create_read_model_tables(client, names)
    store = DynamoReadModelStore(client, names)
    h = History()
    keys = [h.endpoint("acme") for _ in range(104)]
    for event in h.events[: 2 * 101 : 2]:  # the first 101 endpoints' EndpointRegistered
        store.put(ENDPOINTS, readmodels.fold(None, event), None)
    calls = Calls(client)
    found = store.get_many(ENDPOINTS, [*keys, keys[0]])
    assert sorted(found) == sorted(keys[:101])  # the 3 never written are absent
    assert found[keys[5]] == store.get(ENDPOINTS, keys[5])
    assert calls.counts["BatchGetItem"] == 2
    assert store.get_many(JOBS, []) == {}


def test_concurrent_jobs_cost_one_write_per_item_per_batch_and_match_a_rebuild(
    client: Any, names: ResourceNames
) -> None:
    # Given four transfers publishing at once, events in the event store
    create_read_model_tables(client, names)
    create_events_table(client, names.events_table)
    recorder = DynamoDBAggregateRecorder(client, names.events_table)
    h = History()
    _, published = concurrent_jobs(h, jobs=4, chunks=6)
    write_events(recorder, h.events)
    # ...delivered as SQS does it: somewhat out of order, some twice, in batches of 10
    rng = random.Random(3)
    deliveries = published + rng.sample(published, 15)
    for start in range(0, len(deliveries), 8):
        window = deliveries[start : start + 8]
        rng.shuffle(window)
        deliveries[start : start + 8] = window
    store = DynamoReadModelStore(client, names)
    handle = make_handler(
        ProjectionsContext(Projector(store, recorder), Queries(store, recorder), InMemoryKeyStore())
    )
    calls = Calls(client)
    batches = [deliveries[i : i + 10] for i in range(0, len(deliveries), 10)]
    for i, batch in enumerate(batches):
        assert handle(sqs_batch(list(batch), start=i * 10), None) == {"batchItemFailures": []}
    # Then each batch cost one BatchGetItem per read model and one PutItem per item in it
    items_per_batch = [
        len({readmodels.target_of(e)[:2] for e in batch if readmodels.target_of(e)})  # type: ignore[index]
        for batch in batches
    ]
    kinds_per_batch = [
        len({readmodels.target_of(e)[0] for e in batch if readmodels.target_of(e)})  # type: ignore[index]
        for batch in batches
    ]
    assert calls.counts["BatchGetItem"] == sum(kinds_per_batch)
    assert calls.counts["PutItem"] <= sum(items_per_batch)  # all-duplicate groups: no write
    assert calls.counts["GetItem"] == 0  # no conflicts here
    assert calls.counts["PutItem"] < len(deliveries) / 2
    # And the read model is exactly a clean rebuild of the same streams
    live = snapshot(store)
    assert sorted(j["status"] for j in live[JOBS].values()) == ["SUCCEEDED"] * 4
    assert live == rebuilt(client, h.events)


def test_a_failing_group_fails_only_its_records_and_succeeds_on_redelivery(
    client: Any, names: ResourceNames
) -> None:
    # Given two jobs; the second job's first events are not in the event store yet
    create_read_model_tables(client, names)
    create_events_table(client, names.events_table)
    recorder = DynamoDBAggregateRecorder(client, names.events_table)
    h = History()
    job_ids, published = concurrent_jobs(h, jobs=2, chunks=3)
    late = job_ids[1]
    lagging = [e for e in h.events if e.stream_id == late]
    write_events(recorder, [e for e in h.events if e.stream_id != late])
    store = DynamoReadModelStore(client, names)
    handle = make_handler(
        ProjectionsContext(Projector(store, recorder), Queries(store, recorder), InMemoryKeyStore())
    )
    # When a batch holds the second job's stream without its first event, plus a poison record
    batch: list[FerryEvent | str] = [
        e for e in published if not (e.stream_id == late and e.version == 1)
    ]
    batch.insert(1, "{not json")
    result = handle(sqs_batch(batch), None)
    # Then exactly the poison record and that job's records (both its streams) are failures
    expected = [
        f"m{i}"
        for i, e in enumerate(batch)
        if isinstance(e, str) or readmodels.target_of(e)[1] == late  # type: ignore[index]
    ]
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == expected
    live = snapshot(store)
    assert late not in live[JOBS] and live[JOBS][job_ids[0]]["status"] == "SUCCEEDED"
    # And once the event store has them, the redelivered failures are applied (gap filled)
    write_events(recorder, lagging)
    redelivered = [batch[int(m[1:])] for m in expected]
    again = handle(sqs_batch([e for e in redelivered if not isinstance(e, str)]), None)
    assert again == {"batchItemFailures": []}
    assert snapshot(store) == rebuilt(client, h.events)


class RacingStore(DynamoReadModelStore):
    """Another consumer (its own Projector on the same tables) writes first, once."""

    def __init__(self, client: Any, names: ResourceNames, interlopers: list[FerryEvent]):
        super().__init__(client, names)
        self.interlopers = interlopers

    def put(
        self,
        kind: str,
        item: Item,
        expected: dict[str, int] | None,
        stats: Sequence[StatsDelta] = (),
    ) -> None:
        if self.interlopers:
            events, self.interlopers = self.interlopers, []
            other = Projector(DynamoReadModelStore(self.client, None, **self._table_names()), None)
            other.apply_item(events)
        super().put(kind, item, expected, stats)

    def _table_names(self) -> dict[str, str]:
        return {
            "endpoints_table": self.tables[ENDPOINTS],
            "jobs_table": self.tables[JOBS],
            "job_stats_table": self.stats_table,
        }


def test_a_lost_conditional_write_rereads_and_reapplies_the_group(
    client: Any, names: ResourceNames
) -> None:
    create_read_model_tables(client, names)
    h = History()
    job_ids, published = concurrent_jobs(h, jobs=1, chunks=4)
    job = [e for e in published if e.correlation_id == job_ids[0]]
    store = RacingStore(client, names, interlopers=job[:4])
    outcome = Projector(store, None).handle_batch(
        [Delivery(f"m{i}", e) for i, e in enumerate(job[:9])]
    )
    assert outcome.failed == []
    (item,) = outcome.items
    assert item.conflicts == 1 and item.written and item.applied == 9 - 4
    assert snapshot(store)[JOBS][job_ids[0]] == rebuilt(client, job[:9])[JOBS][job_ids[0]]
