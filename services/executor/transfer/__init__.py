"""The transfer engine: Source/Sink ports, a bounded chunk pipeline, one resume routine.

Layout: ``ports.py`` (the :class:`Source` and :class:`Sink` protocols), ``s3.py`` and ``sftp.py``
(the adapters: every boto3 / SSH call of the data plane), ``pipeline.py`` (K chunks in flight),
``run.py`` (:class:`TransferRun`: only Transfer-aggregate commands over the ports),
``context.py`` (what an attempt shares with the worker, and the TEST ONLY fault / stats hooks),
``digest.py`` (re-reading a target).

Pipeline. A leg is cut into chunks (``domain.plan_chunk_size``). The reader walks the chunks
still missing as runs of consecutive indices, ONE streaming read per run (S3: one ranged GET;
SFTP: one pipelined read), and hands each chunk to one of K workers. A worker hashes its chunk
(sha256; hashlib releases the GIL), writes it (S3: UploadPart with the chunk's sha256 as
``ChecksumSHA256``, unsigned payload; SFTP: parallel WRITEs at the chunk's offset in the
``.ferry-part`` file, done when all are acknowledged; S3→S3: UploadPartCopy) and appends that
chunk's ChunkCommitted at once — chunks commit out of order, each when it is durable.

Memory bound. The reader takes one of K slots before it reads a chunk; the slot comes back when
the chunk is committed (and hashed into the whole-file digest). So at most K chunk buffers
exist per leg: K x chunk (default 4 x 16 MiB = 64 MiB per job), whatever the file size.

Resume rule. A leg's progress is the *set* of committed chunk indices (``Leg.committed``), not
a prefix. A resumed attempt checks the target still holds them (``Sink.resume``: the temp file
is long enough, the multipart upload lists the recorded parts) and moves only the missing
indices. A kill loses at most the K chunks that were read and not committed: a resume reads at
most K chunks again beyond what was never committed (asserted by the kill tests).

Digest. Every ChunkCommitted carries its chunk's sha256 (of the source's bytes). When one
attempt moved the whole leg, the whole-file sha256 is fed in index order on its own thread
from the reader's FIFO (the reader reads in index order, so the FIFO is the reorder buffer,
bounded by the same K slots). When a leg resumed, the committed chunks were not read again, so
the whole-file sha256 is computed by re-reading the target, checking every chunk against the
digest recorded from the source. SFTP→SFTP: leg 2 (staging → target) checks each chunk against
leg 1's digest. S3→S3: the copy's full-object ChecksumSHA256 (S3's own), else a re-read.

Commit points: before every chunk's commit and before the publishing call (rename,
CompleteMultipartUpload, single PUT, CopyObject) the run checks the lease and the job's cancel
request (``context.commit_point``); after the publishing call starts, a cancel is too late.
"""

from services.executor.transfer.context import (
    Abandoned,
    Cancelled,
    Fault,
    LeaseLost,
    Restart,
    RunContext,
    Stats,
    commit_point,
)
from services.executor.transfer.ports import Sink, Source, SourceInfo, Written
from services.executor.transfer.run import EndpointPort, EngineSettings, TransferRun

__all__ = [
    "Abandoned",
    "Cancelled",
    "EndpointPort",
    "EngineSettings",
    "Fault",
    "LeaseLost",
    "Restart",
    "RunContext",
    "Sink",
    "Source",
    "SourceInfo",
    "Stats",
    "TransferRun",
    "Written",
    "commit_point",
]
