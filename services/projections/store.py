"""The projections' storage port: read-model items by kind, key and GSI partition
(``ReadModelStore``; the DynamoDB implementation is in adapters.py, the in-memory fake in
``tests/support/fakes/projections.py``), shared by the projector (application.py) and the
queries (queries.py)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.projections.readmodels import Item


class ConcurrentUpdate(Exception):
    """A conditional write lost: another consumer changed the item since it was read."""


@dataclass(frozen=True)
class IndexQuery:
    """Items of one partition of a read model's GSI (sort key ``created_at``)."""

    kind: str
    index: str
    partition_attribute: str
    partition_value: str
    limit: int
    since: str | None = None
    until: str | None = None
    start_key: dict[str, str] | None = None
    newest_first: bool = True
    attributes: tuple[str, ...] | None = None  # only these (and the keys); None: every one


@dataclass(frozen=True)
class StatsDelta:
    """A change to one counters item: the customer's, the hour's, one shard's."""

    customer_id: str
    hour: str  # UTC, "YYYY-MM-DDTHH" (stats.HOUR_FORMAT)
    shard: int
    counts: dict[str, int]  # counter -> amount to add (negative to take away)

    @property
    def sort_key(self) -> str:
        return row_key(self.hour, self.shard)


def row_key(hour: str, shard: int) -> str:
    """The sort key of one counters row (``hour_shard``): the hour first, so a range of hours
    is one key condition."""
    return f"{hour}#{shard}"


def row_range(first_hour: str, last_hour: str) -> tuple[str, str]:
    """The lowest and highest sort keys of hours ``first_hour`` to ``last_hour``, every shard
    ('~' sorts after every shard number)."""
    return row_key(first_hour, 0), f"{last_hour}#~"


@dataclass(frozen=True)
class Page:
    items: list[Item]
    last_key: dict[str, str] | None


class ReadModelStore(ABC):
    """Read-model items by kind ("endpoints" | "jobs"), key, and GSI partition."""

    @abstractmethod
    def get(self, kind: str, key: str) -> Item | None: ...

    @abstractmethod
    def put(
        self,
        kind: str,
        item: Item,
        expected: dict[str, int] | None,
        stats: Sequence[StatsDelta] = (),
    ) -> None:
        """Write ``item`` (top-level None values are dropped). ``expected`` None: the item must
        not exist; else each version attribute must still have the given value. Raises
        ``ConcurrentUpdate`` otherwise. ``stats``: counter changes (services/projections/stats.py)
        applied atomically with the write — both or neither."""

    @abstractmethod
    def stats_rows(self, customer_id: str, first_hour: str, last_hour: str) -> list[Item]:
        """The job-statistics counters rows of one customer, hours ``first_hour`` to
        ``last_hour`` (both included, every shard): keys ``customer_id``, ``hour_shard``."""

    def get_many(self, kind: str, keys: Iterable[str]) -> dict[str, Item]:
        """The existing items among ``keys`` (strongly consistent, like ``get``), by key. One
        round trip where the store can (DynamoDB BatchGetItem); this default asks one by one."""
        found = {}
        for key in keys:
            item = self.get(kind, key)
            if item is not None:
                found[key] = item
        return found

    @abstractmethod
    def query(self, query: IndexQuery) -> Page: ...

    @abstractmethod
    def scan(self, kind: str) -> list[Item]:
        """Every item (tests and rebuild checks)."""


def strip_none(item: Item) -> Item:
    return {k: v for k, v in item.items() if v is not None}
