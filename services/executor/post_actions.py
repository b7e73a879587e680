"""The source post-action after a delivery — delete or move — in one implementation, used by
the transfer engine (a job's ``options.post_action``) and by the routes settler (a route's
``post_action``, run once after every target of a file succeeded).

Two rules hold for both callers:

- **Idempotent.** A retry after a crash between the copy and the delete (or after the whole
  move) finds the source gone and the destination present, and does nothing; a delete of a
  source already gone succeeds.
- **Marked.** Every object a move writes carries the ``ferry-job-id`` metadata
  (:data:`ferry.names.OBJECT_MARKER`, the id of the job that delivered the file), so a push route
  watching the destination skips it as ``ferry_written`` instead of sending it again. The
  object's own metadata, content headers and — with the endpoint's ``kms_key_id`` — its
  SSE-KMS encryption are kept. SFTP has no metadata: a moved file is marked by where it is.

Paths are full: S3 keys with the endpoint's prefix applied, SFTP absolute paths; the callers
resolve them. Errors are the libraries' (botocore ``ClientError``, the SFTP session's); each
caller maps them to its own taxonomy. A copy is a single ``CopyObject``, so an S3 move handles
objects up to 5 GiB (S3's limit for one copy).
"""

from __future__ import annotations

import posixpath
from typing import Any

from botocore.exceptions import ClientError

from ferry.names import OBJECT_MARKER

__all__ = ["destination", "s3_delete", "s3_move", "sftp_delete", "sftp_move"]

_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
#: content headers an object keeps when it is moved (a REPLACE copy would drop them)
_KEPT_HEADERS = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage")


def destination(path: str, move_to: str) -> str:
    """Where a move puts ``path``: ``<move_to>/<file name>`` (``move_to`` relative or full,
    like ``path``)."""
    return posixpath.join(move_to, posixpath.basename(path))


def _missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code", "")) in _MISSING


def _exists(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _missing(error):
            return False
        raise
    return True


def s3_delete(client: Any, bucket: str, key: str) -> None:
    """Delete the source object (S3's DeleteObject succeeds for a key already gone)."""
    client.delete_object(Bucket=bucket, Key=key)


def s3_move(
    client: Any, bucket: str, key: str, to: str, *, marker: str, kms_key_id: str | None = None
) -> None:
    """Move ``key`` to ``to`` in ``bucket``: a copy marked with ``marker`` (the delivering job's
    id), then the delete of the source. Raises the ``ClientError`` when neither the source nor
    the destination exists."""
    if not marker:
        raise ValueError("a post-action move is always marked with the delivering job's id")
    if key == to:
        return  # already where a move would put it
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _missing(error) and _exists(client, bucket, to):
            return  # moved by an earlier attempt
        raise
    extra: dict[str, Any] = {name: head[name] for name in _KEPT_HEADERS if head.get(name)}
    if kms_key_id:
        extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_id)
    source: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if head.get("VersionId") and head["VersionId"] != "null":
        source["VersionId"] = head["VersionId"]
    try:
        client.copy_object(
            Bucket=bucket,
            Key=to,
            CopySource=source,
            MetadataDirective="REPLACE",
            Metadata={**(head.get("Metadata") or {}), OBJECT_MARKER: marker},
            **extra,
        )
    except ClientError as error:
        if not (_missing(error) and _exists(client, bucket, to)):
            raise  # (a concurrent mover deleted the source after copying it: done)
        return
    client.delete_object(Bucket=bucket, Key=key)


def sftp_delete(session: Any, path: str) -> None:
    """Remove the source file (one already gone is not an error)."""
    session.remove(path, missing_ok=True)


def sftp_move(session: Any, path: str, to: str) -> None:
    """Rename ``path`` to ``to`` (its directory made first; an existing ``to`` is replaced).
    A source gone with the destination present is a move done by an earlier attempt."""
    if path == to:
        return
    if session.stat(path) is None and session.stat(to) is not None:
        return
    directory = posixpath.dirname(to)
    if directory:
        session.makedirs(directory)
    session.rename(path, to, overwrite=True)
