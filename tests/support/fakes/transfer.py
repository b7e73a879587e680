"""In-memory Source and Sink for the transfer engine (``services.executor.transfer.ports``):
the pipeline and the resume routine run against them in unit tests, with the real Transfer
aggregate and eventsourcing's in-memory persistence."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from events.contract import VerifyMode
from services.executor import errors
from services.executor.domain import Leg
from services.executor.ports import Endpoint
from services.executor.transfer.context import Restart, RunContext, Stats, commit_point
from services.executor.transfer.ports import SourceInfo, Written


class MemorySource:
    """A file in memory. Records every streaming read as (offset, length) and the bytes it
    yielded; ``live`` counts chunks handed out and not yet written by the sink (set by the
    sink), so a test can see the pipeline's memory bound."""

    def __init__(self, data: bytes, stats: Stats | None = None, version: str = "v1") -> None:
        self.data = data
        self.version = version
        self.stats = stats or Stats()
        self.reads: list[tuple[int, int]] = []
        self.bytes_read = 0
        self.live = 0
        self.max_live = 0
        self._lock = threading.Lock()

    def info(self) -> SourceInfo:
        return SourceInfo(len(self.data), self.version)

    def open_range(self, offset: int, length: int, chunk: int) -> Iterator[bytes]:
        self.reads.append((offset, length))
        end = min(offset + length, len(self.data))
        at = offset
        while at < end:
            piece = self.data[at : min(at + chunk, end)]
            at += len(piece)
            with self._lock:
                self.bytes_read += len(piece)
                self.live += 1
                self.max_live = max(self.max_live, self.live)
            self.stats.add("source_bytes", len(piece))
            yield piece

    def released(self) -> None:
        with self._lock:
            self.live -= 1


class MemorySink:
    """A target in memory: chunks land in a dict (durable when ``write_chunk`` returns), the
    file exists only after ``finalize`` (the publish). ``delay(index)`` slows chosen chunks so
    they finish after later ones; ``fail(index)`` may raise to simulate a failed write.
    ``single_put``: like S3's single PUT, the one chunk's write is the publish (``on_publish``
    runs right after it, e.g. to request a cancel that is then too late)."""

    s3_parts = False
    is_target = True

    def __init__(
        self,
        ctx: RunContext,
        *,
        source: MemorySource | None = None,
        delay: Callable[[int], float] = lambda i: 0.0,
        fail: Callable[[int], None] = lambda i: None,
        single_put: bool = False,
        on_publish: Callable[[], None] = lambda: None,
    ) -> None:
        self.ctx = ctx
        self.single_put = single_put
        self.on_publish = on_publish
        self.source = source
        self.delay = delay
        self.fail = fail
        self.where = "memory"
        self.parts: dict[int, bytes] = {}
        self.file: bytes | None = None
        self.published = False
        self.started = False
        self.discarded = 0
        self.finished_order: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def begin(self, size: int, chunk: int) -> dict[str, Any]:
        self.parts.clear()
        self.started = True
        return {"temp_path": "memory.part"}

    def resume(self, leg: Leg) -> None:
        if not self.started:
            raise Restart("nothing at the target")
        for c in leg.chunks:
            if hashlib.sha256(self.parts.get(c.index, b"?")).hexdigest() != c.sha256:
                raise Restart(f"chunk {c.index} is not at the target")

    def write_chunk(self, leg: Leg, index: int, offset: int, data: bytes, sha256: str) -> Written:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay(index))
            self.fail(index)
            if self.single_put:
                commit_point(self.ctx, publish=True)
                self.file, self.published = bytes(data), True
                self.on_publish()
            self.parts[index] = bytes(data)
            with self._lock:
                self.finished_order.append(index)
            return Written(etag=f"e{index}")
        finally:
            with self._lock:
                self.in_flight -= 1
            if self.source is not None:
                self.source.released()

    def finalize(self, leg: Leg, verify: VerifyMode, digest: str | None) -> tuple[str, str | None]:
        body = b"".join(self.parts[i] for i in range(leg.chunk_count))
        if len(body) != leg.size:
            raise errors.IntegrityMismatch("size differs")
        whole = hashlib.sha256(body).hexdigest()
        if digest is not None and digest != whole:
            raise errors.IntegrityMismatch("sha256 differs")
        if not self.published:
            commit_point(self.ctx, publish=True)
        self.file = body
        self.published = True
        return digest or whole, None

    def discard(self, leg: Leg | None) -> None:
        self.parts.clear()
        self.started = False
        self.discarded += 1

    def close(self) -> None:
        pass


class MemoryEndpoints:
    """The engine's endpoint port, for runs whose legs are given sources and sinks directly."""

    def get(self, endpoint_id: str) -> Endpoint:
        return Endpoint(endpoint_id=endpoint_id, type="memory")

    def resolve(self, endpoint: Endpoint, path: str) -> str:
        return path

    def sftp(self, endpoint: Endpoint) -> Any:
        raise AssertionError("no SFTP in memory")

    def s3(self, endpoint: Endpoint | None) -> Any:
        raise AssertionError("no S3 in memory")
