"""Realistic event histories for tests, demos and benchmarks of the projections.

``to_stored`` is the inverse of ``events.translate.to_integration``: it turns a contract event
into the ``StoredEvent`` an aggregate would have recorded (same topic shape, same transcoding as
an eventsourcing Application), so histories can be written to any recorder and read back
through the real translation.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.persistence import StoredEvent

from events import contract as c
from events.aggregate import transfer_stream_id
from events.contract import FerryEvent
from events.translate import event_id_for, transcoder
from ferry.names import SOURCE_ENDPOINTS, SOURCE_EXECUTOR, SOURCE_JOBS, SOURCE_ROUTES

_AGGREGATE_TOPIC = {
    SOURCE_ENDPOINTS: "services.endpoints.domain:Endpoint",
    SOURCE_JOBS: "services.jobs.domain:Job",
    SOURCE_EXECUTOR: "services.executor.domain:Transfer",
    SOURCE_ROUTES: "services.routes.domain:Route",
}
_ENVELOPE = {"event_id", "stream_id", "version", "occurred_at", "schema_version"}


_TRANSCODER = transcoder()


def _originator(stream_id: str) -> uuid.UUID | str:
    try:
        return uuid.UUID(stream_id)
    except ValueError:
        return stream_id


def _topic(event: FerryEvent) -> str:
    """The topic of the aggregate event class that declares ``event``'s contract model (a
    route file's ledger events are RouteFile's, not Route's)."""
    aggregate = _AGGREGATE_TOPIC[event.SOURCE]
    if isinstance(event, c.RouteEvent) and event.detail_type().startswith("File"):
        aggregate = "services.routes.domain:RouteFile"
    return f"{aggregate}.{event.detail_type()}"


def to_stored(event: FerryEvent) -> StoredEvent:
    """The stored aggregate event that ``to_integration`` translates back to ``event``."""
    fields = {k: v for k, v in event.model_dump(mode="json").items() if k not in _ENVELOPE}
    originator = _originator(event.stream_id)
    state = {
        **fields,
        "originator_id": originator,
        "originator_version": event.version,
        "timestamp": event.occurred_at,
    }
    return StoredEvent(
        originator_id=originator,
        originator_version=event.version,
        topic=_topic(event),
        state=_TRANSCODER.encode(state),
    )


class History:
    """Builds events stream by stream: versions, event ids and times are assigned in order."""

    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(seconds=1)):
        self.clock = start or datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
        self.step = step
        self.versions: dict[str, int] = defaultdict(int)
        self.events: list[FerryEvent] = []

    def add(
        self,
        model: type[FerryEvent],
        stream_id: str,
        customer_id: str,
        correlation_id: str,
        **fields: Any,
    ) -> FerryEvent:
        self.versions[stream_id] += 1
        self.clock += self.step
        version = self.versions[stream_id]
        event = model.model_validate(
            {
                "event_id": event_id_for(stream_id, version),
                "stream_id": stream_id,
                "version": version,
                "occurred_at": self.clock,
                "customer_id": customer_id,
                "correlation_id": correlation_id,
                **fields,
            }
        )
        self.events.append(event)
        return event

    # --------------------------------------------------------------- endpoints

    def endpoint(
        self, customer_id: str, *, endpoint_type: str = "sftp", name: str | None = None
    ) -> str:
        endpoint_id = str(uuid.uuid4())
        config: dict[str, Any] = (
            {
                "type": "sftp",
                "host": "127.0.0.1",
                "port": 2222,
                "username": "ferry",
                "base_path": "/upload",
                "host_key": "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
                "auth_method": "private_key",
            }
            if endpoint_type == "sftp"
            else {"type": "s3", "bucket": "acme-out", "prefix": "outbox/"}
        )
        self.add(
            c.EndpointRegistered,
            endpoint_id,
            customer_id,
            endpoint_id,
            endpoint_id=endpoint_id,
            name=name or f"{customer_id}-{endpoint_type}",
            direction="BOTH",
            max_concurrency=4,
            config=config,
            secret_arn=f"arn:aws:secretsmanager:us-east-1:123456789012:secret:ferry/endpoints/{customer_id}/{endpoint_id}",
            actor="key-1",
        )
        self.add(
            c.EndpointValidated, endpoint_id, customer_id, endpoint_id, endpoint_id=endpoint_id
        )
        return endpoint_id

    def endpoint_lifecycle(self, customer_id: str) -> str:
        """Registered, validation failed, updated, validated, disabled, enabled."""
        endpoint_id = self.endpoint(customer_id)
        e = {"endpoint_id": endpoint_id}
        self.add(
            c.EndpointValidationFailed,
            endpoint_id,
            customer_id,
            endpoint_id,
            reason_code="auth_failed",
            message="authentication failed",
            **e,
        )
        self.add(
            c.EndpointUpdated,
            endpoint_id,
            customer_id,
            endpoint_id,
            changed={"port": 22, "max_concurrency": 2},
            credentials_rotated=True,
            actor="key-1",
            **e,
        )
        self.add(c.EndpointValidated, endpoint_id, customer_id, endpoint_id, **e)
        self.add(c.EndpointDisabled, endpoint_id, customer_id, endpoint_id, actor="key-1", **e)
        self.add(c.EndpointEnabled, endpoint_id, customer_id, endpoint_id, actor="key-1", **e)
        return endpoint_id

    # --------------------------------------------------------------- jobs

    def job(
        self,
        customer_id: str,
        source_endpoint: str,
        target_endpoint: str,
        *,
        outcome: str = "succeeded",
        size: int = 3 * 1024 * 1024,
        chunk_size: int = 1024 * 1024,
        job_id: str | None = None,
    ) -> str:
        """A job through the executor: outcome succeeded (one retry on the way), failed,
        cancelled (while queued) or queued (not picked up yet)."""
        job_id = job_id or str(uuid.uuid4())
        transfer = str(transfer_stream_id(job_id))
        spec = {
            "flow": "SFTP_TO_SFTP",
            "source": {"endpoint_id": source_endpoint, "path": f"out/{job_id[:8]}.csv"},
            "target": {"endpoint_id": target_endpoint, "path": f"in/{job_id[:8]}.csv"},
            "options": {"max_attempts": 3},
        }
        j = {"job_id": job_id}

        def job_event(model: type[FerryEvent], **fields: Any) -> None:
            self.add(model, job_id, customer_id, job_id, **j, **fields)

        def transfer_event(model: type[FerryEvent], **fields: Any) -> None:
            self.add(model, transfer, customer_id, job_id, **j, **fields)

        job_event(
            c.JobRequested,
            spec=spec,
            idempotency_key=f"idem-{job_id}",
            request_hash="0" * 64,
            actor="key-1",
        )
        job_event(c.JobQueued, spec=spec, attempt=1)
        if outcome == "queued":
            return job_id
        if outcome == "cancelled":
            job_event(c.JobCancelled, actor="key-1", reason="not needed")
            return job_id
        chunks = max(1, -(-size // chunk_size))
        expires = self.clock + timedelta(minutes=5)
        transfer_event(
            c.LeaseAcquired, owner_id="exec-a", region="us-east-1", expires_at=expires, attempt=1
        )
        job_event(c.JobStarted, attempt=1, executor_id="exec-a")
        transfer_event(
            c.TransferStarted,
            flow="SFTP_TO_SFTP",
            leg=1,
            legs=2,
            size=size,
            chunk_size=chunk_size,
            chunk_count=chunks,
        )
        transfer_event(
            c.ChunkCommitted,
            leg=1,
            index=0,
            offset=0,
            length=min(chunk_size, size),
            sha256="1" * 64,
            bytes_committed=min(chunk_size, size),
            bytes_total=size,
        )
        transfer_event(
            c.TransferAttemptFailed,
            attempt=1,
            error_code="connection_reset",
            error_message="connection reset by peer",
            transient=outcome != "failed",
            bytes_committed=min(chunk_size, size),
        )
        if outcome == "failed":
            transfer_event(c.LeaseReleased, owner_id="exec-a", outcome="failed")
            job_event(
                c.JobFailed,
                error_code="connection_reset",
                error_message="connection reset by peer",
                attempts=1,
            )
            return job_id
        transfer_event(c.LeaseReleased, owner_id="exec-a", outcome="retry")
        job_event(
            c.JobRetryScheduled,
            spec=spec,
            attempt=2,
            next_attempt_at=self.clock + timedelta(seconds=30),
            error_code="connection_reset",
            error_message="connection reset by peer",
        )
        transfer_event(
            c.LeaseAcquired,
            owner_id="exec-b",
            region="us-east-1",
            expires_at=self.clock + timedelta(minutes=5),
            attempt=2,
        )
        job_event(c.JobStarted, attempt=2, executor_id="exec-b")
        transfer_event(
            c.LeaseRenewed, owner_id="exec-b", expires_at=self.clock + timedelta(minutes=6)
        )
        for leg in (1, 2):
            start = 1 if leg == 1 else 0
            transfer_event(
                c.TransferStarted,
                flow="SFTP_TO_SFTP",
                leg=leg,
                legs=2,
                size=size,
                chunk_size=chunk_size,
                chunk_count=chunks,
            )
            for index in range(start, chunks):
                done = min((index + 1) * chunk_size, size)
                transfer_event(
                    c.ChunkCommitted,
                    leg=leg,
                    index=index,
                    offset=index * chunk_size,
                    length=done - index * chunk_size,
                    sha256=f"{index:064x}",
                    bytes_committed=done,
                    bytes_total=size,
                )
        result = {
            "size": size,
            "sha256": "a" * 64,
            "duration_seconds": 2.5,
            "throughput_bytes_per_second": size / 2.5,
        }
        transfer_event(c.TransferVerified, verify="digest", **result)
        job_event(c.JobVerified, **result)
        transfer_event(c.PostActionCompleted, action="none")
        transfer_event(c.LeaseReleased, owner_id="exec-b", outcome="succeeded")
        job_event(c.JobSucceeded, attempts=2, **result)
        return job_id
