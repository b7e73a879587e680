"""In-memory adapters of the audit ports (services/projections/audit.py) over eventsourcing's
POPO recorder: the chain is computed exactly as the DynamoDB recorder writes it
(``events.chain.link``), the customer-and-time index is a sorted scan, checkpoints a dict."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from eventsourcing.popo import POPOAggregateRecorder

from events.chain import genesis, link
from events.dynamodb import at_key
from services.projections.audit import Audit, IndexPage


class InMemoryChainStore:
    def __init__(self, recorder: POPOAggregateRecorder) -> None:
        self.recorder = recorder

    def stream_items(self, stream_id: str) -> list[dict[str, Any]]:
        with self.recorder._database_lock:
            stored = [e for e in self.recorder._stored_events if str(e.originator_id) == stream_id]
        stored.sort(key=lambda e: e.originator_version)
        items, prev = [], genesis(stream_id)
        for e in stored:
            version = int(e.originator_version)
            chain = link(
                stream_id,
                version,
                e.topic,
                bytes(e.state),
                genesis(stream_id) if version <= 1 else prev,
            )
            prev = chain.hash
            item = {
                "stream_id": stream_id,
                "version": version,
                "topic": e.topic,
                "state": bytes(e.state),
                "at": chain.at,
                "state_sha256": chain.state_sha256,
                "prev_hash": chain.prev_hash,
                "hash": chain.hash,
            }
            if chain.customer_id and chain.at:
                item["customer_id"] = chain.customer_id
                item["at_key"] = at_key(chain.at, stream_id, version)
            items.append(item)
        return items

    def seal(self, stream_id: str, unsealed: Sequence[Mapping[str, Any]], sealed_at: str) -> int:
        return 0  # every item is chained


class InMemoryCustomerIndex:
    def __init__(self, chain: InMemoryChainStore) -> None:
        self.chain = chain

    def page(
        self, customer_id: str, low: str, high: str, start_at_key: str | None, limit: int
    ) -> IndexPage:
        streams = {str(e.originator_id) for e in self.chain.recorder._stored_events}
        items = sorted(
            (
                i
                for s in streams
                for i in self.chain.stream_items(s)
                if i.get("customer_id") == customer_id and (low or "0") <= i["at_key"] <= high
            ),
            key=lambda i: i["at_key"],
        )
        if start_at_key:
            items = [i for i in items if i["at_key"] > start_at_key]
        page = items[:limit]
        last = page[-1]["at_key"] if len(items) > limit else None
        return IndexPage(items=page, last_at_key=last, reads=1)


class InMemoryCheckpointStore:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, list[str]]] = {}

    def documents(self, customer_id: str) -> list[dict[str, Any]]:
        return [json.loads(d) for d in self.objects.get(customer_id, {}).get("docs", [])]

    def put(self, customer_id: str, document: Mapping[str, Any]) -> str:
        self.objects.setdefault(customer_id, {"docs": []})["docs"].append(json.dumps(document))
        return f"memory://checkpoints/{customer_id}/{int(document['seq']):012d}.json"

    def customers(self) -> list[str]:
        return sorted(self.objects)


def in_memory_audit(recorder: POPOAggregateRecorder) -> Audit:
    chain = InMemoryChainStore(recorder)
    return Audit(chain, InMemoryCustomerIndex(chain), InMemoryCheckpointStore())
