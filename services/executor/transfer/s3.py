"""S3 source and sink: every boto3 call of the data plane's S3 side.

- Source: one streaming GET per run of missing chunks (``Range: bytes=a-b``, ``IfMatch`` the
  ETag seen at ``info()``): never a GET per chunk (moto and S3 both penalise small ranges).
- Sink: a single PUT below the threshold, else a multipart upload whose parts go up in
  parallel (K at once) with the part's own sha256 as ``ChecksumSHA256`` (S3 checks it; no MD5
  is computed). The S3 clients are configured with ``payload_signing_enabled=False``
  (``adapters._BOTO_CONFIG``): botocore then sends UNSIGNED-PAYLOAD instead of hashing every
  body for SigV4 — even over plain HTTP, where it signs by default; the per-part checksum is
  the integrity check. Server-side copies: one CopyObject, or UploadPartCopy parts in parallel
  above the copy threshold.

Over 400 lines because it holds the four S3 sides of the ports (source, sink, staging sink,
staged source), each a small class over the same boto3 calls and checksum rules.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from events.contract import VerifyMode
from ferry.names import OBJECT_MARKER
from services.executor import errors
from services.executor.adapters import (
    is_md5_etag,
    iter_body,
    md5_etag_of_parts,
    s3_error,
    sha256_from_checksum,
)
from services.executor.domain import Leg
from services.executor.transfer.context import Restart, RunContext, Stats, commit_point
from services.executor.transfer.digest import REREAD_BLOCK, ChunkChecker
from services.executor.transfer.ports import SourceInfo, Written

__all__ = ["S3Sink", "S3Source", "StagedSource", "StagingSink", "b64_sha256"]

log = logging.getLogger(__name__)


def b64_sha256(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


class S3Source:
    def __init__(self, client: Any, bucket: str, key: str, stats: Stats) -> None:
        self.client, self.bucket, self.key, self.stats = client, bucket, key, stats
        self.etag: str | None = None
        self.checksum_sha256: str | None = None

    def info(self) -> SourceInfo:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key, ChecksumMode="ENABLED")
        except Exception as exc:
            raise s3_error(exc, f"head s3://{self.bucket}/{self.key}") from None
        self.etag = head.get("ETag")
        self.checksum_sha256 = sha256_from_checksum(head.get("ChecksumSHA256"))
        return SourceInfo(int(head["ContentLength"]), self.etag)

    def open_range(self, offset: int, length: int, chunk: int) -> Iterator[bytes]:
        if length <= 0:
            return
        what = f"read s3://{self.bucket}/{self.key} from {offset}"
        try:
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": self.key,
                "Range": f"bytes={offset}-{offset + length - 1}",
            }
            if self.etag:
                kwargs["IfMatch"] = self.etag
            body = self.client.get_object(**kwargs)["Body"]
        except Exception as exc:
            if isinstance(exc, ClientError) and exc.response["Error"]["Code"] in (
                "PreconditionFailed",
                "412",
            ):
                raise errors.TargetChanged(f"{what}: the source object changed") from None
            raise s3_error(exc, what) from None
        try:
            for data in iter_body(body, chunk):
                self.stats.add("source_bytes", len(data))
                yield data
        except errors.TransferError:
            raise
        except Exception as exc:
            raise s3_error(exc, what) from None
        finally:
            body.close()


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
        is_target: bool = True,
    ) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.job_id = job_id
        self.overwrite = overwrite
        self.threshold = single_put_threshold
        self.ctx = ctx
        self.kms = kms_key_id
        self.published = False
        self.is_target = is_target  # False for the SFTP→SFTP staging object
        self.where = f"s3://{bucket}/{key}"
        # an earlier attempt started this single-object leg: its PUT/CopyObject may have landed
        # without its commit being recorded (killed in between)
        self.maybe_written = False

    def extra(self) -> dict[str, Any]:
        """Arguments of every object-creating call: encryption, and the ``ferry-job-id``
        metadata that marks objects Ferry wrote (routes never trigger on them: no loops)."""
        extra: dict[str, Any] = {"Metadata": {OBJECT_MARKER: self.job_id}} if self.job_id else {}
        if self.kms:
            extra.update({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms})
        return extra

    def head(self) -> dict[str, Any] | None:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=self.key))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise s3_error(exc, f"head {self.where}") from None
        except Exception as exc:
            raise s3_error(exc, f"head {self.where}") from None

    def begin(self, size: int, chunk: int, *, multipart: bool | None = None) -> dict[str, Any]:
        if not self.overwrite and self.head() is not None:
            raise errors.TargetExists(f"{self.where} exists and overwrite is false")
        if multipart is None:
            multipart = not (size < self.threshold and size <= chunk)
        if not multipart:
            return {}
        try:
            resp = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ChecksumAlgorithm="SHA256", **self.extra()
            )
        except Exception as exc:
            raise s3_error(exc, f"create upload {self.where}") from None
        return {"upload_id": resp["UploadId"]}

    def _completed_matches(self, leg: Leg) -> bool:
        head = self.head()
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
                raise Restart("the object written by a single PUT is gone")
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
            raise Restart("the multipart upload is gone") from None
        except Exception as exc:
            raise s3_error(exc, f"list parts {self.where}") from None
        for c in leg.chunks:
            if parts.get(c.part_number or 0, "").strip('"') != (c.etag or "").strip('"'):
                self.discard(leg)
                raise Restart(f"part {c.part_number} differs from the recorded one")

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
        head = self.head()
        if head is None or int(head["ContentLength"]) != size:
            return None
        if (head.get("Metadata") or {}).get(OBJECT_MARKER) != self.job_id:
            return None
        return str(head.get("ETag", ""))

    def write_chunk(self, leg: Leg, index: int, offset: int, data: bytes, sha256: str) -> Written:
        checksum = b64_sha256(sha256)
        if leg.upload_id is None:
            if (earlier := self.written_earlier(len(data))) is not None:
                # already published by an earlier attempt: no cancel point, no second write
                log.info("%s: written by an earlier attempt of this job; not again", self.where)
                return Written(None, earlier)
            commit_point(self.ctx, publish=self.is_target)  # the single PUT is the publish
            kwargs = self.extra()
            if not self.overwrite:
                kwargs["IfNoneMatch"] = "*"
            try:
                resp = self.client.put_object(
                    Bucket=self.bucket, Key=self.key, Body=data, ChecksumSHA256=checksum, **kwargs
                )
            except Exception as exc:
                raise s3_error(exc, f"upload {self.where}") from None
            self.ctx.fault.hit("after_write")
            return Written(None, str(resp["ETag"]))
        try:
            resp = self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=leg.upload_id,
                PartNumber=index + 1,
                Body=data,
                ChecksumSHA256=checksum,
            )
        except Exception as exc:
            if isinstance(exc, ClientError) and exc.response["Error"]["Code"] == "NoSuchUpload":
                raise errors.TargetChanged(f"{self.where}: the multipart upload is gone") from None
            raise s3_error(exc, f"upload {self.where} part {index + 1}") from None
        return Written(index + 1, str(resp["ETag"]))

    # --- server-side copies (S3→S3) ---------------------------------------------------------
    def copy_object(self, source: S3Source, version: str | None) -> tuple[str, str]:
        """CopyObject (the publish); returns (ETag, the copy's full-object sha256 or "")."""
        try:
            resp = self.client.copy_object(
                Bucket=self.bucket,
                Key=self.key,
                CopySource={"Bucket": source.bucket, "Key": source.key},
                CopySourceIfMatch=version,
                # S3 computes the copy's full-object sha256 server-side
                ChecksumAlgorithm="SHA256",
                MetadataDirective="REPLACE",
                **self.extra(),
            )
        except Exception as exc:
            raise s3_error(exc, f"copy to {self.where}") from None
        result = resp["CopyObjectResult"]
        return str(result["ETag"]), sha256_from_checksum(result.get("ChecksumSHA256")) or ""

    def copy_part(
        self, leg: Leg, index: int, offset: int, length: int, source: S3Source, version: str | None
    ) -> Written:
        assert leg.upload_id is not None
        try:
            resp = self.client.upload_part_copy(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=leg.upload_id,
                PartNumber=index + 1,
                CopySource={"Bucket": source.bucket, "Key": source.key},
                CopySourceRange=f"bytes={offset}-{offset + length - 1}",
                CopySourceIfMatch=version,
            )
        except Exception as exc:
            raise s3_error(exc, f"copy part {index + 1} to {self.where}") from None
        return Written(index + 1, str(resp["CopyPartResult"]["ETag"]))

    def begin_copy(self, size: int, part: int, *, multipart: bool) -> dict[str, Any]:
        if not self.overwrite and self.head() is not None:
            raise errors.TargetExists(f"{self.where} exists and overwrite is false")
        if not multipart:
            return {}
        try:  # copied parts carry no checksum of ours: a plain upload
            resp = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, **self.extra()
            )
        except Exception as exc:
            raise s3_error(exc, f"create upload {self.where}") from None
        return {"upload_id": resp["UploadId"]}

    # --- publish ------------------------------------------------------------------------------
    def _parts(self, leg: Leg) -> list[dict[str, Any]]:
        parts = []
        for c in leg.chunks:
            part: dict[str, Any] = {"PartNumber": c.part_number, "ETag": c.etag}
            if c.sha256 and c.part_number is not None:
                part["ChecksumSHA256"] = b64_sha256(c.sha256)
            parts.append(part)
        return parts

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
                    MultipartUpload={"Parts": self._parts(leg)},
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
        head = self.head()
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
        checker = ChunkChecker(leg, self.where)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"]
            try:
                for data in iter_body(body, REREAD_BLOCK):
                    checker.update(data)
                    self.ctx.stats.add("target_reread_bytes", len(data))
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

    def close(self) -> None:
        pass


# --- SFTP→SFTP staging: one object per chunk ---------------------------------------------------
class StagingSink:
    """Leg 1 of SFTP→SFTP: each chunk becomes its own object ``<prefix>/<index>`` in Ferry's
    staging bucket (a single PUT with its ChecksumSHA256), readable by leg 2 as soon as it is
    committed — no multipart completion, nothing to assemble. Never the delivery."""

    s3_parts = True
    is_target = False
    published = False

    def __init__(self, client: Any, bucket: str, prefix: str, ctx: RunContext, job_id: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.rstrip("/")
        self.ctx = ctx
        self.job_id = job_id
        self.where = f"s3://{bucket}/{self.prefix}/"

    def key(self, index: int) -> str:
        return f"{self.prefix}/{index:05d}"

    def begin(self, size: int, chunk: int) -> dict[str, Any]:
        return {}

    def resume(self, leg: Leg) -> None:
        for c in leg.chunks:  # every committed chunk is still staged
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self.key(c.index))
            except ClientError as exc:
                if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                    raise Restart(f"staged chunk {c.index} is gone") from None
                raise s3_error(exc, f"head {self.where}{c.index}") from None
            if int(head["ContentLength"]) != c.length:
                raise Restart(f"staged chunk {c.index} differs")

    def write_chunk(self, leg: Leg, index: int, offset: int, data: bytes, sha256: str) -> Written:
        try:
            resp = self.client.put_object(
                Bucket=self.bucket,
                Key=self.key(index),
                Body=data,
                ChecksumSHA256=b64_sha256(sha256),
                Metadata={OBJECT_MARKER: self.job_id},
            )
        except Exception as exc:
            raise s3_error(exc, f"stage chunk {index} at {self.where}") from None
        return Written(None, str(resp["ETag"]))

    def finalize(self, leg: Leg, verify: VerifyMode, digest: str | None) -> tuple[str, str | None]:
        return digest or "", None  # nothing to publish: leg 2 delivers (and verifies)

    def delete(self, chunk_count: int) -> None:
        keys = [{"Key": self.key(i)} for i in range(chunk_count)]
        try:
            for at in range(0, len(keys), 1000):
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys[at : at + 1000], "Quiet": True}
                )
        except Exception as exc:
            raise s3_error(exc, f"delete {self.where}") from None

    def discard(self, leg: Leg | None) -> None:
        if leg is not None:
            self.delete(leg.chunk_count)

    def close(self) -> None:
        pass


class StagedSource:
    """Leg 2 of SFTP→SFTP: reads leg 1's chunk objects, each once ``ready(index)`` says leg 1
    committed it (leg 2 runs while leg 1 still reads the partner's file). ``failed()`` ends
    the wait when leg 1 stopped without that chunk."""

    def __init__(
        self,
        staging: StagingSink,
        info: SourceInfo,
        ready: Any,
        failed: Any,
        stats: Stats,
    ) -> None:
        self.staging, self._info = staging, info
        self.ready, self.failed = ready, failed
        self.stats = stats

    def info(self) -> SourceInfo:
        return self._info

    def open_range(self, offset: int, length: int, chunk: int) -> Iterator[bytes]:
        index, end = offset // chunk, offset + length
        while index * chunk < end:
            while not self.ready(index):
                if self.failed():
                    raise errors.TransferError(
                        "leg 1 stopped before staging this chunk", code="LEG_STOPPED"
                    )
                time.sleep(0.02)
            key = self.staging.key(index)
            try:
                body = self.staging.client.get_object(Bucket=self.staging.bucket, Key=key)["Body"]
                try:
                    data = body.read()
                finally:
                    body.close()
            except Exception as exc:
                raise s3_error(exc, f"read staged chunk {index}") from None
            self.stats.add("source_bytes", len(data))
            yield data
            index += 1
