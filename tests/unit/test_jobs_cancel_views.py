"""What the read model and GET /jobs/{id} say about a cancel (issue 9): the job stream the jobs
application really records, folded through the projection's own fold."""

from __future__ import annotations

from typing import Any

from events.aggregate import transfer_stream_id
from events.translate import stream_events
from services.projections.application import job_view
from services.projections.readmodels import fold_job
from tests.unit.test_jobs_pm import World, _transfer_stream


def _fold(world: World, job_id: str) -> dict[str, Any]:
    item: dict[str, Any] | None = None
    for event in stream_events(world.app.recorder, job_id):
        item = fold_job(item, event)
    assert item is not None
    return item


def test_a_running_job_with_a_cancel_request_reads_running_with_cancel_requested() -> None:
    world = World()
    job_id = world.submit()
    _transfer_stream(world, job_id)
    world.feed(*stream_events(world.app.recorder, transfer_stream_id(job_id)))
    world.app.cancel("cust-a", "key-test", job_id)

    view = job_view(_fold(world, job_id))

    assert (view.status, view.cancel_requested, view.cancel_outcome) == ("RUNNING", True, None)


def test_too_late_is_in_the_read_model() -> None:
    world = World()
    job_id = world.submit()
    transfer = _transfer_stream(world, job_id)
    world.app.cancel("cust-a", "key-test", job_id)
    transfer.start_leg(flow="S3_TO_SFTP", leg=1, legs=1, size=0, chunk_size=100, temp_path="/t")
    transfer.commit_chunk(leg=1, offset=0, length=0, sha256="0" * 64)
    transfer.verify(
        size=0, sha256="0" * 64, verify="digest", target_checksum=None, duration_seconds=0.1
    )
    transfer.release(owner_id="exec-1", outcome="succeeded")
    world.app.save(transfer)
    world.feed(*stream_events(world.app.recorder, transfer_stream_id(job_id)))

    view = job_view(_fold(world, job_id))

    assert (view.status, view.cancel_requested, view.cancel_outcome) == (
        "SUCCEEDED",
        True,
        "too_late",
    )


def test_a_queued_job_cancelled_at_once_reads_cancelled() -> None:
    world = World()
    job_id = world.submit()
    world.app.cancel("cust-a", "key-test", job_id)
    view = job_view(_fold(world, job_id))
    assert (view.status, view.cancel_requested, view.cancel_outcome) == ("CANCELLED", True, None)
