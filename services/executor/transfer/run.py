"""One attempt of one job: :class:`TransferRun` orchestrates Transfer-aggregate commands over
the Source/Sink ports; the adapters (``s3.py``, ``sftp.py``) make every boto3/SSH call.

Over 400 lines because it is the one resume routine for every leg of all four flows: leasing,
resume from the committed set, the pipeline, verification, cancel points and the publish step
read best in one place.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from events.contract import Flow, JobSpec, PostAction, VerifyMode
from services.executor import errors, post_actions
from services.executor.adapters import s3_error
from services.executor.domain import Leg, Transfer, plan_chunk_size
from services.executor.ports import Endpoint
from services.executor.transfer.context import Restart, RunContext, commit_point
from services.executor.transfer.pipeline import move_chunks
from services.executor.transfer.ports import Sink, Source, SourceInfo
from services.executor.transfer.s3 import S3Sink, S3Source, StagedSource, StagingSink
from services.executor.transfer.sftp import SftpSink, SftpSource

__all__ = ["EndpointPort", "EngineSettings", "TransferRun"]

log = logging.getLogger(__name__)


class _LegStopped(Exception):
    """Leg 1 of SFTP→SFTP stops because leg 2 failed (leg 2's error is the one raised)."""


class EndpointPort(Protocol):
    def get(self, endpoint_id: str) -> Endpoint: ...

    def resolve(self, endpoint: Endpoint, path: str) -> str:
        """S3: the object key; SFTP: the absolute remote path."""
        ...

    def sftp(self, endpoint: Endpoint) -> Any: ...

    def s3(self, endpoint: Endpoint | None) -> Any: ...


@dataclass
class EngineSettings:
    chunk_size: int
    single_put_threshold: int
    copy_part_threshold: int
    copy_part_size: int
    staging_bucket: str
    #: K: chunks read, in flight to the target and not committed yet, at most (per leg)
    chunks_in_flight: int = 4


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
        connections: dict[str, int] | None = None,
    ) -> None:
        self.t = transfer
        #: SSH connections an SFTP target of this attempt may use, by endpoint id (the worker
        #: holds that many of the endpoint's max_concurrency slots); absent: one
        self.connections = dict(connections or {})
        self.spec = spec
        self.endpoints = endpoints
        self.settings = settings
        self.ctx = ctx
        self.src = endpoints.get(spec.source.endpoint_id)
        self.dst = endpoints.get(spec.target.endpoint_id)
        self._sessions: dict[str, Any] = {}
        self._more_sessions: list[Any] = []
        self._sinks: list[Sink] = []

    # --- helpers ---------------------------------------------------------------------------
    def _sftp(self, ep: Endpoint) -> Any:
        if ep.endpoint_id not in self._sessions:
            self._sessions[ep.endpoint_id] = self.endpoints.sftp(ep)
        return self._sessions[ep.endpoint_id]

    def _connect(self, ep: Endpoint) -> Callable[[], Any]:
        """Opens one more SSH connection to ``ep`` (closed with the run's others)."""

        def connect() -> Any:
            session = self.endpoints.sftp(ep)
            self._more_sessions.append(session)
            return session

        return connect

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()
        for s in [*self._sessions.values(), *self._more_sessions]:
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
        return any(sink.published and sink.is_target for sink in self._sinks)

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
            sink = SftpSink(
                self._sftp(ep),
                path,
                overwrite=opts.overwrite,
                ctx=self.ctx,
                verify=opts.verify,
                connections=self.connections.get(ep.endpoint_id, 1),
                connect=self._connect(ep),
            )
        self._sinks.append(sink)
        return sink

    def _staging(self) -> StagingSink:
        sink = StagingSink(
            self.endpoints.s3(None),
            self.settings.staging_bucket,
            self.staging_key,
            self.ctx,
            str(self.t.job_id),
        )
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
                size, digest, checksum = self.move_leg(
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
                self._delete_staging()
        if not self.t.post_action_done:
            moved_to = self._post_action()
            self.ctx.record(
                lambda t: t.post_action(action=opts.post_action.value, moved_to=moved_to)
            )

    # --- the one resume routine (every flow, every leg) --------------------------------------
    def _prepare(
        self, leg_no: int, legs: int, info: SourceInfo, sink: Sink, chunk: int, begin: Any
    ) -> Leg:
        """The leg to continue: the recorded one when its source is unchanged and the sink
        still holds its committed chunks, else a fresh one (``begin(size, chunk)`` →
        TransferStarted). What is then left to move is ``leg.missing()``."""
        leg = self.t.legs.get(leg_no)
        if leg is not None and (leg.size != info.size or leg.source_version != info.version):
            log.info("job %s leg %s: the source changed; starting again", self.t.job_id, leg_no)
            sink.discard(leg)
            leg = None
        if leg is not None:
            try:
                sink.resume(leg)
            except Restart as why:
                log.info(
                    "job %s leg %s: cannot resume (%s); starting again", self.t.job_id, leg_no, why
                )
                leg = None
        if leg is None:
            started = begin(info.size, chunk)
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
        return leg

    def _commit(self, leg: Leg, index: int, offset: int, length: int, sha256: str, w: Any) -> None:
        no = leg.leg
        self.ctx.record(
            lambda t: t.commit_chunk(
                leg=no,
                index=index,
                offset=offset,
                length=length,
                sha256=sha256,
                part_number=w.part_number,
                etag=w.etag,
            )
        )
        self.ctx.stats.add("chunks_committed", 1)
        self.ctx.fault.hit("chunk")
        self.ctx.check()

    def move_leg(
        self,
        leg_no: int,
        legs: int,
        source: Source,
        sink: Sink,
        *,
        chunk_size: int | None = None,
    ) -> tuple[int, str, str | None]:
        """One leg, from what is committed to published: the resume routine, then the
        pipeline over the missing chunks, then the sink's publish and verification."""
        info, leg = self._open_leg(leg_no, legs, source, sink, chunk_size)
        return self._fill_leg(leg, source, sink, info)

    def _open_leg(
        self, leg_no: int, legs: int, source: Source, sink: Sink, chunk_size: int | None
    ) -> tuple[SourceInfo, Leg]:
        info = source.info()
        chunk = chunk_size or plan_chunk_size(
            info.size, self.settings.chunk_size, s3_parts=sink.s3_parts or legs == 2
        )
        return info, self._prepare(leg_no, legs, info, sink, chunk, sink.begin)

    def _fill_leg(
        self,
        leg: Leg,
        source: Source,
        sink: Sink,
        info: SourceInfo,
        *,
        expected: Callable[[int], str | None] | None = None,
        k: int | None = None,
        check: Callable[[], None] | None = None,
    ) -> tuple[int, str, str | None]:
        opts = self.spec.options
        leg_no = leg.leg
        todo = leg.missing()
        whole = hashlib.sha256() if len(todo) == leg.chunk_count else None
        if todo and not sink.published:
            commit_point(self.ctx)
            if not leg.committed:
                self.ctx.fault.hit("before_first_chunk")

            def handle(index: int, offset: int, length: int, data: bytes | None) -> None:
                assert data is not None
                digest = hashlib.sha256(data).hexdigest()
                want = expected(index) if expected is not None else None
                if want is not None and want != digest:
                    raise errors.IntegrityMismatch(
                        f"leg {leg_no} chunk {index} differs from the source's digest"
                    )
                written = sink.write_chunk(leg, index, offset, data, digest)
                commit_point(self.ctx)  # before the chunk's commit
                self._commit(leg, index, offset, length, digest, written)

            # the bandwidth cap: SFTP→SFTP leg 1 touches the source, leg 2 the target
            ends = (self.src, self.dst) if leg.legs == 1 else ((self.src,), (self.dst,))[leg_no - 1]
            pacer = self.ctx.throttle.pacer(e.endpoint_id for e in ends)
            move_chunks(
                todo=todo,
                span=leg.span,
                chunk_size=leg.chunk_size,
                k=k or self.settings.chunks_in_flight,
                handle=handle,
                read=source.open_range,
                digest=whole.update if whole is not None else None,
                check=check or self.ctx.check,
                pace=lambda n, stopped: pacer.take(n, stopped, check or self.ctx.check),
            )
            if leg.missing():
                raise errors.TargetChanged(f"leg {leg_no}: chunks {leg.missing()[:5]} not moved")
        self.ctx.fault.hit("before_publish")
        digest_hex, checksum = sink.finalize(
            leg,
            opts.verify if leg.legs == leg_no else VerifyMode.DIGEST,
            whole.hexdigest() if whole is not None else None,
        )
        return info.size, digest_hex, checksum

    def _two_legs(self) -> tuple[int, str, str | None]:
        """SFTP→SFTP through staging, both legs at once: leg 1 stages each chunk as its own
        object, leg 2 delivers each staged chunk as soon as leg 1 committed it (checking it
        against leg 1's digest of the partner's bytes). Each leg resumes from its own committed
        set; leg 2 never reads the partner. K is split between the legs (memory stays K x
        chunk)."""
        staging = self._staging()
        source = self._source(self.src, self.src_path)
        leg1_before = self.t.legs.get(1)
        if leg1_before is not None:  # a resume, perhaps in another region (replicated staging)
            info = source.info()
            if (leg1_before.size, leg1_before.source_version) == (info.size, info.version):
                pulled = restage_from_partner(leg1_before, self.t.legs.get(2), staging, source)
                if pulled:
                    log.info("job %s: staged chunks %s pulled again", self.t.job_id, pulled)
        info1, leg1 = self._open_leg(1, 2, source, staging, None)
        k1 = max(1, self.settings.chunks_in_flight // 2)
        k2 = max(1, self.settings.chunks_in_flight - k1)
        stop = threading.Event()  # leg 2 failed: leg 1 stops too
        leg1_done = threading.Event()
        leg1_error: list[BaseException] = []

        def check1() -> None:
            if stop.is_set():
                raise _LegStopped()
            self.ctx.check()

        def run_leg1() -> None:
            try:
                if not leg1.complete:
                    self._fill_leg(leg1, source, staging, info1, k=k1, check=check1)
            except BaseException as exc:
                leg1_error.append(exc)
            finally:
                leg1_done.set()

        committed = leg1.committed  # leg 1's live set (appended by record(), under its lock)
        staged = StagedSource(
            staging,
            SourceInfo(info1.size, f"staged:{info1.version}"),
            ready=lambda i: i in committed,
            failed=leg1_done.is_set,
            stats=type(self.ctx.stats)(),
        )
        thread = threading.Thread(target=run_leg1, name="ferry-leg1", daemon=True)
        thread.start()
        try:
            _, leg2 = self._open_leg(2, 2, staged, self._target(self.dst, self.dst_path), None)
            return self._fill_leg(
                leg2,
                staged,
                self._sinks[-1],
                staged.info(),
                expected=lambda i: c.sha256 if (c := committed.get(i)) is not None else None,
                k=k2,
            )
        except BaseException:
            stop.set()
            thread.join()
            if leg1_error and not isinstance(leg1_error[0], _LegStopped):
                raise leg1_error[0] from None  # leg 2 stopped because leg 1 failed
            raise
        finally:
            stop.set()
            thread.join()
            if leg1_error and not isinstance(leg1_error[0], _LegStopped):
                raise leg1_error[0]

    def _copy_s3(self) -> tuple[int, str, str | None]:
        """Server-side copy: CopyObject, or UploadPartCopy parts (K at once) above the
        threshold. No bytes pass through the executor."""
        source = S3Source(
            self.endpoints.s3(self.src), self.src.bucket or "", self.src_path, self.ctx.stats
        )
        info = source.info()
        sink = self._target(self.dst, self.dst_path)
        assert isinstance(sink, S3Sink)
        multipart = info.size > self.settings.copy_part_threshold
        part = (
            plan_chunk_size(info.size, self.settings.copy_part_size, s3_parts=True)
            if multipart
            else max(info.size, 1)
        )

        def begin(size: int, chunk: int) -> dict[str, Any]:
            return sink.begin_copy(size, chunk, multipart=multipart)

        leg = self._prepare(1, 1, info, sink, part, begin)
        todo = leg.missing()
        if todo and not sink.published:
            commit_point(self.ctx)
            if not leg.committed:
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
                etag, copied = sink.copy_object(source, info.version)
                self.ctx.fault.hit("after_write")
                self.ctx.record(
                    lambda t: t.commit_chunk(
                        leg=1, offset=0, length=info.size, sha256=copied, etag=etag
                    )
                )
                self.ctx.fault.hit("chunk")
            else:

                def handle(index: int, offset: int, length: int, data: bytes | None) -> None:
                    written = sink.copy_part(leg, index, offset, length, source, info.version)
                    commit_point(self.ctx)  # before the part's commit
                    self._commit(leg, index, offset, length, "", written)

                move_chunks(
                    todo=todo,
                    span=leg.span,
                    chunk_size=leg.chunk_size,
                    k=self.settings.chunks_in_flight,
                    handle=handle,
                    read=None,
                    check=self.ctx.check,
                )
        self.ctx.fault.hit("before_publish")
        known = source.checksum_sha256
        first = leg.committed.get(0)
        if leg.upload_id is None and first is not None and first.sha256:
            known = known or first.sha256  # from the CopyObject result
        if leg.upload_id is None:
            sink.published = True  # CopyObject is atomic; finalize checks size (and ETag)
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
                    if staged:  # a stream from before staging by chunk objects: multipart
                        S3Sink(
                            self.endpoints.s3(None),
                            self.settings.staging_bucket,
                            self.staging_key,
                            overwrite=True,
                            single_put_threshold=0,
                            ctx=self.ctx,
                        ).discard(leg)
                    else:
                        self._target(self.dst, self.dst_path).discard(leg)
                if leg.temp_path is not None:
                    self._sftp(self.dst).remove(leg.temp_path, missing_ok=True)
            except Exception as exc:
                log.warning("job %s: cleanup of leg %s failed: %r", self.t.job_id, leg_no, exc)
        if self.spec.flow == Flow.SFTP_TO_SFTP:
            try:
                self._delete_staging()
            except Exception as exc:
                log.warning("job %s: staging cleanup failed: %r", self.t.job_id, exc)

    def _delete_staging(self) -> None:
        """Remove leg 1's staged chunk objects (and a pre-chunk-object staging object)."""
        leg1 = self.t.legs.get(1)
        staging = self._staging()
        if leg1 is not None:
            staging.delete(leg1.chunk_count)
        staging.client.delete_object(Bucket=staging.bucket, Key=self.staging_key)


def restage_from_partner(
    leg1: Leg, leg2: Leg | None, staging: StagingSink, partner: Source
) -> list[int]:
    """SFTP→SFTP resume: every chunk leg 1 committed that leg 2 still has to deliver must be
    staged as leg 1 recorded it. One that is missing (not replicated yet to this region's
    staging bucket, or gone) or whose sha256 differs is read again from the partner (the
    source, unchanged: same size and version), checked against leg 1's digest and staged
    again, so leg 1 resumes instead of starting over. The indices pulled again."""
    needed = [c for c in leg1.chunks if leg2 is None or c.index not in leg2.committed]
    pulled: list[int] = []
    for chunk in needed:
        if _staged_sha256(staging, chunk.index) == chunk.sha256:
            continue
        data = b"".join(partner.open_range(chunk.offset, chunk.length, leg1.chunk_size))
        if hashlib.sha256(data).hexdigest() != chunk.sha256:
            raise errors.IntegrityMismatch(
                f"chunk {chunk.index} of the partner's file differs from the one leg 1 staged"
            )
        staging.write_chunk(leg1, chunk.index, chunk.offset, data, chunk.sha256)
        pulled.append(chunk.index)
    return pulled


def _staged_sha256(staging: StagingSink, index: int) -> str | None:
    """The sha256 (hex) of staged chunk ``index``, None if it is not there: S3's checksum
    (HEAD, ChecksumMode) when the object has one, else the bytes hashed."""
    import base64

    from botocore.exceptions import ClientError

    key = staging.key(index)
    try:
        head = staging.client.head_object(Bucket=staging.bucket, Key=key, ChecksumMode="ENABLED")
        checksum = head.get("ChecksumSHA256")
        if checksum and "-" not in checksum:
            return base64.b64decode(checksum).hex()
        body = staging.client.get_object(Bucket=staging.bucket, Key=key)["Body"]
        try:
            return hashlib.sha256(body.read()).hexdigest()
        finally:
            body.close()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise s3_error(exc, f"check staged chunk {index}") from None
