"""The Transfer aggregate: lease rules, chunk planning, resume points, contract drift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from eventsourcing.persistence import IntegrityError

from events.translate import stream_events
from services.executor.application import TransferApplication
from services.executor.domain import (
    S3_MAX_PARTS,
    LeaseHeld,
    MiB,
    Transfer,
    TransferFinished,
    chunk_count,
    plan_chunk_size,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def opened(app: TransferApplication, owner: str = "A") -> Transfer:
    t = Transfer.open(
        job_id="job-1",
        customer_id="c1",
        owner_id=owner,
        region="eu-west-1",
        attempt=1,
        lease_for=LEASE,
        now=T0,
    )
    app.save(t)
    return t


def test_two_executors_racing_for_a_new_transfer_one_wins() -> None:
    app = TransferApplication()
    opened(app, "A")
    with pytest.raises(IntegrityError):
        opened(app, "B")


def test_racing_for_an_existing_transfer_one_append_wins() -> None:
    app = TransferApplication()
    t = opened(app)
    t.release(owner_id="A", outcome="retry")
    app.save(t)
    a, b = app.transfer("job-1"), app.transfer("job-1")
    assert a is not None and b is not None
    a.acquire(owner_id="A2", region="r", attempt=2, lease_for=LEASE)
    b.acquire(owner_id="B2", region="r", attempt=2, lease_for=LEASE)
    app.save(a)
    with pytest.raises(IntegrityError):
        app.save(b)


def test_unexpired_lease_of_another_owner_is_respected_and_expired_is_taken_over() -> None:
    app = TransferApplication()
    opened(app, "A")
    t = app.transfer("job-1")
    assert t is not None
    with pytest.raises(LeaseHeld):
        t.acquire(
            owner_id="B", region="r", attempt=1, lease_for=LEASE, now=T0 + timedelta(seconds=5)
        )
    t.acquire(owner_id="B", region="r", attempt=1, lease_for=LEASE, now=T0 + timedelta(seconds=31))
    app.save(t)
    events = stream_events(app.recorder, t.id)
    assert events[-1].takeover_from == "A"  # type: ignore[attr-defined]


def test_finished_transfer_is_not_leased_again() -> None:
    app = TransferApplication()
    t = opened(app)
    t.release(owner_id="A", outcome="succeeded")
    with pytest.raises(TransferFinished):
        t.acquire(owner_id="B", region="r", attempt=2, lease_for=LEASE)


def test_resume_point_follows_committed_chunks_and_every_event_translates() -> None:
    app = TransferApplication()
    t = opened(app)
    t.start_leg(flow="SFTP_TO_S3", leg=1, legs=1, size=12 * MiB, chunk_size=5 * MiB, upload_id="u1")
    t.commit_chunk(leg=1, offset=0, length=5 * MiB, sha256="a" * 64, part_number=1, etag='"e1"')
    t.commit_chunk(
        leg=1, offset=5 * MiB, length=5 * MiB, sha256="b" * 64, part_number=2, etag='"e2"'
    )
    with pytest.raises(ValueError):
        t.commit_chunk(leg=1, offset=0, length=1, sha256="c" * 64)
    t.renew(owner_id="A", lease_for=LEASE)
    t.fail_attempt(code="CONNECTION_FAILED", message="reset", transient=True)
    t.release(owner_id="A", outcome="retry")
    app.save(t)
    again = app.transfer("job-1")
    assert again is not None
    leg = again.legs[1]
    assert (leg.next_offset, leg.next_index, leg.complete) == (10 * MiB, 2, False)
    assert leg.parts() == [{"PartNumber": 1, "ETag": '"e1"'}, {"PartNumber": 2, "ETag": '"e2"'}]
    again.acquire(owner_id="B", region="r", attempt=2, lease_for=LEASE)
    again.commit_chunk(
        leg=1, offset=10 * MiB, length=2 * MiB, sha256="d" * 64, part_number=3, etag='"e3"'
    )
    again.verify(
        size=12 * MiB, sha256="f" * 64, verify="digest", target_checksum=None, duration_seconds=2.0
    )
    again.post_action(action="none", moved_to=None)
    again.release(owner_id="B", outcome="succeeded")
    app.save(again)
    types = [e.detail_type() for e in stream_events(app.recorder, again.id)]
    assert types == [
        "LeaseAcquired",
        "TransferStarted",
        "ChunkCommitted",
        "ChunkCommitted",
        "LeaseRenewed",
        "TransferAttemptFailed",
        "LeaseReleased",
        "LeaseAcquired",
        "ChunkCommitted",
        "TransferVerified",
        "PostActionCompleted",
        "LeaseReleased",
    ]
    assert app.transfer("job-1").finished  # type: ignore[union-attr]


def test_chunk_planning() -> None:
    assert plan_chunk_size(100, 256 * 1024, s3_parts=False) == 256 * 1024
    assert plan_chunk_size(100, 256 * 1024, s3_parts=True) == 5 * MiB
    five_tib = 5 * 1024 * 1024 * MiB
    chunk = plan_chunk_size(five_tib, 8 * MiB, s3_parts=True)
    assert chunk_count(five_tib, chunk) <= S3_MAX_PARTS and chunk % MiB == 0
    assert chunk_count(0, 8 * MiB) == 1 and chunk_count(8 * MiB + 1, 8 * MiB) == 2
