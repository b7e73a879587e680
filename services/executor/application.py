"""The executor's event-sourced application: the Transfer streams."""

from __future__ import annotations

from eventsourcing.application import AggregateNotFoundError

from events.aggregate import FerryApplication, transfer_stream_id
from services.executor.domain import Transfer


class TransferApplication(FerryApplication):
    """Loads and saves Transfer aggregates (one stream per job)."""

    def transfer(self, job_id: str) -> Transfer | None:
        try:
            return self.repository.get(transfer_stream_id(job_id))  # type: ignore[no-any-return]
        except AggregateNotFoundError:
            return None
