"""In-memory persistence that appends like the DynamoDB MRSC event store: one stream per call.

``events/dynamodb.py`` on multi-Region strong consistency global tables has no
TransactWriteItems, so it refuses an ``insert_events`` whose events belong to more than one
stream (``ProgrammingError``); eventsourcing's POPO recorder accepts it, so unit tests on
plain POPO would never notice an ``Application.save(a, b)`` over two aggregates. This
recorder is the POPO one with that refusal, plus hooks to interleave a crash or a racing
writer between two appends. Use it through the environment::

    EndpointsApplication(secrets=..., env=SINGLE_STREAM)
    app.recorder.crash_on(2)  # the second append from now raises, once
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.popo import POPOAggregateRecorder, POPOFactory

SINGLE_STREAM = {"PERSISTENCE_MODULE": "tests.support.single_stream:SingleStreamFactory"}

#: called with the events of an append, before it is made (outside the store's lock, so a
#: hook may run another command against the same application: a racing writer)
Hook = Callable[[Sequence[StoredEvent]], None]


class Crash(OperationalError):
    """The process died (or the store became unreachable) at this append."""


class SingleStreamRecorder(POPOAggregateRecorder):
    def __init__(self) -> None:
        super().__init__()
        self.hooks: list[Hook] = []
        #: the stream of every append made, in order
        self.appended: list[UUID] = []

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        streams = {str(s.originator_id) for s in stored_events}
        if len(streams) > 1:
            raise ProgrammingError(
                f"one insert_events call spans {len(streams)} streams: {sorted(streams)}"
            )
        for hook in list(self.hooks):
            hook(stored_events)
        result = super().insert_events(stored_events, **kwargs)
        if stored_events:
            self.appended.append(UUID(str(stored_events[0].originator_id)))
        return result

    def before_append(self, number: int, action: Callable[[], None]) -> None:
        """Run ``action`` once, just before the ``number``-th append from now (1-based)."""
        seen = [0]

        def hook(_: Sequence[StoredEvent]) -> None:
            seen[0] += 1
            if seen[0] == number:
                self.hooks.remove(hook)
                action()

        self.hooks.append(hook)

    def crash_on(self, number: int, times: int = 1) -> None:
        """Appends ``number`` .. ``number + times - 1`` from now raise :class:`Crash` and
        store nothing (``times`` > 1: the process is gone, its clean-up appends fail too)."""
        seen = [0]

        def hook(_: Sequence[StoredEvent]) -> None:
            seen[0] += 1
            if seen[0] >= number + times - 1:
                self.hooks.remove(hook)
            if seen[0] >= number:
                raise Crash(f"crashed at append {seen[0]}")

        self.hooks.append(hook)


class SingleStreamFactory(POPOFactory):
    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return SingleStreamRecorder()
