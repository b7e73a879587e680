"""Every published contract event has exactly one read-model fold, or is explicitly not folded.

The folds (``services/projections/readmodels.py``) are one function per contract class,
registered by class and handed the typed contract model: an event's fields are declared once,
in ``events/contract.py``. A new event on a stream a read model folds must get a fold (else its
version would be a gap the projector can never fill); a new event elsewhere must be listed in
``NOT_FOLDED``.
"""

from __future__ import annotations

import typing

import pytest

from events import contract as c
from events.contract import EVENT_TYPES, FerryEvent
from services.projections import readmodels
from services.projections.readmodels import FOLDS, NOT_FOLDED

#: Event families whose streams a read model here folds: every event of them needs a fold.
FOLDED_STREAMS: dict[type[FerryEvent], tuple[str, str]] = {
    c.EndpointEvent: ("endpoints", "version"),
    c.JobEvent: ("jobs", "job_version"),
    c.ExecutorEvent: ("jobs", "transfer_version"),
}


@pytest.mark.parametrize("detail_type", sorted(EVENT_TYPES))
def test_every_published_event_is_folded_or_explicitly_not(detail_type: str) -> None:
    model = EVENT_TYPES[detail_type]
    folded = model in FOLDS
    ignored = issubclass(model, NOT_FOLDED)
    assert folded != ignored, (
        f"{detail_type}: give it a fold in readmodels.py or list it in NOT_FOLDED"
    )


@pytest.mark.parametrize("detail_type", sorted(EVENT_TYPES))
def test_an_event_of_a_folded_stream_feeds_its_streams_read_model(detail_type: str) -> None:
    model = EVENT_TYPES[detail_type]
    for family, (kind, version_attribute) in FOLDED_STREAMS.items():
        if issubclass(model, family):
            folding = FOLDS[model]
            assert (folding.kind, folding.version_attribute) == (kind, version_attribute)


def test_only_contract_events_are_folded() -> None:
    assert set(FOLDS) <= set(EVENT_TYPES.values())


@pytest.mark.parametrize("detail_type", sorted(m.detail_type() for m in FOLDS))
def test_a_fold_takes_its_typed_contract_model(detail_type: str) -> None:
    """The fold reads the model's attributes (type-checked), never a dict of the event."""
    model = EVENT_TYPES[detail_type]
    hints = typing.get_type_hints(FOLDS[model].apply, vars(readmodels))
    assert hints["event"] in (model, FerryEvent), hints  # FerryEvent: version bookkeeping only


def test_a_second_fold_for_one_event_is_refused() -> None:
    with pytest.raises(ValueError, match="two folds"):

        @readmodels.job_fold(c.JobQueued)
        def _again(new: readmodels.Item, event: c.JobQueued) -> None:  # pragma: no cover
            pass
