"""One status rank: the jobs domain and the jobs read model both move a status by
``JobStatus.rank`` (events/contract.py), so they cannot disagree on what "backward" means."""

from __future__ import annotations

import pytest

from events.contract import JobStatus
from services.projections import readmodels

MACHINE = [JobStatus.RECEIVED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.VERIFYING]
FINALS = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]


def test_rank_follows_the_status_machine_and_finals_share_the_top() -> None:
    assert [s.rank for s in MACHINE] == [0, 1, 2, 3]
    assert {s.rank for s in FINALS} == {4}
    assert set(MACHINE + FINALS) == set(JobStatus)


@pytest.mark.parametrize("current", list(JobStatus))
@pytest.mark.parametrize("to", list(JobStatus))
def test_read_model_advances_only_to_an_equal_or_higher_rank(
    current: JobStatus, to: JobStatus
) -> None:
    item = {"status": current.value, "customer_id": "c1", "created_at": "t"}
    readmodels._advance(item, to)
    expected = to if to.rank > current.rank else current
    assert item["status"] == expected.value
    if to.rank > current.rank:
        assert item["customer_status"] == f"c1#{to.value}"
    else:
        assert "customer_status" not in item
