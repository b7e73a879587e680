"""The hash chain of the event store: canonical encoding, genesis marker, verification (pure).

Every stored event (one item of the events table, see ``events.dynamodb``) carries::

    state_sha256 = sha256(state bytes)                       (hex)
    prev_hash    = hash of the stream's previous version, or GENESIS(stream) for the first
    hash         = sha256(CANONICAL(stream_id, version, topic, at, state_sha256, prev_hash))

Canonical encoding (version 1), byte for byte::

    b"ferry-chain-v1\\n"
    then for each field, in this order: stream_id, str(version), topic, at, state_sha256,
    prev_hash — its UTF-8 bytes preceded by their length as 8 bytes big-endian.

``at`` is the event's own timestamp (the ``timestamp`` of the stored state, which is what the
published ``occurred_at`` says) in the fixed form ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; ``""`` when the
state carries none. Length prefixes make the encoding unambiguous (no field can bleed into the
next); hashing the state's sha256 rather than the bytes is equivalent (sha256 is collision
resistant) and lets a verifier say *which* part was edited.

Genesis marker: ``GENESIS(stream) = sha256(b"ferry-chain-v1 genesis\\n" + stream_id UTF-8)``, the
``prev_hash`` of version 1 (eventsourcing's first version; also of a lower version, and of a
stream's lowest stored version whatever it is). Events stored before the chain existed have no
``hash``: a verifier (and a writer appending after them) computes their chain from the same
genesis marker, and the first verification pass *seals* them (writes the computed attributes and
``sealed_at``). They are only as trustworthy as that first pass: an edit made before it is not
detectable.

This module knows nothing about DynamoDB: items are plain dicts with the attribute names above
plus ``stream_id``, ``version``, ``topic`` and ``state`` (bytes).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CHAIN_VERSION",
    "ChainLink",
    "Problem",
    "canonical",
    "checkpoint_hash",
    "event_at",
    "event_customer",
    "event_hash",
    "genesis",
    "link",
    "normalise_at",
    "verify_checkpoints",
    "verify_stream",
]

CHAIN_VERSION = "ferry-chain-v1"
_PREFIX = b"ferry-chain-v1\n"
_GENESIS_PREFIX = b"ferry-chain-v1 genesis\n"
_CHECKPOINT_PREFIX = b"ferry-checkpoint-v1\n"
_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def genesis(stream_id: str) -> str:
    """The prev_hash of a stream's first version (a per-stream constant)."""
    return hashlib.sha256(_GENESIS_PREFIX + stream_id.encode()).hexdigest()


def canonical(
    stream_id: str, version: int, topic: str, at: str, state_sha256: str, prev_hash: str
) -> bytes:
    """The canonical encoding hashed into ``hash`` (see the module docstring)."""
    out = bytearray(_PREFIX)
    for field in (stream_id, str(int(version)), topic, at, state_sha256, prev_hash):
        data = field.encode()
        out += len(data).to_bytes(8, "big")
        out += data
    return bytes(out)


def event_hash(
    stream_id: str, version: int, topic: str, at: str, state_sha256: str, prev_hash: str
) -> str:
    return hashlib.sha256(
        canonical(stream_id, version, topic, at, state_sha256, prev_hash)
    ).hexdigest()


def normalise_at(value: datetime | str) -> str:
    """A time in the chain's fixed form (UTC, microseconds, ``Z``): sortable as text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime(_AT_FORMAT)


def _state_json(state: bytes) -> Mapping[str, Any] | None:
    if state[:1] != b"{":
        return None  # compressed or encrypted state: the recorder cannot read it
    try:
        decoded = json.loads(state)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _plain_value(value: Any) -> Any:
    # eventsourcing's JSONTranscoder wraps custom types: {"_type_": "datetime_iso", "_data_": ...}
    if isinstance(value, dict) and "_data_" in value:
        return value["_data_"]
    return value


def _at_of(decoded: Mapping[str, Any] | None) -> str:
    value = _plain_value(decoded.get("timestamp")) if decoded else None
    if isinstance(value, str) and _ISO.match(value):
        try:
            return normalise_at(value)
        except ValueError:
            return ""
    return ""


def _customer_of(decoded: Mapping[str, Any] | None) -> str:
    value = _plain_value(decoded.get("customer_id")) if decoded else None
    return value if isinstance(value, str) else ""


def event_at(state: bytes) -> str:
    """The event's own timestamp (from its JSON state) in the chain's form, or ``""``."""
    return _at_of(_state_json(state))


def event_customer(state: bytes) -> str:
    """The ``customer_id`` every Ferry event carries (``events.aggregate``), or ``""``."""
    return _customer_of(_state_json(state))


@dataclass(frozen=True)
class ChainLink:
    """The chain attributes of one event."""

    at: str
    state_sha256: str
    prev_hash: str
    hash: str
    customer_id: str = ""  # not hashed on its own: it is in the state


def link(stream_id: str, version: int, topic: str, state: bytes, prev_hash: str) -> ChainLink:
    """The chain attributes of a new event appended after ``prev_hash``."""
    decoded = _state_json(state)  # decoded once: time and customer
    at = _at_of(decoded)
    digest = hashlib.sha256(state).hexdigest()
    return ChainLink(
        at=at,
        state_sha256=digest,
        prev_hash=prev_hash,
        hash=event_hash(stream_id, version, topic, at, digest, prev_hash),
        customer_id=_customer_of(decoded),
    )


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Problem:
    """One break in a chain: where, what kind, and what differs."""

    stream_id: str
    version: int | None
    kind: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StreamReport:
    """The outcome of walking one stream."""

    stream_id: str
    events: int = 0
    head_version: int | None = None
    head_hash: str | None = None
    unsealed: list[dict[str, Any]] | None = None  # legacy items and their computed links
    problems: list[Problem] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _expected_at(item: Mapping[str, Any]) -> str:
    at = item.get("at")
    return at if isinstance(at, str) else event_at(bytes(item["state"]))


def verify_stream(stream_id: str, items: Sequence[Mapping[str, Any]]) -> StreamReport:
    """Walk one stream's items (in version order) and report every break.

    Kinds: ``state_edited`` (the state bytes do not hash to the recorded ``state_sha256``),
    ``reordered`` (an item holds the event chained at another version), ``hash_mismatch`` (topic,
    time, version or prev_hash edited: the recorded fields do not hash to ``hash``),
    ``chain_broken`` (``prev_hash`` is not the previous item's hash: an event removed or
    inserted before it). Items without a ``hash`` (stored before the chain) are chained from the
    genesis marker and returned in ``unsealed`` with the attributes to seal them with.
    """
    report = StreamReport(stream_id=stream_id, problems=[], unsealed=[])
    problems: list[Problem] = []
    recorded_digests = {
        str(i.get("state_sha256")): int(i["version"]) for i in items if i.get("state_sha256")
    }
    recorded_hashes = {str(i.get("hash")): int(i["version"]) for i in items if i.get("hash")}
    prev = genesis(stream_id)
    previous_version: int | None = None
    for item in items:
        version = int(item["version"])
        if version <= 1:
            prev, previous_version = genesis(stream_id), None  # version 1 starts the chain
        state = bytes(item["state"])
        digest = hashlib.sha256(state).hexdigest()
        topic = str(item["topic"])
        stored_hash = item.get("hash")
        if stored_hash is None:
            at = _expected_at(item)
            computed = event_hash(stream_id, version, topic, at, digest, prev)
            report.unsealed.append(  # type: ignore[union-attr]
                {
                    "version": version,
                    "at": at,
                    "state_sha256": digest,
                    "prev_hash": prev,
                    "hash": computed,
                }
            )
            prev, previous_version = computed, version
            continue
        problems.extend(
            _check_item(
                stream_id,
                item,
                version,
                digest,
                prev,
                previous_version,
                recorded_digests,
                recorded_hashes,
            )
        )
        prev, previous_version = str(stored_hash), version
    report.events = len(items)
    report.head_version = previous_version
    report.head_hash = prev if items else None
    report.problems = problems
    return report


def _check_item(
    stream_id: str,
    item: Mapping[str, Any],
    version: int,
    digest: str,
    prev: str,
    previous_version: int | None,
    recorded_digests: Mapping[str, int],
    recorded_hashes: Mapping[str, int],
) -> Iterable[Problem]:
    stored_hash = str(item["hash"])
    stored_digest = str(item.get("state_sha256", ""))
    stored_prev = str(item.get("prev_hash", ""))
    topic = str(item["topic"])
    at = str(item.get("at", ""))
    recomputed = event_hash(stream_id, version, topic, at, stored_digest, stored_prev)
    if recomputed != stored_hash:
        # Does the item hold the event chained at another version (two versions swapped)?
        for other in sorted(set(recorded_hashes.values()) - {version}):
            if event_hash(stream_id, other, topic, at, stored_digest, stored_prev) == stored_hash:
                yield Problem(
                    stream_id,
                    version,
                    "reordered",
                    f"version {version} holds the event chained as version {other}",
                )
                return
        yield Problem(
            stream_id,
            version,
            "hash_mismatch",
            f"recorded fields (topic, at, version or prev_hash) hash to "
            f"{recomputed[:16]}…, the recorded hash is {stored_hash[:16]}…",
        )
        return
    if digest != stored_digest:
        other_version = recorded_digests.get(digest)
        if other_version is not None and other_version != version:
            yield Problem(
                stream_id,
                version,
                "reordered",
                f"version {version} holds the state bytes of version {other_version}",
            )
        else:
            yield Problem(
                stream_id,
                version,
                "state_edited",
                f"state bytes hash to {digest[:16]}…, recorded state_sha256 is "
                f"{stored_digest[:16]}…",
            )
        return
    if stored_prev != prev:
        where = "the genesis marker" if previous_version is None else f"version {previous_version}"
        gap = (
            f" (versions {previous_version + 1}..{version - 1} missing)"
            if previous_version is not None and version > previous_version + 1
            else ""
        )
        yield Problem(
            stream_id,
            version,
            "chain_broken",
            f"prev_hash {stored_prev[:16]}… is not the hash of {where} ({prev[:16]}…){gap}",
        )


# --------------------------------------------------------------------------- checkpoints


def checkpoint_hash(document: Mapping[str, Any]) -> str:
    """sha256 over the checkpoint document without its ``hash``, as canonical JSON (sorted keys,
    no whitespace, UTF-8)."""
    body = {k: v for k, v in document.items() if k != "hash"}
    return hashlib.sha256(
        _CHECKPOINT_PREFIX + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def checkpoint_genesis(customer_id: str) -> str:
    """The prev_hash of a customer's first checkpoint."""
    return hashlib.sha256(_CHECKPOINT_PREFIX + b"genesis\n" + customer_id.encode()).hexdigest()


def verify_checkpoints(customer_id: str, documents: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """The checkpoint chain of one customer (in sequence order): each document hashes to its
    ``hash``, links to the previous one, and sequence numbers have no gap."""
    problems: list[Problem] = []
    prev = checkpoint_genesis(customer_id)
    expected_seq = 1
    stream = f"checkpoints/{customer_id}"
    for document in documents:
        seq = int(document.get("seq", 0))
        if seq != expected_seq:
            problems.append(
                Problem(
                    stream,
                    seq,
                    "checkpoint_missing",
                    f"checkpoint {expected_seq} missing before {seq}",
                )
            )
        if checkpoint_hash(document) != document.get("hash"):
            problems.append(
                Problem(
                    stream,
                    seq,
                    "checkpoint_edited",
                    "the checkpoint document does not hash to its hash",
                )
            )
        elif document.get("prev_hash") != prev and seq == expected_seq:
            problems.append(
                Problem(
                    stream,
                    seq,
                    "checkpoint_chain_broken",
                    "prev_hash is not the previous checkpoint's hash",
                )
            )
        prev = str(document.get("hash"))
        expected_seq = seq + 1
    return problems
