"""``as_of`` parsing (events/as_of.py): a time zone is required, a clock a little fast is
tolerated, the future is refused, and every refusal names ``as_of``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.as_of import CLOCK_SKEW, check_as_of, parse_as_of
from ferry.errors import BadRequest

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_absent_is_none_and_a_past_instant_is_kept() -> None:
    assert parse_as_of(None) is None
    assert parse_as_of("2026-03-03T00:00:00Z") == datetime(2026, 3, 3, tzinfo=UTC)


def test_a_client_clock_slightly_ahead_is_accepted_and_the_future_is_refused() -> None:
    assert check_as_of(NOW + CLOCK_SKEW, now=NOW) == NOW + CLOCK_SKEW
    with pytest.raises(BadRequest) as refused:
        check_as_of(NOW + CLOCK_SKEW + timedelta(seconds=1), now=NOW)
    assert refused.value.field == "as_of"


@pytest.mark.parametrize("text", ["yesterday", "1764676800", "2026-03-03T00:00:00", ""])
def test_not_an_aware_timestamp_names_as_of(text: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_as_of(text)
    assert refused.value.field == "as_of"
