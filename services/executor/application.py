"""The executor's event-sourced application: the Transfer streams."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from events.aggregate import FerryApplication, transfer_stream_id
from events.translate import detail_type_of_topic
from services.executor.domain import Transfer

#: job-stream events that mean "stop before publishing" (the jobs service's contract)
CANCEL_EVENTS = frozenset({"JobCancelRequested", "JobCancelled"})


class TransferApplication(FerryApplication):
    """Loads and saves Transfer aggregates (one stream per job)."""

    def transfer(self, job_id: str) -> Transfer | None:
        try:
            return self.repository.get(transfer_stream_id(job_id))  # type: ignore[no-any-return]
        except AggregateNotFoundError:
            return None

    def cancel_watch(self, job_id: str) -> CancelWatch:
        return CancelWatch(self, job_id)


class CancelWatch:
    """Was a cancel requested for this job? Reads the job's own stream in the event store
    (strongly consistent: a Query with ConsistentRead), only the events after the last one
    seen, so each call costs one small read; once seen, a request is remembered."""

    def __init__(self, app: FerryApplication, job_id: str) -> None:
        self._recorder = app.recorder
        self._stream = UUID(job_id)
        self._seen = 0
        self.requested = False

    def __call__(self) -> bool:
        if self.requested:
            return True
        for stored in self._recorder.select_events(self._stream, gt=self._seen):
            self._seen = max(self._seen, stored.originator_version)
            if detail_type_of_topic(stored.topic) in CANCEL_EVENTS:
                self.requested = True
        return self.requested
