"""Audit export: a customer's events of a period as JSON Lines, one file per UTC day, with a
manifest an auditor checks offline (``verify_export``: no access to the event store).

Each line is the event as EventBridge delivers it (``version``, ``id``, ``source``,
``detail-type``, ``time``, ``resources``, ``detail`` — built from the publisher's own
``events.translate.to_put_events_entry``), plus ``ferry-chain``: the stored chain attributes
(``stream_id``, ``version``, ``topic``, ``at``, ``state_sha256``, ``prev_hash``, ``hash``) and the
stored ``state`` the detail is translated from. So the offline check recomputes every hash with
``events.chain``'s canonical encoding, the state's sha256, the detail from the state, and the
``prev_hash`` links within each stream. Events that are never published (``internal``: name
claims, delivery windows' bookkeeping) are not lines; their chain attributes are in the
manifest's ``omitted`` so the links around them still verify.

Files: ``<prefix>/events-YYYY-MM-DD.jsonl`` and ``<prefix>/manifest.json`` (see
:class:`Manifest`), on a :class:`ExportSink` (a local directory, or S3 in
``audit_export_adapters``). Lines are sorted by (time, stream, version), the order of the
customer-and-time index; the output is deterministic (the same period exports byte for byte the
same, so two exports can be compared by sha256).
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from eventsourcing.persistence import StoredEvent
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events.chain import CHAIN_VERSION, event_hash, genesis, normalise_at
from events.translate import to_integration, to_put_events_entry
from ferry.errors import Invalid
from services.projections.audit import CustomerIndex, _stream_key

__all__ = [
    "MANIFEST",
    "DirectorySink",
    "ExportProblem",
    "ExportSink",
    "ExportSource",
    "Manifest",
    "envelope",
    "export_period",
    "export_window",
    "verify_export",
]

MANIFEST = "manifest.json"
FORMAT = "ferry-audit-export-v1"
PAGE = 1000


class ExportSink(Protocol):
    def put(self, name: str, data: bytes) -> str:
        """Write one file of the export; returns where it went."""
        ...


class ExportSource(Protocol):
    def get(self, name: str) -> bytes | None:
        """One file of an export, or None when it is not there."""
        ...


class DirectorySink:
    """An export in a local directory (an auditor's copy)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, name: str, data: bytes) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / name
        path.write_bytes(data)
        return str(path)

    def get(self, name: str) -> bytes | None:
        path = self.root / name
        return path.read_bytes() if path.is_file() else None


# --------------------------------------------------------------------------- the manifest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventRef(_Strict):
    stream_id: str
    version: int
    time: str
    hash: str


class FileEntry(_Strict):
    name: str
    day: str
    count: int = Field(ge=0)
    bytes: int = Field(ge=0)
    sha256: str
    first: EventRef | None = None
    last: EventRef | None = None


class StreamEntry(_Strict):
    """A stream's part of the export: its first event (and the prev_hash it links to, the hash
    of the last event before the period) and its head (the last event in the period)."""

    first_version: int
    first_prev_hash: str
    head_version: int
    head_hash: str
    count: int


class ChainAttributes(_Strict):
    stream_id: str
    version: int
    topic: str
    at: str
    state_sha256: str
    prev_hash: str
    hash: str


class ChainBlock(ChainAttributes):
    state: str  # the stored state (UTF-8 JSON text)


class Manifest(_Strict):
    format: str = FORMAT
    chain: str = CHAIN_VERSION
    customer_id: str
    since: str
    until: str
    created_at: str
    count: int
    files: list[FileEntry]
    streams: dict[str, StreamEntry]
    omitted: list[ChainAttributes] = []


# --------------------------------------------------------------------------- export


def envelope(event: Any) -> dict[str, Any]:
    """The EventBridge event the publisher's PutEvents entry becomes (the shape consumers get;
    ``id`` is the event's own deterministic id, so an export is reproducible)."""
    entry = to_put_events_entry(event, bus_name="")
    return {
        "version": "0",
        "id": event.event_id,
        "source": entry["Source"],
        "detail-type": entry["DetailType"],
        "time": normalise_at(entry["Time"]),
        "resources": list(entry["Resources"]),
        "detail": json.loads(entry["Detail"]),
    }


def _line(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _stored(chain: Mapping[str, Any], state: bytes) -> StoredEvent:
    return StoredEvent(
        originator_id=_stream_key(str(chain["stream_id"])),
        originator_version=int(chain["version"]),
        topic=str(chain["topic"]),
        state=state,
    )


def export_window(since: datetime | None, until: datetime | None) -> tuple[str, str]:
    """The period in the chain's time form; :class:`Invalid` naming ``since``/``until``."""
    out = []
    for name, value in (("since", since), ("until", until)):
        if value is None:
            raise Invalid(f"{name}: required (ISO 8601 with a zone)", field=name)
        if value.tzinfo is None:
            raise Invalid(f"{name}: a time zone is required (e.g. Z)", field=name)
        try:
            out.append(normalise_at(value))
        except (OverflowError, ValueError):
            raise Invalid(f"{name}: out of range", field=name) from None
    if out[0] > out[1]:
        raise Invalid("since must not be after until", field="since")
    return out[0], out[1]


@dataclass
class _Day:
    day: str
    lines: list[bytes] = field(default_factory=list)
    first: EventRef | None = None
    last: EventRef | None = None


def _index_items(index: CustomerIndex, customer_id: str, low: str, high: str) -> Iterator[dict]:
    start: str | None = None
    while True:
        page = index.page(customer_id, low, high + "#~", start, PAGE)
        yield from page.items
        if page.last_at_key is None:
            return
        start = page.last_at_key


_Pending = tuple[tuple[str, str, int], "ChainAttributes", Any, bytes]
"""An event waiting for its line: (time, stream, version), chain attributes, event, state."""


def _entry_key(item: Mapping[str, Any]) -> tuple[str, str, int]:
    """(time, stream, version) of the index entry an (expanded) item came from."""
    parts = str(item.get("at_key") or "").split("#")
    if len(parts) < 3 or not parts[2].isdigit():
        return ("", "", 0)
    return (parts[0], parts[1], int(parts[2]))


def _emit(
    waiting: _Pending,
    current: _Day | None,
    flush: Callable[[_Day], None],
    total: int,
    progress: Callable[[int], None] | None,
) -> tuple[_Day | None, int]:
    """Write one event's line into its day (flushing the day before when it changes)."""
    _, attributes, event, state = waiting
    document = envelope(event)
    document["ferry-chain"] = {**attributes.model_dump(), "state": state.decode()}
    day = attributes.at[:10]
    if current is not None and current.day != day:
        flush(current)
        current = None
    if current is None:
        current = _Day(day)
    ref = EventRef(
        stream_id=attributes.stream_id,
        version=attributes.version,
        time=attributes.at,
        hash=attributes.hash,
    )
    current.first = current.first or ref
    current.last = ref
    current.lines.append(_line(document))
    total += 1
    if progress is not None:
        progress(total)
    return current, total


def export_period(
    index: CustomerIndex,
    sink: ExportSink,
    customer_id: str,
    since: datetime | None,
    until: datetime | None,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Export the customer's events in [since, until] to ``sink``; returns the manifest (as a
    dict) with ``location`` (where the manifest went) and ``manifest_sha256``.

    One day is held in memory at a time (the index is read in time order)."""
    low, high = export_window(since, until)
    days: list[FileEntry] = []
    streams: dict[str, dict[str, Any]] = {}
    omitted: list[ChainAttributes] = []
    current: _Day | None = None
    total = 0
    pending: list[_Pending] = []  # a heap, by (time, stream, version)

    def flush(day: _Day) -> None:
        data = b"".join(day.lines)
        name = f"events-{day.day}.jsonl"
        sink.put(name, data)
        days.append(
            FileEntry(
                name=name,
                day=day.day,
                count=len(day.lines),
                bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                first=day.first,
                last=day.last,
            )
        )

    for item in _index_items(index, customer_id, low, high):
        if str(item.get("customer_id", customer_id)) != customer_id:
            continue  # never another customer's (the index partition is the customer's)
        state = bytes(item["state"])
        if not item.get("hash"):
            raise Invalid(
                f"stream {item['stream_id']} version {item['version']} is not sealed yet: run "
                "`ferry audit verify` first (it seals events stored before the chain)",
                field="since",
            )
        attributes = ChainAttributes(
            stream_id=str(item["stream_id"]),
            version=int(item["version"]),
            topic=str(item["topic"]),
            at=str(item["at"]),
            state_sha256=str(item["state_sha256"]),
            prev_hash=str(item["prev_hash"]),
            hash=str(item["hash"]),
        )
        seen = streams.get(attributes.stream_id)
        if seen is None:
            streams[attributes.stream_id] = {
                "first_version": attributes.version,
                "first_prev_hash": attributes.prev_hash,
                "head_version": attributes.version,
                "head_hash": attributes.hash,
                "count": 1,
            }
        else:
            seen.update(
                head_version=attributes.version, head_hash=attributes.hash, count=seen["count"] + 1
            )
        event = to_integration(_stored(attributes.model_dump(), state))
        if event is None:
            omitted.append(attributes)
            continue
        # Lines go out in (time, stream, version) order. The index has one entry per append,
        # at its first event's time, and an append's later events may sort after later
        # entries: each event waits in ``pending`` until the index has passed its key (no
        # later entry, nor any of its events, can sort before the entry's own key).
        threshold = _entry_key(item)
        while pending and pending[0][0] < threshold:
            current, total = _emit(heapq.heappop(pending), current, flush, total, progress)
        key = (attributes.at, attributes.stream_id, attributes.version)
        heapq.heappush(pending, (key, attributes, event, state))
    while pending:
        current, total = _emit(heapq.heappop(pending), current, flush, total, progress)
    if current is not None:
        flush(current)
    manifest = Manifest(
        customer_id=customer_id,
        since=low,
        until=high,
        created_at=normalise_at(clock()),
        count=total,
        files=days,
        streams={s: StreamEntry(**v) for s, v in sorted(streams.items())},
        omitted=omitted,
    )
    body = json.dumps(manifest.model_dump(mode="json"), indent=1, sort_keys=True).encode() + b"\n"
    location = sink.put(MANIFEST, body)
    return {
        **manifest.model_dump(mode="json"),
        "location": location,
        "manifest_sha256": hashlib.sha256(body).hexdigest(),
    }


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class ExportProblem:
    """One problem in an export: where (file, line; stream and version when known), what."""

    kind: str
    detail: str
    file: str | None = None
    line: int | None = None
    stream_id: str | None = None
    version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = self.file or "manifest"
        if self.line is not None:
            where += f" line {self.line}"
        return f"{where}: {self.kind}: {self.detail}"


@dataclass
class _Seen:
    stream_id: str
    version: int
    prev_hash: str
    hash: str
    where: str  # "file line N" or "manifest omitted"
    file: str | None = None
    line: int | None = None


def _check_line(
    raw: bytes, file: FileEntry, number: int, problems: list[ExportProblem]
) -> ChainBlock | None:
    """One line's own checks (shape, day, state, hash, detail); its chain block when readable."""

    def problem(kind: str, detail: str, chain: ChainBlock | None = None) -> None:
        problems.append(
            ExportProblem(
                kind,
                detail,
                file.name,
                number,
                chain.stream_id if chain else None,
                chain.version if chain else None,
            )
        )

    try:
        document = json.loads(raw)
        chain = ChainBlock.model_validate(document.get("ferry-chain"))
    except (ValueError, AttributeError, ValidationError):
        problem("unreadable", "not a JSON object with a valid ferry-chain block")
        return None
    where = f"stream {chain.stream_id} version {chain.version}"
    if chain.at[:10] != file.day:
        problem("wrong_file", f"{where} is of {chain.at[:10]}, the file of {file.day}", chain)
    state = chain.state.encode()
    digest = hashlib.sha256(state).hexdigest()
    if digest != chain.state_sha256:
        problem(
            "state_edited",
            f"{where}: the state hashes to {digest[:16]}…, state_sha256 says "
            f"{chain.state_sha256[:16]}…",
            chain,
        )
        return chain
    recomputed = event_hash(
        chain.stream_id, chain.version, chain.topic, chain.at, chain.state_sha256, chain.prev_hash
    )
    if recomputed != chain.hash:
        problem(
            "hash_mismatch",
            f"{where}: the chain fields hash to {recomputed[:16]}…, the recorded hash is "
            f"{chain.hash[:16]}…",
            chain,
        )
        return chain
    try:
        event = to_integration(_stored(chain.model_dump(), state))
    except Exception:  # an unknown topic or a state the contract cannot read
        event = None
    published = {k: v for k, v in document.items() if k != "ferry-chain"}
    expected = envelope(event) if event is not None else {}
    if expected != published:
        differs = sorted(
            k for k in set(published) | set(expected) if published.get(k) != expected.get(k)
        )
        problem(
            "detail_edited",
            f"{where}: the published event differs from its chained state ({', '.join(differs)})",
            chain,
        )
    return chain


def verify_export(source: ExportSource) -> list[ExportProblem]:
    """Check an export offline: the manifest, each file's sha256 and count, the order of the
    lines, each event's hash and state, and the prev_hash links of every stream (through the
    manifest's ``omitted`` internal events). Returns every problem; empty when it verifies.

    Problems come in this order: the lines' own (file by file, line by line), then the streams'
    links and ends, then the files' counts and sha256s — so the first one is the most precise."""
    raw = source.get(MANIFEST)
    if raw is None:
        return [ExportProblem("manifest_missing", f"no {MANIFEST}")]
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as error:
        reason = error.errors()[0]
        where = ".".join(str(p) for p in reason["loc"]) or "(document)"
        return [ExportProblem("manifest_unreadable", f"{where}: {reason['msg']}")]
    line_problems: list[ExportProblem] = []
    file_problems: list[ExportProblem] = []
    seen: dict[str, list[_Seen]] = {}
    previous: tuple[str, str, int] | None = None
    previous_where = ""
    total = 0
    for file in manifest.files:
        data = source.get(file.name)
        if data is None:
            file_problems.append(ExportProblem("file_missing", "listed in the manifest", file.name))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != file.sha256:
            file_problems.append(
                ExportProblem(
                    "file_sha256_mismatch",
                    f"the file hashes to {digest[:16]}…, the manifest says {file.sha256[:16]}…",
                    file.name,
                )
            )
        lines = data.splitlines()
        if len(lines) != file.count:
            file_problems.append(
                ExportProblem(
                    "count_mismatch",
                    f"{len(lines)} lines, the manifest says {file.count}",
                    file.name,
                )
            )
        first: EventRef | None = None
        last: EventRef | None = None
        for number, raw_line in enumerate(lines, start=1):
            total += 1
            chain = _check_line(raw_line, file, number, line_problems)
            if chain is None:
                continue
            key = (chain.at, chain.stream_id, chain.version)
            if previous is not None and key <= previous:
                line_problems.append(
                    ExportProblem(
                        "out_of_order",
                        f"stream {chain.stream_id} version {chain.version} at {chain.at} "
                        f"sorts before {previous_where} (order: time, stream, version)",
                        file.name,
                        number,
                        chain.stream_id,
                        chain.version,
                    )
                )
            previous = max(previous, key) if previous is not None else key
            if previous == key:
                previous_where = f"line {number} of {file.name}"
            ref = EventRef(
                stream_id=chain.stream_id, version=chain.version, time=chain.at, hash=chain.hash
            )
            first = first or ref
            last = ref
            seen.setdefault(chain.stream_id, []).append(
                _Seen(
                    chain.stream_id,
                    chain.version,
                    chain.prev_hash,
                    chain.hash,
                    f"{file.name} line {number}",
                    file.name,
                    number,
                )
            )
        if (first, last) != (file.first, file.last) and len(lines) == file.count:
            file_problems.append(
                ExportProblem(
                    "ends_mismatch",
                    "the first/last event is not the one the manifest names",
                    file.name,
                )
            )
    if total != manifest.count:
        file_problems.append(
            ExportProblem("count_mismatch", f"{total} events, the manifest says {manifest.count}")
        )
    stream_problems = _verify_links(manifest, seen)
    return line_problems + stream_problems + file_problems


def _verify_links(manifest: Manifest, seen: dict[str, list[_Seen]]) -> list[ExportProblem]:
    problems: list[ExportProblem] = []
    for omitted in manifest.omitted:
        recomputed = event_hash(
            omitted.stream_id,
            omitted.version,
            omitted.topic,
            omitted.at,
            omitted.state_sha256,
            omitted.prev_hash,
        )
        if recomputed != omitted.hash:
            problems.append(
                ExportProblem(
                    "hash_mismatch",
                    "an omitted internal event's chain fields do not hash to its hash",
                    stream_id=omitted.stream_id,
                    version=omitted.version,
                )
            )
        seen.setdefault(omitted.stream_id, []).append(
            _Seen(
                omitted.stream_id,
                omitted.version,
                omitted.prev_hash,
                omitted.hash,
                "the manifest's omitted events",
            )
        )
    for stream_id in sorted(set(seen) - set(manifest.streams)):
        first = seen[stream_id][0]
        problems.append(
            ExportProblem(
                "unknown_stream",
                f"stream {stream_id} is not in the manifest",
                first.file,
                first.line,
                stream_id,
                first.version,
            )
        )
    for stream_id, entry in manifest.streams.items():
        events = sorted(seen.get(stream_id, []), key=lambda s: s.version)
        expected_version = entry.first_version
        expected_prev = genesis(stream_id) if entry.first_version <= 1 else entry.first_prev_hash
        if entry.first_version <= 1 and entry.first_prev_hash != expected_prev:
            problems.append(
                ExportProblem(
                    "chain_broken",
                    "version 1's prev_hash in the manifest is not the genesis marker",
                    stream_id=stream_id,
                    version=1,
                )
            )
        for event in events:
            if event.version < expected_version:
                problems.append(
                    ExportProblem(
                        "duplicate",
                        f"stream {stream_id} version {event.version} appears twice",
                        event.file,
                        event.line,
                        stream_id,
                        event.version,
                    )
                )
                continue
            if event.version > expected_version:
                missing = (
                    f"version {expected_version}"
                    if event.version == expected_version + 1
                    else f"versions {expected_version}..{event.version - 1}"
                )
                problems.append(
                    ExportProblem(
                        "event_missing",
                        f"stream {stream_id}: {missing} missing (before {event.where})",
                        event.file,
                        event.line,
                        stream_id,
                        expected_version,
                    )
                )
            elif event.prev_hash != expected_prev:
                problems.append(
                    ExportProblem(
                        "chain_broken",
                        f"stream {stream_id} version {event.version}: prev_hash "
                        f"{event.prev_hash[:16]}… is not the previous event's hash "
                        f"({expected_prev[:16]}…)",
                        event.file,
                        event.line,
                        stream_id,
                        event.version,
                    )
                )
            expected_version = event.version + 1
            expected_prev = event.hash
        head = expected_version - 1
        if head < entry.head_version:
            missing = (
                f"version {entry.head_version}"
                if head + 1 == entry.head_version
                else f"versions {head + 1}..{entry.head_version}"
            )
            problems.append(
                ExportProblem(
                    "event_missing",
                    f"stream {stream_id}: {missing} missing (the manifest's head is version "
                    f"{entry.head_version})",
                    stream_id=stream_id,
                    version=head + 1,
                )
            )
        elif head > entry.head_version or (events and expected_prev != entry.head_hash):
            problems.append(
                ExportProblem(
                    "head_mismatch",
                    f"stream {stream_id} ends at version {head} ({expected_prev[:16]}…), the "
                    f"manifest's head is version {entry.head_version} "
                    f"({entry.head_hash[:16]}…)",
                    stream_id=stream_id,
                    version=head,
                )
            )
    return problems
