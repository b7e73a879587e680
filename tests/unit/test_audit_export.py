"""Audit export and its offline verification, on in-memory adapters: a scripted history over
three UTC days exports one file per day and verifies; editing, dropping or reordering a line is
each reported exactly (file, line, stream, version); bad periods name their field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOAggregateRecorder

from events.translate import transcoder
from ferry.errors import Invalid
from services.projections.audit_export import (
    MANIFEST,
    DirectorySink,
    envelope,
    export_period,
    verify_export,
)
from services.projections.samples import History, to_stored
from tests.support.fakes.audit import InMemoryChainStore, InMemoryCustomerIndex

START = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 3, 31, tzinfo=UTC)
CLAIM_TOPIC = "services.endpoints.domain:EndpointName.Claimed"


def _claim(customer_id: str, endpoint_id: str, at: datetime) -> StoredEvent:
    """An internal event (never published): in the chain, not in the lines."""
    state = {
        "originator_id": f"claim-{endpoint_id}",
        "originator_version": 1,
        "timestamp": at,
        "customer_id": customer_id,
        "correlation_id": endpoint_id,
        "endpoint_id": endpoint_id,
        "originator_topic": "services.endpoints.domain:EndpointName",
    }
    return StoredEvent(f"claim-{endpoint_id}", 1, CLAIM_TOPIC, transcoder().encode(state))


class Scripted:
    """Two customers' endpoints and jobs, one event every 3 hours from 1 March 20:00 (so the
    history spans 1 to 3 March), plus an internal name claim."""

    def __init__(self) -> None:
        self.recorder = POPOAggregateRecorder()
        h = History(start=START, step=timedelta(hours=3))
        src = h.endpoint("acme", endpoint_type="s3")
        dst = h.endpoint("acme")
        h.job("acme", src, dst)
        h.endpoint("globex")
        self.history = h
        by_stream: dict[str, list[StoredEvent]] = {}
        for event in h.events:
            by_stream.setdefault(event.stream_id, []).append(to_stored(event))
        for stored in by_stream.values():
            self.recorder.insert_events(stored)
        self.recorder.insert_events([_claim("acme", src, START + timedelta(minutes=1))])
        chain = InMemoryChainStore(self.recorder)
        self.index = InMemoryCustomerIndex(chain)

    def acme_events(self) -> list[Any]:
        return [e for e in self.history.events if e.customer_id == "acme"]


@pytest.fixture(scope="module")
def scripted() -> Scripted:
    return Scripted()


@pytest.fixture
def exported(scripted: Scripted, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    manifest = export_period(
        scripted.index, DirectorySink(tmp_path), "acme", SINCE, UNTIL, clock=lambda: UNTIL
    )
    return tmp_path, manifest


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_an_export_has_one_file_per_day_in_the_published_shape_and_verifies(
    scripted: Scripted, exported: tuple[Path, dict[str, Any]]
) -> None:
    root, manifest = exported
    events = scripted.acme_events()
    days = sorted({e.occurred_at.date().isoformat() for e in events})
    assert len(days) >= 2
    assert [f["day"] for f in manifest["files"]] == days
    assert manifest["count"] == len(events)
    assert sum(f["count"] for f in manifest["files"]) == len(events)
    assert [o["topic"] for o in manifest["omitted"]] == [CLAIM_TOPIC]
    first = json.loads(_lines(root / manifest["files"][0]["name"])[0])
    assert {k: v for k, v in first.items() if k != "ferry-chain"} == envelope(events[0])
    assert first["source"] == "ferry.endpoints" and first["detail-type"] == "EndpointRegistered"
    assert first["ferry-chain"]["stream_id"] == events[0].stream_id
    assert manifest["files"][0]["first"]["hash"] == first["ferry-chain"]["hash"]
    assert "globex" not in (root / manifest["files"][-1]["name"]).read_text()
    assert verify_export(DirectorySink(root)) == []


def test_the_same_period_exports_byte_for_byte_the_same(
    scripted: Scripted, exported: tuple[Path, dict[str, Any]], tmp_path_factory: Any
) -> None:
    _, manifest = exported
    again = export_period(
        scripted.index,
        DirectorySink(tmp_path_factory.mktemp("again")),
        "acme",
        SINCE,
        UNTIL,
        clock=lambda: UNTIL,
    )
    assert again["manifest_sha256"] == manifest["manifest_sha256"]


def test_editing_one_line_is_reported_at_that_line(
    exported: tuple[Path, dict[str, Any]],
) -> None:
    root, manifest = exported
    name = manifest["files"][1]["name"]
    lines = _lines(root / name)
    document = json.loads(lines[2])
    document["detail"]["customer_id"] = "evil"
    lines[2] = json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n"
    (root / name).write_text("".join(lines))
    problems = verify_export(DirectorySink(root))
    assert (problems[0].kind, problems[0].file, problems[0].line) == ("detail_edited", name, 3)
    assert problems[0].stream_id == document["ferry-chain"]["stream_id"]
    assert "detail" in problems[0].detail
    assert [p.kind for p in problems[1:]] == ["file_sha256_mismatch"]


def test_editing_the_chained_state_is_reported_as_state_edited(
    exported: tuple[Path, dict[str, Any]],
) -> None:
    root, manifest = exported
    name = manifest["files"][0]["name"]
    lines = _lines(root / name)
    lines[0] = lines[0].replace("acme-s3", "acme-s4")  # in the detail and in the state
    (root / name).write_text("".join(lines))
    problems = verify_export(DirectorySink(root))
    assert (problems[0].kind, problems[0].line, problems[0].version) == ("state_edited", 1, 1)


def test_dropping_one_line_names_the_missing_stream_version(
    exported: tuple[Path, dict[str, Any]],
) -> None:
    root, manifest = exported
    name = manifest["files"][1]["name"]
    lines = _lines(root / name)
    dropped = json.loads(lines[1])["ferry-chain"]
    del lines[1]
    (root / name).write_text("".join(lines))
    problems = verify_export(DirectorySink(root))
    first = problems[0]
    assert first.kind == "event_missing"
    assert (first.stream_id, first.version) == (dropped["stream_id"], dropped["version"])
    assert {"count_mismatch", "file_sha256_mismatch"} <= {p.kind for p in problems}


def test_dropping_a_streams_last_line_is_caught_by_the_manifest_head(
    exported: tuple[Path, dict[str, Any]],
) -> None:
    root, manifest = exported
    name = manifest["files"][-1]["name"]
    lines = _lines(root / name)
    dropped = json.loads(lines[-1])["ferry-chain"]
    (root / name).write_text("".join(lines[:-1]))
    problems = verify_export(DirectorySink(root))
    assert (problems[0].kind, problems[0].stream_id, problems[0].version) == (
        "event_missing",
        dropped["stream_id"],
        dropped["version"],
    )


def test_reordering_two_lines_is_reported_at_the_second(
    exported: tuple[Path, dict[str, Any]],
) -> None:
    root, manifest = exported
    name = manifest["files"][1]["name"]
    lines = _lines(root / name)
    lines[3], lines[4] = lines[4], lines[3]
    (root / name).write_text("".join(lines))
    problems = verify_export(DirectorySink(root))
    assert (problems[0].kind, problems[0].file, problems[0].line) == ("out_of_order", name, 5)
    assert "line 4" in problems[0].detail
    assert [p.kind for p in problems[1:]] == ["file_sha256_mismatch"]


def test_a_missing_file_or_manifest_is_reported(exported: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = exported
    (root / manifest["files"][0]["name"]).unlink()
    kinds = [p.kind for p in verify_export(DirectorySink(root))]
    assert "file_missing" in kinds and "event_missing" in kinds
    (root / MANIFEST).unlink()
    assert [p.kind for p in verify_export(DirectorySink(root))] == ["manifest_missing"]


@pytest.mark.parametrize(
    ("since", "until", "field"),
    [
        (None, UNTIL, "since"),
        (SINCE, None, "until"),
        (datetime(2026, 3, 1), UNTIL, "since"),
        (UNTIL, SINCE, "since"),
    ],
)
def test_a_bad_period_names_its_field(
    scripted: Scripted, tmp_path: Path, since: Any, until: Any, field: str
) -> None:
    with pytest.raises(Invalid) as error:
        export_period(scripted.index, DirectorySink(tmp_path), "acme", since, until)
    assert error.value.field == field
    assert not list(tmp_path.iterdir())


def test_the_documented_shell_check_passes_and_catches_an_edit(
    exported: tuple[Path, dict[str, Any]],
) -> None:
    """docs/audit.md, "Export for an auditor": the sha256sum and jq procedure, as written."""
    import re
    import shutil
    import subprocess

    if not (shutil.which("jq") and shutil.which("sha256sum")):
        pytest.skip("jq or sha256sum is not installed")
    doc = (Path(__file__).parents[2] / "docs" / "audit.md").read_text()
    section = doc.split("## Export for an auditor", 1)[1]
    script = re.search(r"```bash\n(.*?)```", section, re.S)
    assert script is not None
    root, manifest = exported
    run = subprocess.run(["bash", "-c", script.group(1)], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0 and "matches the manifest" in run.stdout, run.stdout + run.stderr
    assert manifest["manifest_sha256"] in run.stdout
    first = root / manifest["files"][0]["name"]
    first.write_bytes(first.read_bytes().replace(b'"acme"', b'"acmf"', 1))
    run = subprocess.run(["bash", "-c", script.group(1)], cwd=root, capture_output=True, text=True)
    assert run.returncode != 0 and "FAILED" in run.stdout, run.stdout
