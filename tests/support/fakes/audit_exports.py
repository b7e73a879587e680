"""In-memory adapters of the audit-export job ports (``services.projections.audit_exports``):
the status store (with the Idempotency-Key claim rules of the DynamoDB one), a queue that keeps
its messages, and files kept in memory with stand-in URLs."""

from __future__ import annotations

from datetime import datetime

from ferry.errors import Invalid
from services.projections.audit_exports import (
    IDEMPOTENCY_HEADER,
    AuditExports,
    ExportFiles,
    ExportQueue,
    ExportRecord,
    ExportStore,
    export_prefix,
)


class InMemoryExportStore(ExportStore):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], ExportRecord] = {}
        self.claims: dict[str, tuple[str, str, datetime]] = {}  # scope -> (id, hash, expiry)

    def create(
        self, record: ExportRecord, claim: tuple[str, str, datetime] | None
    ) -> ExportRecord | None:
        if claim is not None:
            scope, request_hash, expires = claim
            held = self.claims.get(scope)
            now = expires.timestamp() - 24 * 3600
            if held is not None and held[2].timestamp() >= now:
                if held[1] != request_hash:
                    raise Invalid(
                        f"{IDEMPOTENCY_HEADER}: already used for another period within 24 hours",
                        field=IDEMPOTENCY_HEADER,
                        code="idempotency_key_reused",
                    )
                return self.records[(record.customer_id, held[0])]
            self.claims[scope] = (record.export_id, request_hash, expires)
        self.records[(record.customer_id, record.export_id)] = record
        return None

    def get(self, customer_id: str, export_id: str) -> ExportRecord | None:
        return self.records.get((customer_id, export_id))

    def list(self, customer_id: str, limit: int) -> list[ExportRecord]:
        mine = [r for (c, _), r in self.records.items() if c == customer_id]
        return sorted(mine, key=lambda r: r.export_id, reverse=True)[:limit]

    def update(self, record: ExportRecord, expected: frozenset[str]) -> bool:
        stored = self.records.get((record.customer_id, record.export_id))
        if stored is None or stored.status not in expected:
            return False
        self.records[(record.customer_id, record.export_id)] = record
        return True


class InMemoryExportQueue(ExportQueue):
    def __init__(self, *, broken: bool = False) -> None:
        self.messages: list[tuple[str, str]] = []
        self.broken = broken

    def send(self, customer_id: str, export_id: str) -> None:
        if self.broken:
            raise ConnectionError("queue unreachable")
        self.messages.append((customer_id, export_id))


class MemorySink:
    def __init__(self, files: dict[str, bytes], prefix: str) -> None:
        self.files, self.prefix = files, prefix

    def put(self, name: str, data: bytes) -> str:
        self.files[self.prefix + name] = data
        return f"memory://{self.prefix}{name}"

    def get(self, name: str) -> bytes | None:
        return self.files.get(self.prefix + name)


class InMemoryExportFiles(ExportFiles):
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def sink(self, customer_id: str, export_id: str) -> MemorySink:
        return MemorySink(self.files, export_prefix(customer_id, export_id))

    def url(self, customer_id: str, export_id: str, name: str, expires_in: int) -> str:
        key = export_prefix(customer_id, export_id) + name
        return f"https://audit.example.invalid/{key}?expires={expires_in}"


def in_memory_exports() -> AuditExports:
    return AuditExports(InMemoryExportStore(), InMemoryExportQueue(), InMemoryExportFiles())
