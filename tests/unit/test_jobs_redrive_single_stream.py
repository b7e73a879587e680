"""Redrive as two single-stream appends (the event store of MRSC global tables has no
transactions): the new job first, under an id derived from the original's, then the
original's JobRedriven. A crash between them is healed onto the same job; racing redrives
make one job. Against the single-stream in-memory recorder (tests/support/single_stream.py),
which refuses an append over two streams as the DynamoDB store does."""

from __future__ import annotations

import threading
from dataclasses import replace
from uuid import UUID

import pytest

from events.contract import Direction, EndpointStatus, EndpointType, JobStatus
from ferry.endpoint_directory import EndpointInfo
from services.jobs.application import (
    EndpointUnavailable,
    JobConflict,
    JobsApplication,
    Redriven,
    TransferRequest,
    redrive_job_id,
)
from tests.support.fakes.endpoints import InMemoryEndpointDirectory
from tests.support.fakes.jobs import InMemoryIdempotencyStore
from tests.support.single_stream import SINGLE_STREAM, Crash, SingleStreamRecorder

CUSTOMER = "cust-a"
SOURCE = EndpointInfo(
    endpoint_id="11111111-1111-4111-8111-111111111111",
    customer_id=CUSTOMER,
    type=EndpointType.S3,
    status=EndpointStatus.ACTIVE,
    direction=Direction.BOTH,
)
TARGET = replace(SOURCE, endpoint_id="22222222-2222-4222-8222-222222222222", type=EndpointType.SFTP)
DISABLED_SOURCE = replace(SOURCE, status=EndpointStatus.DISABLED)


@pytest.fixture
def directory() -> InMemoryEndpointDirectory:
    return InMemoryEndpointDirectory([SOURCE, TARGET])


@pytest.fixture
def app(directory: InMemoryEndpointDirectory) -> JobsApplication:
    return JobsApplication(
        endpoints=directory, idempotency=InMemoryIdempotencyStore(), env=SINGLE_STREAM
    )


def recorder(app: JobsApplication) -> SingleStreamRecorder:
    assert isinstance(app.recorder, SingleStreamRecorder)
    return app.recorder


def cancelled_job(app: JobsApplication, path: str = "in/a.csv") -> str:
    request = TransferRequest.model_validate(
        {
            "source": {"endpoint_id": SOURCE.endpoint_id, "path": path},
            "target": {"endpoint_id": TARGET.endpoint_id, "path": "out/a.csv"},
        }
    )
    job_id = app.submit(CUSTOMER, "key-1", request).job_id
    assert app.cancel(CUSTOMER, "key-1", job_id).status == JobStatus.CANCELLED
    return job_id


def redrives_of(app: JobsApplication, job_id: str) -> set[UUID]:
    """Every job ever appended whose JobRequested names ``job_id`` as its original."""
    found = set()
    for stream in set(recorder(app).appended):
        job: object = app.repository.get(stream)
        if getattr(job, "redrive_of", None) == job_id:
            found.add(stream)
    return found


def test_the_new_job_is_appended_first_then_the_original_is_marked(app: JobsApplication) -> None:
    # Given a cancelled job
    original = cancelled_job(app)
    appended_before = len(recorder(app).appended)
    # When it is redriven
    answer = app.redrive(CUSTOMER, "key-1", original)
    # Then the new job has the derived id, and two appends were made: new job, then original
    assert answer == Redriven(str(redrive_job_id(original)), original, JobStatus.QUEUED)
    assert recorder(app).appended[appended_before:] == [redrive_job_id(original), UUID(original)]
    assert app.get_job(CUSTOMER, original).redriven_to == answer.job_id
    assert app.get_job(CUSTOMER, answer.job_id).redrive_of == original


def test_a_crash_between_the_two_appends_is_healed_by_the_next_redrive(
    app: JobsApplication, directory: InMemoryEndpointDirectory
) -> None:
    # Given a redrive that crashed after the new job was appended, before the original's mark
    original = cancelled_job(app)
    recorder(app).crash_on(2)
    with pytest.raises(Crash):
        app.redrive(CUSTOMER, "key-1", original)
    new_id = str(redrive_job_id(original))
    assert app.get_job(CUSTOMER, new_id).status == JobStatus.QUEUED
    assert app.get_job(CUSTOMER, original).redriven_to is None  # not marked yet
    # ... and its source endpoint disabled since (the new job exists: no new checks apply)
    directory.put(DISABLED_SOURCE)
    # When the client retries the redrive
    answer = app.redrive(CUSTOMER, "key-1", original)
    # Then it answers the job the first call made, marks the original, and made no other job
    assert answer == Redriven(new_id, original, JobStatus.QUEUED)
    assert app.get_job(CUSTOMER, original).redriven_to == new_id
    assert redrives_of(app, original) == {UUID(new_id)}
    # and once more: the same answer, nothing appended
    appended = len(recorder(app).appended)
    assert app.redrive(CUSTOMER, "key-1", original) == answer
    assert len(recorder(app).appended) == appended


def test_a_crash_before_the_new_job_leaves_nothing(
    app: JobsApplication, directory: InMemoryEndpointDirectory
) -> None:
    original = cancelled_job(app)
    recorder(app).crash_on(1)
    with pytest.raises(Crash):
        app.redrive(CUSTOMER, "key-1", original)
    assert redrives_of(app, original) == set()
    # a retry checks the endpoints as for a first redrive
    directory.put(DISABLED_SOURCE)
    with pytest.raises(EndpointUnavailable):
        app.redrive(CUSTOMER, "key-1", original)
    assert redrives_of(app, original) == set()


def test_the_process_manager_marks_the_original_when_the_new_job_starts(
    app: JobsApplication,
) -> None:
    # Given a redrive that crashed between its two appends, never retried by the client
    original = cancelled_job(app)
    recorder(app).crash_on(2)
    with pytest.raises(Crash):
        app.redrive(CUSTOMER, "key-1", original)
    new_id = str(redrive_job_id(original))
    # When an executor takes the new job
    assert app.job_started(CUSTOMER, new_id, 1, "exec-a") is True
    # Then the original is marked (and a redelivery changes nothing more)
    assert app.get_job(CUSTOMER, original).redriven_to == new_id
    appended = len(recorder(app).appended)
    assert app.job_started(CUSTOMER, new_id, 1, "exec-a") is False
    assert len(recorder(app).appended) == appended


def test_a_job_that_is_no_redrive_starts_without_touching_another_job(
    app: JobsApplication,
) -> None:
    request = TransferRequest.model_validate(
        {
            "source": {"endpoint_id": SOURCE.endpoint_id, "path": "in/b.csv"},
            "target": {"endpoint_id": TARGET.endpoint_id, "path": "out/b.csv"},
        }
    )
    job_id = app.submit(CUSTOMER, "key-1", request).job_id
    appended = len(recorder(app).appended)
    assert app.job_started(CUSTOMER, job_id, 1, "exec-a") is True
    assert recorder(app).appended[appended:] == [UUID(job_id)]


@pytest.mark.parametrize("when", [1, 2], ids=["before-new-job", "between-the-appends"])
def test_a_racing_redrive_converges_on_one_new_job(app: JobsApplication, when: int) -> None:
    # Given a cancelled job, and a second redrive that runs to completion just before the
    # first redrive's first (or second) append
    original = cancelled_job(app)
    racer: list[Redriven] = []
    recorder(app).before_append(
        when, lambda: racer.append(app.redrive(CUSTOMER, "key-2", original))
    )
    # When the first redrive goes on
    answer = app.redrive(CUSTOMER, "key-1", original)
    # Then both answer the same single new job, and the original is marked once
    assert racer == [answer]
    assert redrives_of(app, original) == {UUID(answer.job_id)}
    assert app.get_job(CUSTOMER, original).redriven_to == answer.job_id
    stream = [e for e in app.recorder.select_events(UUID(original)) if "JobRedriven" in e.topic]
    assert len(stream) == 1


def test_racing_redrives_on_threads_make_one_new_job(app: JobsApplication) -> None:
    original = cancelled_job(app)
    barrier = threading.Barrier(6)
    answers: list[object] = []

    def redrive() -> None:
        barrier.wait()
        try:
            answers.append(app.redrive(CUSTOMER, "key-1", original))
        except Exception as error:  # pragma: no cover - reported by the assertion below
            answers.append(error)

    threads = [threading.Thread(target=redrive) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == 6 and len(set(answers)) == 1, answers
    assert redrives_of(app, original) == {redrive_job_id(original)}


def test_a_job_that_cannot_be_redriven_appends_nothing(app: JobsApplication) -> None:
    request = TransferRequest.model_validate(
        {
            "source": {"endpoint_id": SOURCE.endpoint_id, "path": "in/c.csv"},
            "target": {"endpoint_id": TARGET.endpoint_id, "path": "out/c.csv"},
        }
    )
    job_id = app.submit(CUSTOMER, "key-1", request).job_id
    appended = len(recorder(app).appended)
    with pytest.raises(JobConflict):
        app.redrive(CUSTOMER, "key-1", job_id)
    assert len(recorder(app).appended) == appended
