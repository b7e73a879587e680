"""The transfer engine: the four flows, chunk by chunk, resumable from committed chunks.

Design of the whole-file digest (``TransferVerified.sha256``):

- Every ChunkCommitted carries the sha256 of that chunk's bytes as read from the source.
- When one attempt streamed a leg from offset 0 to the end, the whole-file sha256 is computed
  from that source stream as it passes.
- When a leg resumed (an earlier process committed a prefix), the prefix's bytes are not read
  from the source again (bytes read from the source after a kill stay ≤ one chunk). Instead the
  whole-file sha256 is computed by re-reading the *target* (the SFTP temp file before the
  rename, or the completed S3 object) and every chunk read back is checked against the sha256
  recorded for it from the source stream, so the digest still proves the source's bytes.
- SFTP→SFTP goes through S3 staging: leg 2's chunks are checked against leg 1's source chunk
  digests as they stream, so leg 2's stream digest is the source digest.
- S3→S3 is a server-side copy (no bytes through the executor): the digest is the source's
  full-object ChecksumSHA256 when S3 has one, else one streaming GET of the copied object.

Verify modes: ``size`` checks the size at the target; ``digest`` adds S3's own checksums
(each part's MD5 ETag when uploaded, the multipart ETag after completion; SFTP has no server-side
checksum, so every chunk is acknowledged by the server before it's committed); ``reread``
re-reads the target and compares sha256.

Over 400 lines until the next issue rebuilds the engine on Source/Sink ports (the S3 and SFTP
sources and sinks then leave this module).
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from botocore.exceptions import ClientError

from events.contract import Flow, JobSpec, PostAction, VerifyMode
from ferry.names import OBJECT_MARKER
from services.executor import errors, post_actions
from services.executor.adapters import (
    is_md5_etag,
    iter_body,
    md5_etag_of_parts,
    s3_error,
    sha256_from_checksum,
)
from services.executor.domain import Leg, Transfer, plan_chunk_size
from services.executor.ports import Endpoint

log = logging.getLogger(__name__)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class Cancelled(Exception):
    """A cancel was requested for the job (its stream, read at a commit point): stop before
    publishing anything, clean up, release the lease with outcome=cancelled."""


class Abandoned(Exception):
    """The process is stopping (SIGTERM): leave the job for another executor."""


class LeaseLost(Exception):
    """Another executor appended to the Transfer stream: stop without writing."""


class _Restart(Exception):
    """The partial state of a leg can't be resumed: start the leg again from offset 0."""


# --- ports -------------------------------------------------------------------------------------
class EndpointPort(Protocol):
    def get(self, endpoint_id: str) -> Endpoint: ...

    def resolve(self, endpoint: Endpoint, path: str) -> str:
        """S3: the object key; SFTP: the absolute remote path."""
        ...

    def sftp(self, endpoint: Endpoint) -> Any: ...

    def s3(self, endpoint: Endpoint | None) -> Any: ...


class Fault:
    """TEST ONLY fault injection: ``FERRY_EXECUTOR_FAULT=point[:n]`` SIGKILLs this process at
    the named point (``before_first_chunk``, ``after_chunk:N``, ``before_publish``,
    ``after_publish``, ``after_write``: a single-object write — PUT or CopyObject — landed and
    its commit is not recorded yet). Inert unless that setting is present."""

    def __init__(self, spec: str | None) -> None:
        self.point, _, n = (spec or "").partition(":")
        self.n = int(n) if n else 1
        self.chunks = 0

    def hit(self, point: str) -> None:
        if not self.point:
            return
        if point == "chunk":
            self.chunks += 1
            if self.point == "after_chunk" and self.chunks >= self.n:
                os.kill(os.getpid(), signal.SIGKILL)
        elif point == self.point:
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Stats:
    source_bytes: int = 0
    target_reread_bytes: int = 0
    chunks_committed: int = 0


@dataclass
class RunContext:
    """Callbacks a run needs from the worker."""

    record: Callable[[Callable[[Transfer], Any]], Any]
    check: Callable[[], None] = lambda: None
    #: a cheap, strongly consistent "was a cancel requested?" (the job's stream)
    cancelled: Callable[[], bool] = lambda: False
    fault: Fault = field(default_factory=lambda: Fault(None))
    stats: Stats = field(default_factory=Stats)
    #: set just before the first write that can publish the file at the target (rename,
    #: multipart completion, single PUT, CopyObject): from then on a cancel is too late
    publishing: bool = False


def commit_point(ctx: RunContext, *, publish: bool = False) -> None:
    """Before a chunk commit or the publish: stop if the lease is lost / the process stops,
    and honour a requested cancel. ``publish``: the next call may publish the file, so a cancel
    requested after this point is too late (the rename decides, not the request)."""
    ctx.check()
    if ctx.cancelled():
        raise Cancelled()
    if publish:
        ctx.publishing = True


# --- sources -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceInfo:
    size: int
    version: str | None


class S3Source:
    """One streaming GET from the resume offset (``Range: bytes=N-``)."""

    def __init__(self, client: Any, bucket: str, key: str, stats: Stats) -> None:
        self.client, self.bucket, self.key, self.stats = client, bucket, key, stats
        self._etag: str | None = None
        self.checksum_sha256: str | None = None

    def info(self) -> SourceInfo:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key, ChecksumMode="ENABLED")
        except Exception as exc:
            raise s3_error(exc, f"head s3://{self.bucket}/{self.key}") from None
        self._etag = head.get("ETag")
        self.checksum_sha256 = sha256_from_checksum(head.get("ChecksumSHA256"))
        return SourceInfo(int(head["ContentLength"]), self._etag)

    def read(self, offset: int, block: int, size: int) -> Iterator[bytes]:
        """Blocks of ``block`` bytes from ``offset`` to the end, from one streaming GET."""
        if offset >= size:
            return
        what = f"read s3://{self.bucket}/{self.key} from {offset}"
        try:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
            if offset:
                kwargs["Range"] = f"bytes={offset}-"
            if self._etag:
                kwargs["IfMatch"] = self._etag
            body = self.client.get_object(**kwargs)["Body"]
        except Exception as exc:
            if isinstance(exc, ClientError) and exc.response["Error"]["Code"] in (
                "PreconditionFailed",
                "412",
            ):
                raise errors.TargetChanged(f"{what}: the source object changed") from None
            raise s3_error(exc, what) from None
        try:
            for data in iter_body(body, block):
                self.stats.source_bytes += len(data)
                yield data
        except errors.TransferError:
            raise
        except Exception as exc:
            raise s3_error(exc, what) from None
        finally:
            body.close()


class SftpSource:
    """``read_stream`` (bounded pipelining) regrouped into chunks."""

    def __init__(self, session: Any, path: str, stats: Stats) -> None:
        self.session, self.path, self.stats = session, path, stats

    def info(self) -> SourceInfo:
        st = self.session.stat(self.path)
        if st is None or st.is_dir:
            raise errors.SourceNotFound(f"sftp source {self.path} not found")
        return SourceInfo(int(st.size), f"{st.size}:{int(st.mtime)}")

    def read(self, offset: int, block: int, size: int) -> Iterator[bytes]:
        """Blocks from ``offset`` to EOF (``read_stream``: bounded read-ahead)."""
        if offset >= size:
            return
        with self.session.read_stream(self.path, offset, block_size=block) as stream:
            for data in stream:
                self.stats.source_bytes += len(data)
                yield data


class _Blocks:
    """Cuts a block stream at chunk boundaries: ``take(n)`` yields exactly n bytes (fewer only
    at the end of the stream), keeping the rest of a block for the next chunk."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks = blocks
        self.rest = b""

    def take(self, n: int) -> Iterator[bytes]:
        while n > 0:
            if not self.rest:
                try:
                    self.rest = next(self.blocks)
                except StopIteration:
                    return
            piece, self.rest = self.rest[:n], self.rest[n:]
            n -= len(piece)
            yield piece

    def close(self) -> None:
        close = getattr(self.blocks, "close", None)
        if close is not None:
            close()


#: Source read size: blocks are passed on to the target as they arrive (SFTP targets write
#: while the chunk is still being read); a chunk is committed once all its blocks are durable.
BLOCK_SIZE = 1024 * 1024
SFTP_BLOCK_SIZE = 4 * 1024 * 1024  # read_stream's faster block size (bench/sftp_adapter.py)


class _ChunkChecker:
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
        recorded = self.leg.chunks[self.index].sha256 if self.index < len(self.leg.chunks) else ""
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


REREAD_BLOCK = 4 * 1024 * 1024


# --- sinks -----------------------------------------------------------------------------------
class S3Sink:
    """Single PUT below a threshold, else a multipart upload resumable from recorded parts."""

    s3_parts = True

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        overwrite: bool,
        single_put_threshold: int,
        ctx: RunContext,
        kms_key_id: str | None = None,
        job_id: str = "",
    ) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.job_id = job_id
        self.overwrite = overwrite
        self.threshold = single_put_threshold
        self.ctx = ctx
        self.kms = kms_key_id
        self.published = False
        self.is_target = True  # False for the SFTP→SFTP staging object
        self.where = f"s3://{bucket}/{key}"
        self._pending: list[bytes] = []
        # an earlier attempt started this single-object leg: its PUT/CopyObject may have landed
        # without its commit being recorded (killed in between)
        self.maybe_written = False

    def _extra(self) -> dict[str, Any]:
        """Arguments of every object-creating call: encryption, and the ``ferry-job-id``
        metadata that marks objects Ferry wrote (routes never trigger on them: no loops)."""
        extra: dict[str, Any] = {"Metadata": {OBJECT_MARKER: self.job_id}} if self.job_id else {}
        if self.kms:
            extra.update({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms})
        return extra

    def _head(self) -> dict[str, Any] | None:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=self.key))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise s3_error(exc, f"head {self.where}") from None
        except Exception as exc:
            raise s3_error(exc, f"head {self.where}") from None

    def begin(self, size: int, chunk: int, *, multipart: bool | None = None) -> dict[str, Any]:
        if not self.overwrite and self._head() is not None:
            raise errors.TargetExists(f"{self.where} exists and overwrite is false")
        if multipart is None:
            multipart = not (size < self.threshold and size <= chunk)
        if not multipart:
            return {}
        try:
            resp = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, **self._extra()
            )
        except Exception as exc:
            raise s3_error(exc, f"create upload {self.where}") from None
        return {"upload_id": resp["UploadId"]}

    def _completed_matches(self, leg: Leg) -> bool:
        head = self._head()
        if head is None or int(head["ContentLength"]) != leg.size:
            return False
        etags = [c.etag or "" for c in leg.chunks]
        if leg.upload_id is None:
            return bool(etags) and head.get("ETag") == etags[-1]
        if all(is_md5_etag(e) for e in etags):
            return str(head.get("ETag", "")).strip('"') == md5_etag_of_parts(etags)
        return True

    def resume(self, leg: Leg) -> None:
        if leg.upload_id is None:
            if leg.complete and not self._completed_matches(leg):
                raise _Restart("the object written by a single PUT is gone")
            self.published = leg.complete
            self.maybe_written = not leg.complete
            return
        try:
            parts: dict[int, str] = {}
            marker = 0
            while True:
                resp = self.client.list_parts(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=leg.upload_id,
                    PartNumberMarker=marker,
                )
                for p in resp.get("Parts", []):
                    parts[int(p["PartNumber"])] = p["ETag"]
                if not resp.get("IsTruncated"):
                    break
                marker = int(resp["NextPartNumberMarker"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchUpload":
                raise s3_error(exc, f"list parts {self.where}") from None
            if leg.complete and self._completed_matches(leg):
                self.published = True  # completed by an earlier attempt
                return
            raise _Restart("the multipart upload is gone") from None
        except Exception as exc:
            raise s3_error(exc, f"list parts {self.where}") from None
        for c in leg.chunks:
            if parts.get(c.part_number or 0, "").strip('"') != (c.etag or "").strip('"'):
                self.discard(leg)
                raise _Restart(f"part {c.part_number} differs from the recorded one")

    def discard(self, leg: Leg | None) -> None:
        if leg is None or leg.upload_id is None:
            return
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=leg.upload_id
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("NoSuchUpload", "404"):
                raise s3_error(exc, f"abort upload {self.where}") from None

    def written_earlier(self, size: int) -> str | None:
        """The ETag of the object at the target when an earlier attempt of *this job* wrote this
        single-object leg there and was killed before recording the commit; None otherwise.

        Only asked on a resumed leg (``maybe_written``): the leg's source version is unchanged
        (checked before resuming), so an object carrying this job's marker and the leg's size is
        exactly this leg's bytes. Writing it again would be a second write at the target (a
        second version, or TARGET_EXISTS under ``IfNoneMatch``)."""
        if not (self.maybe_written and self.job_id):
            return None
        head = self._head()
        if head is None or int(head["ContentLength"]) != size:
            return None
        if (head.get("Metadata") or {}).get(OBJECT_MARKER) != self.job_id:
            return None
        return str(head.get("ETag", ""))

    def feed(self, block: bytes) -> None:
        self._pending.append(block)

    def end_chunk(self, leg: Leg, index: int) -> tuple[int | None, str | None]:
        data = b"".join(self._pending)
        self._pending.clear()
        if leg.upload_id is None and (earlier := self.written_earlier(len(data))) is not None:
            # already published by an earlier attempt: no cancel point, no second write
            log.info("%s: written by an earlier attempt of this job; not writing again", self.where)
            return None, earlier
        commit_point(self.ctx, publish=self.is_target and leg.upload_id is None)
        return self.write(leg, index, data)

    def write(self, leg: Leg, index: int, data: bytes) -> tuple[int | None, str | None]:
        md5 = hashlib.md5(data).hexdigest()
        try:
            if leg.upload_id is None:
                kwargs = self._extra()
                if not self.overwrite:
                    kwargs["IfNoneMatch"] = "*"
                resp = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=data, **kwargs)
                part_number = None
                self.ctx.fault.hit("after_write")
            else:
                part_number = index + 1
                resp = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=leg.upload_id,
                    PartNumber=part_number,
                    Body=data,
                )
        except Exception as exc:
            if isinstance(exc, ClientError) and exc.response["Error"]["Code"] == "NoSuchUpload":
                raise errors.TargetChanged(f"{self.where}: the multipart upload is gone") from None
            raise s3_error(exc, f"upload {self.where} part {index + 1}") from None
        etag = str(resp["ETag"])
        if is_md5_etag(etag) and etag.strip('"') != md5:
            raise errors.IntegrityMismatch(f"{self.where}: part {index + 1} ETag != MD5 sent")
        return part_number, etag

    def copy_part(
        self, leg: Leg, index: int, offset: int, length: int, src: dict[str, Any]
    ) -> tuple[int, str]:
        assert leg.upload_id is not None
        try:
            resp = self.client.upload_part_copy(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=leg.upload_id,
                PartNumber=index + 1,
                CopySource={"Bucket": src["bucket"], "Key": src["key"]},
                CopySourceRange=f"bytes={offset}-{offset + length - 1}",
                CopySourceIfMatch=src["etag"],
            )
        except Exception as exc:
            raise s3_error(exc, f"copy part {index + 1} to {self.where}") from None
        return index + 1, str(resp["CopyPartResult"]["ETag"])

    def finalize(self, leg: Leg, verify: VerifyMode, digest: str | None) -> tuple[str, str | None]:
        if leg.upload_id is not None and not self.published:
            kwargs: dict[str, Any] = {}
            if not self.overwrite:
                kwargs["IfNoneMatch"] = "*"
            commit_point(self.ctx, publish=self.is_target)
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=leg.upload_id,
                    MultipartUpload={"Parts": leg.parts()},
                    **kwargs,
                )
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                if not (code == "NoSuchUpload" and self._completed_matches(leg)):
                    raise s3_error(exc, f"complete {self.where}") from None
            except Exception as exc:
                raise s3_error(exc, f"complete {self.where}") from None
            self.published = True
            self.ctx.fault.hit("after_publish")
        head = self._head()
        if head is None or int(head["ContentLength"]) != leg.size:
            raise errors.IntegrityMismatch(f"{self.where}: size differs after upload")
        etag = str(head.get("ETag", "")).strip('"')
        if verify != VerifyMode.SIZE:
            recorded = [c.etag or "" for c in leg.chunks]
            if all(is_md5_etag(e) for e in recorded):
                expected = (
                    md5_etag_of_parts(recorded)
                    if leg.upload_id is not None
                    else recorded[-1].strip('"')
                )
                if etag != expected:
                    raise errors.IntegrityMismatch(f"{self.where}: ETag {etag} != {expected}")
        if digest is None or verify == VerifyMode.REREAD:
            reread = self.reread(leg)
            if digest is not None and reread != digest:
                raise errors.IntegrityMismatch(f"{self.where}: sha256 differs on re-read")
            digest = reread
        return digest, etag or None

    def reread(self, leg: Leg) -> str:
        """sha256 of the object, checking each chunk against its recorded digest."""
        checker = _ChunkChecker(leg, self.where)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"]
            try:
                for data in iter_body(body, REREAD_BLOCK):
                    checker.update(data)
                    self.ctx.stats.target_reread_bytes += len(data)
            finally:
                body.close()
        except errors.TransferError:
            raise
        except Exception as exc:
            raise s3_error(exc, f"re-read {self.where}") from None
        return checker.hexdigest()

    def delete(self) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            raise s3_error(exc, f"delete {self.where}") from None


class SftpSink:
    """Writes ``.<name>.ferry-part`` beside the target, renames it atomically at the end."""

    s3_parts = False

    def __init__(self, session: Any, path: str, *, overwrite: bool, ctx: RunContext) -> None:
        self.session = session
        self.path = path
        self.dir, name = posixpath.split(path)
        self.temp = posixpath.join(self.dir, f".{name}.ferry-part")
        self.overwrite = overwrite
        self.ctx = ctx
        self.writer: Any = None
        self.published = False

    def begin(self, size: int, chunk: int, *, multipart: bool | None = None) -> dict[str, Any]:
        if self.dir:
            self.session.makedirs(self.dir)
        if not self.overwrite and self.session.stat(self.path) is not None:
            raise errors.TargetExists(f"sftp target {self.path} exists and overwrite is false")
        self.writer = self.session.open_write(self.temp, 0)
        return {"temp_path": self.temp}

    def resume(self, leg: Leg, verify: VerifyMode = VerifyMode.DIGEST) -> None:
        st = self.session.stat(self.temp)
        if st is None:
            final = self.session.stat(self.path)
            if leg.complete and final is not None and final.size == leg.size:
                self.published = True  # renamed by an earlier attempt
                return
            raise _Restart("the temp file is gone")
        if st.size < leg.next_offset:
            raise _Restart("the temp file is shorter than the committed chunks")
        if verify == VerifyMode.REREAD and leg.chunks:
            last = leg.chunks[-1]
            if self.session.read_range_sha256(self.temp, last.offset, last.length) != last.sha256:
                raise _Restart("the last committed chunk differs in the temp file")
        if not leg.complete:
            try:
                self.writer = self.session.open_write(self.temp, leg.next_offset)
            except errors.TargetChanged:
                raise _Restart("the temp file changed") from None

    def discard(self, leg: Leg | None) -> None:
        self.session.remove(self.temp, missing_ok=True)

    def feed(self, block: bytes) -> None:
        self.writer.write(block)

    def end_chunk(self, leg: Leg, index: int) -> tuple[int | None, str | None]:
        self.writer.flush()  # durable (acknowledged by the server) before it is committed
        commit_point(self.ctx)
        return None, None

    def finalize(self, leg: Leg, verify: VerifyMode, digest: str | None) -> tuple[str, str | None]:
        if self.published:
            return digest or self.reread(self.path, leg), None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        st = self.session.stat(self.temp)
        if st is None or st.size != leg.size:
            raise errors.IntegrityMismatch(f"sftp temp file {self.temp}: size differs")
        if digest is None or verify == VerifyMode.REREAD:
            reread = self.reread(self.temp, leg)
            if digest is not None and reread != digest:
                raise errors.IntegrityMismatch(f"{self.temp}: sha256 differs on re-read")
            digest = reread
        commit_point(self.ctx, publish=True)
        self.session.rename(self.temp, self.path, overwrite=self.overwrite)
        self.published = True
        self.ctx.fault.hit("after_publish")
        return digest, None

    def reread(self, path: str, leg: Leg) -> str:
        checker = _ChunkChecker(leg, path)
        if leg.size:
            with self.session.read_stream(path, 0, block_size=REREAD_BLOCK) as stream:
                for data in stream:
                    checker.update(data)
                    self.ctx.stats.target_reread_bytes += len(data)
        return checker.hexdigest()

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.abort()
            except Exception:  # best effort: the session may be gone
                pass
            self.writer = None


# --- the run ---------------------------------------------------------------------------------
@dataclass
class EngineSettings:
    chunk_size: int
    single_put_threshold: int
    copy_part_threshold: int
    copy_part_size: int
    staging_bucket: str


class TransferRun:
    """One attempt of one job: moves the bytes, records chunks, verifies, post-action."""

    def __init__(
        self,
        *,
        transfer: Transfer,
        spec: JobSpec,
        endpoints: EndpointPort,
        settings: EngineSettings,
        ctx: RunContext,
    ) -> None:
        self.t = transfer
        self.spec = spec
        self.endpoints = endpoints
        self.settings = settings
        self.ctx = ctx
        self.src = endpoints.get(spec.source.endpoint_id)
        self.dst = endpoints.get(spec.target.endpoint_id)
        self._sessions: dict[str, Any] = {}
        self._sinks: list[Any] = []

    # --- helpers ---------------------------------------------------------------------------
    def _sftp(self, ep: Endpoint) -> Any:
        if ep.endpoint_id not in self._sessions:
            self._sessions[ep.endpoint_id] = self.endpoints.sftp(ep)
        return self._sessions[ep.endpoint_id]

    def close(self) -> None:
        for sink in self._sinks:
            if isinstance(sink, SftpSink):
                sink.close()
        for s in self._sessions.values():
            try:
                s.close()
            except Exception:
                pass
        self._sessions.clear()

    @property
    def may_have_delivered(self) -> bool:
        """True once a write that can publish the file at the target was started (or an
        earlier attempt published it): from then on the job cannot honestly be CANCELLED."""
        if self.ctx.publishing or self.t.verified is not None:
            return True
        return any(sink.published and getattr(sink, "is_target", True) for sink in self._sinks)

    @property
    def src_path(self) -> str:
        return self.endpoints.resolve(self.src, self.spec.source.path)

    @property
    def dst_path(self) -> str:
        return self.endpoints.resolve(self.dst, self.spec.target.path)

    @property
    def staging_key(self) -> str:
        return f"staging/{self.t.job_id}"

    def _source(self, ep: Endpoint, path: str) -> S3Source | SftpSource:
        if ep.type == "s3":
            assert ep.bucket
            return S3Source(self.endpoints.s3(ep), ep.bucket, path, self.ctx.stats)
        return SftpSource(self._sftp(ep), path, self.ctx.stats)

    def _target(self, ep: Endpoint, path: str) -> S3Sink | SftpSink:
        opts = self.spec.options
        sink: S3Sink | SftpSink
        if ep.type == "s3":
            assert ep.bucket
            sink = S3Sink(
                self.endpoints.s3(ep),
                ep.bucket,
                path,
                overwrite=opts.overwrite,
                single_put_threshold=self.settings.single_put_threshold,
                ctx=self.ctx,
                kms_key_id=ep.kms_key_id,
                job_id=str(self.t.job_id),
            )
        else:
            sink = SftpSink(self._sftp(ep), path, overwrite=opts.overwrite, ctx=self.ctx)
        self._sinks.append(sink)
        return sink

    def _staging(self) -> S3Sink:
        sink = S3Sink(
            self.endpoints.s3(None),
            self.settings.staging_bucket,
            self.staging_key,
            overwrite=True,
            single_put_threshold=self.settings.single_put_threshold,
            ctx=self.ctx,
            job_id=str(self.t.job_id),
        )
        sink.is_target = False
        self._sinks.append(sink)
        return sink

    # --- the attempt -------------------------------------------------------------------------
    def execute(self) -> None:
        opts = self.spec.options
        if self.t.verified is None:
            flow = self.spec.flow
            if flow == Flow.S3_TO_S3:
                size, digest, checksum = self._copy_s3()
            elif flow == Flow.SFTP_TO_SFTP:
                size, digest, checksum = self._two_legs()
            else:
                size, digest, checksum = self._leg(
                    1,
                    1,
                    self._source(self.src, self.src_path),
                    self._target(self.dst, self.dst_path),
                )
            started = self.t.started_at.timestamp() if self.t.started_at else time.time()
            duration = max(time.time() - started, 1e-6)
            self.ctx.record(
                lambda t: t.verify(
                    size=size,
                    sha256=digest,
                    verify=opts.verify.value,
                    target_checksum=checksum,
                    duration_seconds=duration,
                )
            )
            if self.spec.flow == Flow.SFTP_TO_SFTP:
                self._staging().delete()
        if not self.t.post_action_done:
            moved_to = self._post_action()
            self.ctx.record(
                lambda t: t.post_action(action=opts.post_action.value, moved_to=moved_to)
            )

    def _leg(
        self,
        leg_no: int,
        legs: int,
        source: S3Source | SftpSource,
        sink: S3Sink | SftpSink,
        *,
        expected: list[str] | None = None,
        chunk_size: int | None = None,
    ) -> tuple[int, str, str | None]:
        opts = self.spec.options
        info = source.info()
        leg = self.t.legs.get(leg_no)
        if leg is not None and (leg.size != info.size or leg.source_version != info.version):
            log.info("job %s leg %s: the source changed; starting again", self.t.job_id, leg_no)
            sink.discard(leg)
            leg = None
        if leg is not None:
            try:
                if isinstance(sink, SftpSink):
                    sink.resume(leg, opts.verify)
                else:
                    sink.resume(leg)
            except _Restart as why:
                log.info(
                    "job %s leg %s: cannot resume (%s); starting again", self.t.job_id, leg_no, why
                )
                leg = None
        if leg is None:
            chunk = chunk_size or plan_chunk_size(
                info.size, self.settings.chunk_size, s3_parts=sink.s3_parts or legs == 2
            )
            started = sink.begin(info.size, chunk)
            self.ctx.record(
                lambda t: t.start_leg(
                    flow=self.spec.flow.value,
                    leg=leg_no,
                    legs=legs,
                    size=info.size,
                    chunk_size=chunk,
                    source_version=info.version,
                    **started,
                )
            )
            leg = self.t.legs[leg_no]
        hasher = hashlib.sha256() if leg.next_offset == 0 else None
        if not leg.complete and not sink.published:
            commit_point(self.ctx)
            if leg.next_offset == 0:
                self.ctx.fault.hit("before_first_chunk")
            offset = leg.next_offset
            block = min(
                leg.chunk_size, SFTP_BLOCK_SIZE if isinstance(source, SftpSource) else BLOCK_SIZE
            )
            reader = _Blocks(source.read(offset, block, info.size))
            try:
                while offset < info.size or (info.size == 0 and leg.next_index == 0):
                    index = leg.next_index
                    want = min(leg.chunk_size, info.size - offset)
                    chunk_hash = hashlib.sha256()
                    got = 0
                    for piece in reader.take(want):
                        chunk_hash.update(piece)
                        if hasher is not None:
                            hasher.update(piece)
                        sink.feed(piece)
                        got += len(piece)
                    if got != want:
                        raise errors.TargetChanged(
                            f"the source ended at {offset + got}, expected {info.size}"
                        )
                    digest = chunk_hash.hexdigest()
                    if expected is not None and index < len(expected) and expected[index] != digest:
                        raise errors.IntegrityMismatch(
                            f"leg {leg_no} chunk {index} differs from the source's digest"
                        )
                    part_number, etag = sink.end_chunk(leg, index)
                    self.ctx.record(
                        partial(
                            Transfer.commit_chunk,
                            leg=leg_no,
                            offset=offset,
                            length=want,
                            sha256=digest,
                            part_number=part_number,
                            etag=etag,
                        )
                    )
                    self.ctx.stats.chunks_committed += 1
                    offset += want
                    self.ctx.fault.hit("chunk")
                    self.ctx.check()
            finally:
                reader.close()
            if offset != info.size:
                raise errors.TargetChanged(f"the source ended at {offset}, expected {info.size}")
        self.ctx.fault.hit("before_publish")
        digest_hex, checksum = sink.finalize(
            leg,
            opts.verify if legs == leg_no else VerifyMode.DIGEST,
            hasher.hexdigest() if hasher is not None else None,
        )
        return info.size, digest_hex, checksum

    def _two_legs(self) -> tuple[int, str, str | None]:
        staging = self._staging()
        if 2 not in self.t.legs:
            self._leg(1, 2, self._source(self.src, self.src_path), staging)
        leg1 = self.t.legs[1]
        staged = S3Source(staging.client, staging.bucket, staging.key, Stats())
        return self._leg(
            2,
            2,
            staged,
            self._target(self.dst, self.dst_path),
            expected=[c.sha256 for c in leg1.chunks],
            chunk_size=leg1.chunk_size,
        )

    def _copy_s3(self) -> tuple[int, str, str | None]:
        """Server-side copy: CopyObject, or UploadPartCopy by parts above the threshold."""
        source = S3Source(
            self.endpoints.s3(self.src), self.src.bucket or "", self.src_path, self.ctx.stats
        )
        info = source.info()
        sink = self._target(self.dst, self.dst_path)
        assert isinstance(sink, S3Sink)
        src_ref = {"bucket": source.bucket, "key": source.key, "etag": info.version}
        multipart = info.size > self.settings.copy_part_threshold
        leg = self.t.legs.get(1)
        if leg is not None and (leg.size != info.size or leg.source_version != info.version):
            sink.discard(leg)
            leg = None
        if leg is not None:
            try:
                sink.resume(leg)
            except _Restart:
                leg = None
        if leg is None:
            part = (
                plan_chunk_size(info.size, self.settings.copy_part_size, s3_parts=True)
                if multipart
                else max(info.size, 1)
            )
            started = sink.begin(info.size, part, multipart=multipart)
            self.ctx.record(
                lambda t: t.start_leg(
                    flow=self.spec.flow.value,
                    leg=1,
                    legs=1,
                    size=info.size,
                    chunk_size=part,
                    source_version=info.version,
                    **started,
                )
            )
            leg = self.t.legs[1]
        if not leg.complete and not sink.published:
            commit_point(self.ctx)
            if leg.next_offset == 0:
                self.ctx.fault.hit("before_first_chunk")
            earlier = sink.written_earlier(info.size) if leg.upload_id is None else None
            if earlier is not None:
                # an earlier attempt's CopyObject landed and it was killed before the commit
                log.info("%s: copied by an earlier attempt of this job", sink.where)
                self.ctx.record(
                    lambda t: t.commit_chunk(
                        leg=1, offset=0, length=info.size, sha256="", etag=earlier
                    )
                )
            elif leg.upload_id is None:
                commit_point(self.ctx, publish=True)  # CopyObject is the publish
                try:
                    resp = sink.client.copy_object(
                        Bucket=sink.bucket,
                        Key=sink.key,
                        CopySource={"Bucket": source.bucket, "Key": source.key},
                        CopySourceIfMatch=info.version,
                        # S3 computes the copy's full-object sha256 server-side
                        ChecksumAlgorithm="SHA256",
                        MetadataDirective="REPLACE",
                        **sink._extra(),
                    )
                except Exception as exc:
                    raise s3_error(exc, f"copy to {sink.where}") from None
                result = resp["CopyObjectResult"]
                etag = str(result["ETag"])
                copied = sha256_from_checksum(result.get("ChecksumSHA256")) or ""
                self.ctx.fault.hit("after_write")
                self.ctx.record(
                    lambda t: t.commit_chunk(
                        leg=1, offset=0, length=info.size, sha256=copied, etag=etag
                    )
                )
                self.ctx.fault.hit("chunk")
            else:
                offset = leg.next_offset
                while offset < info.size:
                    n = min(leg.chunk_size, info.size - offset)
                    commit_point(self.ctx)
                    pn, etag = sink.copy_part(leg, leg.next_index, offset, n, src_ref)
                    self.ctx.record(
                        partial(
                            Transfer.commit_chunk,
                            leg=1,
                            offset=offset,
                            length=n,
                            sha256="",
                            part_number=pn,
                            etag=etag,
                        )
                    )
                    offset += n
                    self.ctx.fault.hit("chunk")
                    self.ctx.check()
        self.ctx.fault.hit("before_publish")
        known = source.checksum_sha256
        if leg.upload_id is None and leg.chunks and leg.chunks[0].sha256:
            known = known or leg.chunks[0].sha256  # from the CopyObject result
        if leg.upload_id is None:
            sink.published = True  # CopyObject is atomic; finalize checks size (and ETag)
            digest, checksum = sink.finalize(leg, VerifyMode.SIZE, known)
        else:
            digest, checksum = sink.finalize(leg, VerifyMode.SIZE, known)
        if (
            self.spec.options.verify == VerifyMode.REREAD
            and known is not None
            and sink.reread(leg) != known
        ):
            raise errors.IntegrityMismatch(f"{sink.where}: sha256 differs on re-read")
        return info.size, digest, checksum

    # --- post-action -----------------------------------------------------------------------
    def _post_action(self) -> str | None:
        """The job's post-action on the source (services/executor/post_actions.py)."""
        opts = self.spec.options
        if opts.post_action == PostAction.NONE:
            return None
        src_path = self.src_path
        if self.src.type == "s3":
            client = self.endpoints.s3(self.src)
            bucket = str(self.src.bucket)
            try:
                if opts.post_action == PostAction.DELETE:
                    post_actions.s3_delete(client, bucket, src_path)
                    return None
                dest = self.endpoints.resolve(
                    self.src, post_actions.destination(src_path, opts.move_to or "archive")
                )
                post_actions.s3_move(
                    client,
                    bucket,
                    src_path,
                    dest,
                    marker=str(self.t.job_id),
                    kms_key_id=self.src.kms_key_id,
                )
            except Exception as exc:
                raise s3_error(exc, "post-action on the source") from None
            return dest
        session = self._sftp(self.src)
        if opts.post_action == PostAction.DELETE:
            post_actions.sftp_delete(session, src_path)
            return None
        dest_dir = self.endpoints.resolve(self.src, opts.move_to or "archive")
        dest = post_actions.destination(src_path, dest_dir)
        post_actions.sftp_move(session, src_path, dest)
        return dest

    # --- cleanup (permanent failure, cancel) ---------------------------------------------------
    def cleanup(self) -> None:
        """Abort multipart uploads, remove the temp file and the staging object: best effort."""
        for leg_no, leg in self.t.legs.items():
            try:
                staged = self.spec.flow == Flow.SFTP_TO_SFTP and leg_no == 1
                if leg.upload_id is not None:
                    sink = self._staging() if staged else self._target(self.dst, self.dst_path)
                    sink.discard(leg)
                if leg.temp_path is not None:
                    self._sftp(self.dst).remove(leg.temp_path, missing_ok=True)
            except Exception as exc:
                log.warning("job %s: cleanup of leg %s failed: %r", self.t.job_id, leg_no, exc)
        if self.spec.flow == Flow.SFTP_TO_SFTP:
            try:
                self._staging().delete()
            except Exception as exc:
                log.warning("job %s: staging cleanup failed: %r", self.t.job_id, exc)
