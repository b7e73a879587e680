"""SFTP→SFTP takeover (issue 15): a staged chunk that is missing or not the one leg 1 recorded
is pulled again from the partner (services/executor/transfer/run.py restage_from_partner), on
in-memory ports: a dict-backed staging bucket and a bytes-backed partner file."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from services.executor import errors
from services.executor.domain import Chunk, Leg
from services.executor.transfer.ports import SourceInfo
from services.executor.transfer.run import restage_from_partner
from services.executor.transfer.s3 import StagingSink

CHUNK = 1000


class MemoryS3:
    """The staging bucket's calls StagingSink and the fallback make."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str | None]] = {}  # key -> (bytes, checksum)
        self.gets = 0

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **kw: Any) -> dict[str, Any]:
        checksum = kw.get("ChecksumSHA256")
        if checksum is not None:
            assert base64.b64decode(checksum) == hashlib.sha256(Body).digest()
        self.objects[Key] = (bytes(Body), checksum)
        return {"ETag": '"' + hashlib.md5(Body).hexdigest() + '"'}

    def _find(self, key: str) -> tuple[bytes, str | None]:
        if key not in self.objects:
            raise ClientError({"Error": {"Code": "404"}}, "HeadObject")
        return self.objects[key]

    def head_object(self, *, Bucket: str, Key: str, **kw: Any) -> dict[str, Any]:
        data, checksum = self._find(Key)
        head: dict[str, Any] = {"ContentLength": len(data)}
        if checksum and kw.get("ChecksumMode") == "ENABLED":
            head["ChecksumSHA256"] = checksum
        return head

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self.gets += 1
        return {"Body": io.BytesIO(self._find(Key)[0])}


class Partner:
    """The partner's file (a Source): counts the bytes read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read: list[tuple[int, int]] = []

    def info(self) -> SourceInfo:
        return SourceInfo(len(self.data), "v1")

    def open_range(self, offset: int, length: int, chunk: int) -> Iterator[bytes]:
        self.read.append((offset, length))
        for start in range(offset, offset + length, chunk):
            yield self.data[start : min(start + chunk, offset + length)]


def _world(
    committed1: range, committed2: range
) -> tuple[bytes, MemoryS3, StagingSink, Leg, Leg, Partner]:
    data = bytes(range(256)) * 20  # 5120 bytes: 6 chunks of 1000 (the last 120)
    s3 = MemoryS3()
    staging = StagingSink(s3, "staging", "staging/job-1", ctx=None, job_id="job-1")  # type: ignore[arg-type]

    def leg(no: int, indices: range) -> Leg:
        out = Leg(no, 2, len(data), CHUNK, 6, "v1", None, None)
        for i in indices:
            piece = data[i * CHUNK : (i + 1) * CHUNK]
            out.committed[i] = Chunk(i, i * CHUNK, len(piece), hashlib.sha256(piece).hexdigest())
        return out

    leg1, leg2 = leg(1, committed1), leg(2, committed2)
    for c in leg1.chunks:  # what leg 1 staged before the region died
        staging.write_chunk(leg1, c.index, c.offset, data[c.offset : c.offset + c.length], c.sha256)
    return data, s3, staging, leg1, leg2, Partner(data)


def test_intact_staging_pulls_nothing_from_the_partner() -> None:
    _, s3, staging, leg1, leg2, partner = _world(range(5), range(2))
    assert restage_from_partner(leg1, leg2, staging, partner) == []
    assert partner.read == [] and s3.gets == 0  # HEAD checksums only


def test_a_missing_and_a_corrupt_staged_chunk_are_pulled_again_only_those() -> None:
    data, s3, staging, leg1, leg2, partner = _world(range(5), range(2))
    del s3.objects[staging.key(3)]  # not replicated to this region's bucket
    s3.objects[staging.key(4)] = (b"x" * CHUNK, None)  # other bytes, no checksum
    del s3.objects[staging.key(0)]  # gone, but leg 2 delivered it already: not needed
    assert restage_from_partner(leg1, leg2, staging, partner) == [3, 4]
    assert partner.read == [(3000, 1000), (4000, 1000)]
    for i in (3, 4):
        assert s3.objects[staging.key(i)][0] == data[i * CHUNK : (i + 1) * CHUNK]
    assert restage_from_partner(leg1, leg2, staging, partner) == []  # now intact


def test_a_partner_whose_bytes_changed_is_an_integrity_error() -> None:
    data, s3, staging, leg1, leg2, _ = _world(range(3), range(0))
    del s3.objects[staging.key(1)]
    changed = Partner(data[:1000] + b"y" * 1000 + data[2000:])
    with pytest.raises(errors.IntegrityMismatch):
        restage_from_partner(leg1, leg2, staging, changed)


def test_no_leg_2_yet_checks_every_staged_chunk() -> None:
    _, s3, staging, leg1, _, partner = _world(range(6), range(0))
    del s3.objects[staging.key(5)]
    assert restage_from_partner(leg1, None, staging, partner) == [5]
    assert partner.read == [(5000, 120)]
