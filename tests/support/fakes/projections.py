"""The in-memory read-model store: a fake of ``services.projections.store.ReadModelStore`` with
the DynamoDB adapter's semantics (conditional puts, GSI-like pagination)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence

from services.projections.readmodels import ENDPOINTS, JOBS, KEY_ATTRIBUTE, Item
from services.projections.store import (
    ConcurrentUpdate,
    IndexQuery,
    Page,
    ReadModelStore,
    StatsDelta,
    row_range,
    strip_none,
)

__all__ = ["InMemoryReadModelStore"]


class InMemoryReadModelStore(ReadModelStore):
    """The same semantics in a dict (unit tests; pagination like a DynamoDB GSI query)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Item]] = {ENDPOINTS: {}, JOBS: {}}
        self.stats: dict[tuple[str, str], Item] = {}  # (customer_id, hour_shard) -> counters row
        self._lock = threading.Lock()

    def get(self, kind: str, key: str) -> Item | None:
        with self._lock:
            found = self.items[kind].get(key)
            return copy.deepcopy(found) if found is not None else None

    def put(
        self,
        kind: str,
        item: Item,
        expected: dict[str, int] | None,
        stats: Sequence[StatsDelta] = (),
    ) -> None:
        key = item[KEY_ATTRIBUTE[kind]]
        with self._lock:
            current = self.items[kind].get(key)
            if expected is None:
                ok = current is None
            else:
                ok = current is not None and all(current.get(a) == v for a, v in expected.items())
            if not ok:
                raise ConcurrentUpdate(f"{kind}/{key} changed")
            self.items[kind][key] = copy.deepcopy(strip_none(item))
            for delta in stats:  # under the same lock: both or neither
                row = self.stats.setdefault(
                    (delta.customer_id, delta.sort_key),
                    {"customer_id": delta.customer_id, "hour_shard": delta.sort_key},
                )
                for counter, amount in delta.counts.items():
                    row[counter] = row.get(counter, 0) + amount

    def stats_rows(self, customer_id: str, first_hour: str, last_hour: str) -> list[Item]:
        low, high = row_range(first_hour, last_hour)
        with self._lock:
            return [
                copy.deepcopy(row)
                for (customer, sort_key), row in sorted(self.stats.items())
                if customer == customer_id and low <= sort_key <= high
            ]

    def query(self, query: IndexQuery) -> Page:
        key_attribute = KEY_ATTRIBUTE[query.kind]

        def sort_key(item: Item) -> tuple[str, str]:
            return (item["created_at"], item[key_attribute])

        with self._lock:
            matching = [
                copy.deepcopy(i)
                for i in self.items[query.kind].values()
                if i.get(query.partition_attribute) == query.partition_value
                and isinstance(i.get("created_at"), str)
                and (query.since is None or i["created_at"] >= query.since)
                and (query.until is None or i["created_at"] <= query.until)
            ]
        matching.sort(key=sort_key, reverse=query.newest_first)
        if query.start_key:
            start = (query.start_key["created_at"], query.start_key[key_attribute])
            matching = [
                i
                for i in matching
                if (sort_key(i) < start if query.newest_first else sort_key(i) > start)
            ]
        page = matching[: query.limit]
        last = None
        if len(matching) > query.limit and page:
            tail = page[-1]
            last = {
                key_attribute: tail[key_attribute],
                query.partition_attribute: tail[query.partition_attribute],
                "created_at": tail["created_at"],
            }
        return Page(items=page, last_key=last)

    def scan(self, kind: str) -> list[Item]:
        with self._lock:
            return copy.deepcopy(list(self.items[kind].values()))
