"""GET /jobs?endpoint_id= reads index keys, then the items by key: an item that moved on since
its index entry was read (a GSI is eventually consistent) is answered as it is now, and left out
of a status filter it no longer matches."""

from __future__ import annotations

import copy
from typing import Any

from eventsourcing.popo import POPOAggregateRecorder

from events.contract import JobStatus
from services.projections import readmodels
from services.projections.queries import Queries
from services.projections.readmodels import JOBS
from services.projections.store import IndexQuery, Page
from tests.support.fakes.projections import InMemoryReadModelStore

EP_A = "00000000-0000-4000-8000-0000000000aa"
EP_B = "00000000-0000-4000-8000-0000000000bb"


class LaggingIndexes(InMemoryReadModelStore):
    """Index queries answer from the items as they were at ``freeze()``; reads by key do not."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = InMemoryReadModelStore()

    def freeze(self) -> None:
        self.frozen.items = copy.deepcopy(self.items)

    def query(self, query: IndexQuery) -> Page:
        return self.frozen.query(query)


def job(n: int, status: JobStatus) -> dict[str, Any]:
    item: dict[str, Any] = {
        "job_id": f"00000000-0000-4000-8000-{n:012d}",
        "customer_id": "acme",
        "created_at": f"2026-05-06T10:0{n}:00.000000+00:00",
        "source": {"endpoint_id": EP_A, "path": "in"},
        "target": {"endpoint_id": EP_B, "path": "out"},
        "version": 1,
    }
    readmodels._advance(item, JobStatus.RECEIVED)
    readmodels._advance(item, status)
    return item


def test_an_item_that_moved_on_is_read_as_it_is_now() -> None:
    # Given a running job and a second one, seen by the indexes
    store = LaggingIndexes()
    running, other = job(1, JobStatus.RUNNING), job(2, JobStatus.RUNNING)
    store.put(JOBS, running, None)
    store.put(JOBS, other, None)
    store.freeze()
    # When the first one succeeds before its index entries catch up
    done = {**running, "version": 2}
    readmodels._advance(done, JobStatus.SUCCEEDED)
    store.put(JOBS, done, {"version": 1})
    queries = Queries(store, POPOAggregateRecorder())
    # Then the RUNNING filter leaves it out, and the unfiltered list shows it SUCCEEDED
    running_now = queries.list_jobs("acme", endpoint_id=EP_A, status=JobStatus.RUNNING)
    assert [j.job_id for j in running_now.jobs] == [other["job_id"]]
    every = queries.list_jobs("acme", endpoint_id=EP_B)
    assert [(j.job_id, j.status) for j in every.jobs] == [
        (other["job_id"], "RUNNING"),
        (running["job_id"], "SUCCEEDED"),
    ]
