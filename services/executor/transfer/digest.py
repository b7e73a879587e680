"""Re-reading a target: the whole-file sha256, each chunk checked against its recorded digest."""

from __future__ import annotations

import hashlib

from services.executor import errors
from services.executor.domain import Leg

__all__ = ["REREAD_BLOCK", "ChunkChecker"]

REREAD_BLOCK = 4 * 1024 * 1024


class ChunkChecker:
    """Whole-file sha256 of bytes read back from a target, checking each chunk (at the leg's
    chunk boundaries, whatever the read size) against the digest recorded from the source."""

    def __init__(self, leg: Leg, where: str) -> None:
        self.leg, self.where = leg, where
        self.whole = hashlib.sha256()
        self.part = hashlib.sha256()
        self.index = 0
        self.filled = 0

    def update(self, data: bytes) -> None:
        self.whole.update(data)
        view = memoryview(data)
        while len(view):
            take = min(len(view), self.leg.chunk_size - self.filled)
            self.part.update(view[:take])
            self.filled += take
            view = view[take:]
            if self.filled == self.leg.chunk_size:
                self._close_chunk()

    def _close_chunk(self) -> None:
        chunk = self.leg.committed.get(self.index)
        recorded = chunk.sha256 if chunk is not None else ""
        if recorded and self.part.hexdigest() != recorded:
            raise errors.IntegrityMismatch(
                f"{self.where}: chunk {self.index} differs from the source's"
            )
        self.index += 1
        self.part = hashlib.sha256()
        self.filled = 0

    def hexdigest(self) -> str:
        if self.filled:
            self._close_chunk()
        return self.whole.hexdigest()
