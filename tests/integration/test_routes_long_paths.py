"""Route file paths longer than a DynamoDB sort key allows (1,024 bytes) are keyed by their sha256
in the scan-state table and the routes read model; the items keep the full path."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from events import contract as c
from services.routes.adapters import DynamoScanStateStore, create_tables
from services.routes.ports import PendingDelivery, ScanState
from services.routes.readmodel import FILE_SK, fold_file, key_of, path_key
from tests.support.moto_server import unique_name

pytestmark = pytest.mark.usefixtures("aws_env")

LONG = "deep/" * 250 + "statement.csv"  # 1,263 bytes
SHORT = "in/a.csv"


def test_path_keys_fit_a_sort_key_and_stay_distinct() -> None:
    assert path_key(SHORT) == SHORT
    assert len((FILE_SK + path_key(LONG)).encode()) <= 1024
    assert path_key(LONG) != path_key(LONG + "x")
    now = datetime.now(UTC)
    event = c.FileDiscovered(
        event_id="e", stream_id="s", version=1, occurred_at=now, customer_id="acme",
        correlation_id="r", route_id="r", path=LONG, size=1, file_version="1:1",
        first_seen_at=now,
    )  # fmt: skip
    item = fold_file(None, event)
    assert key_of(event) == ("r", item["sk"]) and item["path"] == LONG


def test_scan_state_round_trips_a_long_path() -> None:
    client = boto3.client("dynamodb")
    routes_table, scan_table = unique_name("routes"), unique_name("scan")
    create_tables(client, routes_table, scan_table)
    store = DynamoScanStateStore(scan_table, client)
    state = ScanState(path=LONG, size=10, mtime=1.0, checks=1, first_seen=1.0)
    store.put_many(
        "r1", [state, ScanState(path=SHORT, size=1, mtime=1.0, checks=2, first_seen=1.0)]
    )
    assert store.get_many("r1", [LONG, SHORT])[LONG] == state
    store.add_pending("r1", [PendingDelivery(LONG, "10:1", ("job-1",))])
    assert [p.path for p in store.pending("r1", 10)] == [LONG]
    keys = [i["key"]["S"] for i in client.scan(TableName=scan_table)["Items"]]
    assert keys and all(len(k.encode()) <= 1024 for k in keys)
