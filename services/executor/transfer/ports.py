"""The two ports of the data plane. A :class:`Source` reads a file as chunks; a :class:`Sink`
makes chunks durable at a target (in any order, several at once) and publishes the file once.
Adapters: ``s3.py`` (S3 objects, the staging object of SFTP→SFTP), ``sftp.py``; the in-memory
ones for tests are in ``tests/support/fakes/transfer.py``. Only adapters make boto3/SSH calls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from events.contract import VerifyMode
from services.executor.domain import Leg

__all__ = ["Sink", "Source", "SourceInfo", "Written"]


@dataclass(frozen=True)
class SourceInfo:
    size: int
    #: what identifies this content (ETag, size:mtime): a resumed leg whose source version
    #: changed starts again
    version: str | None


@dataclass(frozen=True)
class Written:
    """What a sink reports for a durable chunk (recorded in its ChunkCommitted)."""

    part_number: int | None = None
    etag: str | None = None


class Source(Protocol):
    def info(self) -> SourceInfo: ...

    def open_range(self, offset: int, length: int, chunk: int) -> Iterator[bytes]:
        """``length`` bytes from ``offset`` as pieces of ``chunk`` bytes (the last shorter),
        from ONE streaming read (one GET / one pipelined SFTP read). Fewer bytes only if the
        source ended early. Closing the iterator releases the read."""
        ...


class Sink(Protocol):
    #: chunks are S3 parts (5 MiB minimum, 10,000 at most)
    s3_parts: bool
    #: False for the SFTP→SFTP staging object (its publish is not the delivery)
    is_target: bool
    #: the file is at the target (published by this attempt or an earlier one)
    published: bool
    #: where, for messages
    where: str

    def begin(self, size: int, chunk: int) -> dict[str, Any]:
        """Prepare a fresh leg; returns TransferStarted's upload_id / temp_path."""
        ...

    def resume(self, leg: Leg) -> None:
        """Check what an earlier attempt left at the target still holds the committed chunks;
        raise :class:`~services.executor.transfer.context.Restart` if not."""
        ...

    def write_chunk(self, leg: Leg, index: int, offset: int, data: bytes, sha256: str) -> Written:
        """Make one chunk durable at the target (returns once it is). Called from K threads at
        once, in any order."""
        ...

    def finalize(self, leg: Leg, verify: VerifyMode, digest: str | None) -> tuple[str, str | None]:
        """Publish (rename / complete the upload) and verify; returns (whole-file sha256 — the
        given ``digest``, or computed by re-reading the target when None —, target checksum)."""
        ...

    def discard(self, leg: Leg | None) -> None:
        """Abort: remove what this leg left at the target (temp file, multipart upload)."""
        ...

    def close(self) -> None: ...
