"""A scripted history (``services.projections.samples.History``) in a fresh event store on moto
server, with an API key per customer: the world of the CLI tests that read the event store
directly (``ferry replay``, ``ferry audit export``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest

from events.dynamodb import DynamoDBAggregateRecorder, create_events_table
from ferry.api import DynamoKeyStore, issue_key
from services.projections.samples import History, to_stored
from tests.support.moto_server import aws_environment, unique_name

T = TypeVar("T")


def seed_event_store(history: History, customers: Iterable[str]) -> tuple[str, str]:
    """(events table, API keys table): the history's events appended stream by stream (so
    chained on append) and one key per customer. boto3 must point at moto (``aws_env``)."""
    ddb = boto3.client("dynamodb")
    table, keys_table = unique_name("events"), unique_name("keys")
    create_events_table(ddb, table)
    DynamoKeyStore.create_table(ddb, keys_table)
    keys = DynamoKeyStore(keys_table, client=ddb)
    for customer in customers:
        issue_key(keys, customer)
    recorder = DynamoDBAggregateRecorder(ddb, table)
    by_stream: dict[str, list[Any]] = {}
    for event in history.events:
        by_stream.setdefault(event.stream_id, []).append(to_stored(event))
    for stored in by_stream.values():
        recorder.insert_events(stored)
    return table, keys_table


def published(history: History, customer: str) -> int:
    """How many of the customer's events are published (internal ones are never export lines)."""
    from events.translate import to_integration

    return sum(
        1
        for e in history.events
        if e.customer_id == customer and to_integration(to_stored(e)) is not None
    )


def build_on_moto(moto_server: str, build: Callable[[dict[str, str]], T]) -> T:
    """``build(env)`` with boto3 pointed at moto server while it runs (for module fixtures,
    which cannot use the per-test ``aws_env``)."""
    with pytest.MonkeyPatch.context() as patch:
        env = aws_environment(moto_server)
        for name, value in env.items():
            patch.setenv(name, value)
        return build(env)


def use_cli_env(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Set ``env`` and a fresh FERRY_DATA_DIR for one test of ``ferry.cli.main``."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FERRY_DATA_DIR", str(tmp_path / "data"))
    return tmp_path
