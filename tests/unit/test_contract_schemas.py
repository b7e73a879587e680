"""The checked-in contract artefacts (events/schemas/*.json, docs/events.md) match the models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from events import schema_gen
from events.contract import EVENT_TYPES, JobQueued

_CATALOG = schema_gen.catalog()
_FILES = schema_gen.schema_files()


def test_checked_in_schemas_and_catalog_match_the_models() -> None:
    assert schema_gen.drift() == [], "run: python -m events.schema_gen"


def test_drift_is_detected(tmp_path: Path) -> None:
    schemas, docs = tmp_path / "schemas", tmp_path / "events.md"
    schema_gen.write(schemas, docs)
    assert schema_gen.drift(schemas, docs) == []

    queued = schemas / "JobQueued.json"
    document = json.loads(queued.read_text())
    del document["properties"]["detail"]["properties"]["attempt"]
    queued.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    (schemas / "JobVanished.json").write_text("{}\n")
    docs.write_text(docs.read_text().replace("JobQueued", "JobEnqueued"))

    problems = schema_gen.drift(schemas, docs)
    assert any("out of date" in p and p.endswith("JobQueued.json") for p in problems)
    assert any("stray" in p and p.endswith("JobVanished.json") for p in problems)
    assert any("out of date" in p and p.endswith("events.md") for p in problems)


def test_check_mode_exits_non_zero_on_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema_gen, "drift", lambda: ["out of date: x"])
    assert schema_gen.main(["--check"]) == 1
    monkeypatch.undo()
    assert schema_gen.main(["--check"]) == 0


def test_output_is_deterministic() -> None:
    assert schema_gen.schema_files() == schema_gen.schema_files()
    assert schema_gen.catalog() == schema_gen.catalog()
    for text in schema_gen.schema_files().values():
        assert text.endswith("}\n")


@pytest.mark.parametrize("detail_type", sorted(EVENT_TYPES))
def test_every_schema_names_its_source_and_detail_type(detail_type: str) -> None:
    model = EVENT_TYPES[detail_type]
    schema = schema_gen.event_schema(model)
    assert schema["properties"]["source"]["const"] == model.SOURCE
    assert schema["properties"]["detail-type"]["const"] == detail_type
    assert schema["x-ferry-source"] == model.SOURCE
    assert schema["x-ferry-detail-type"] == detail_type
    detail = schema["properties"]["detail"]
    assert set(detail["required"]) >= {"event_id", "stream_id", "version", "occurred_at"}
    assert detail["additionalProperties"] is False
    # every $ref resolves inside the document
    text = json.dumps(schema)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/$defs/')[1:]}:
        assert ref in schema["$defs"], ref


@pytest.mark.parametrize("detail_type", sorted(EVENT_TYPES))
def test_catalog_documents_every_event_with_a_valid_example(detail_type: str) -> None:
    model = EVENT_TYPES[detail_type]
    example = schema_gen.example_detail(model)
    assert model.model_validate(example).model_dump(mode="json") == example
    assert f"#### {detail_type}\n" in _CATALOG


def test_no_secret_field_in_any_event() -> None:
    forbidden = {"password", "private_key", "passphrase", "secret"}
    for detail_type in EVENT_TYPES:
        text = _FILES[f"{detail_type}.json"]
        properties = set()
        for document in [json.loads(text)]:
            stack = [document]
            while stack:
                node = stack.pop()
                if isinstance(node, dict):
                    properties.update(node.get("properties", {}))
                    stack.extend(node.values())
                elif isinstance(node, list):
                    stack.extend(node)
        assert not (properties & forbidden), detail_type
    assert "attempt" in JobQueued.model_fields
