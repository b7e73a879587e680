"""JobSlow (services/jobs/sla.py) on a fake clock: a job running longer than its
options.max_duration emits JobSlow once; a finished job or one within its limit never does;
a late check still finds it; max_duration is validated (422 naming the field)."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import uuid4

import pytest

from events.contract import JobSlow, JobStarted
from events.translate import stream_events
from services.jobs.application import TransferRequest
from services.jobs.process_manager import make_handler
from services.jobs.requests import request_hash
from services.jobs.sla import SlowJobChecker
from tests.support.fakes.jobs import InMemorySlowWatch
from tests.unit.test_jobs_pm import Executor, World


class SlowWorld(World):
    def __init__(self) -> None:
        super().__init__()
        self.watch = InMemorySlowWatch()
        self.handler = make_handler(lambda: self.app, lambda: self.watch)
        self.checker = SlowJobChecker(self.app, self.watch)

    def submit_with(self, **options: object) -> str:
        request = TransferRequest.model_validate(
            {
                "source": {"endpoint_id": "src", "path": f"in/{uuid4().hex}.bin"},
                "target": {"endpoint_id": "tgt", "path": "out/file.bin"},
                "options": options,
            }
        )
        return self.app.submit("cust-a", "key-test", request).job_id

    def started_at(self, job_id: str) -> datetime:
        return next(
            e.occurred_at
            for e in stream_events(self.app.recorder, job_id)
            if isinstance(e, JobStarted)
        )

    def slow(self, job_id: str) -> list[JobSlow]:
        return [e for e in stream_events(self.app.recorder, job_id) if isinstance(e, JobSlow)]


@pytest.fixture
def slow_world() -> SlowWorld:
    return SlowWorld()


def test_a_job_running_past_max_duration_emits_job_slow_once(slow_world: SlowWorld) -> None:
    w = slow_world
    job_id = w.submit_with(max_duration="30m")
    w.feed(Executor(job_id).lease())
    start = w.started_at(job_id)
    assert w.checker.check(start + timedelta(minutes=29)) == []
    # the scheduler was down for an hour: the late check still finds it, from the events
    assert w.checker.check(start + timedelta(minutes=95)) == [job_id]
    [slow] = w.slow(job_id)
    assert slow.max_duration_seconds == 1800 and slow.started_at == start
    assert slow.running_seconds == 95 * 60
    # once: later checks, and a redelivered start, add nothing
    w.feed(Executor(job_id).lease())
    assert w.checker.check(start + timedelta(hours=3)) == []
    assert len(w.slow(job_id)) == 1


def test_a_job_that_finished_in_time_or_has_no_limit_never_is_slow(slow_world: SlowWorld) -> None:
    w = slow_world
    quick = w.submit_with(max_duration="10m")
    ex = Executor(quick)
    w.feed(ex.lease(), *ex.progress(), ex.verified(), ex.post_action(), ex.released())
    unlimited = w.submit_with()
    w.feed(Executor(unlimited).lease())
    start = w.started_at(quick)
    assert w.checker.check(start + timedelta(hours=2)) == []
    assert w.slow(quick) == [] and w.slow(unlimited) == []
    assert w.watch.buckets == {}  # looked at and done


def test_max_duration_is_validated_and_absent_keeps_request_hashes() -> None:
    body = {
        "source": {"endpoint_id": "src", "path": "in/a.bin"},
        "target": {"endpoint_id": "tgt", "path": "out/a.bin"},
    }
    plain = TransferRequest.model_validate(body)
    assert "max_duration" not in plain.model_dump()["options"]
    assert request_hash(plain) == request_hash(
        TransferRequest.model_validate({**body, "options": {"max_attempts": 5}})
    )
    for bad in ("30", "0s", "31d", "1w", 5):
        with pytest.raises(ValueError, match="max_duration"):
            TransferRequest.model_validate({**body, "options": {"max_duration": bad}})
