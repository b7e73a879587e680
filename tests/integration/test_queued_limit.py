"""The queued-jobs count (services/jobs/adapters.py DynamoQueuedJobs) on moto server, on the
jobs read-model table as the projections define it (services/projections/tables.py)."""

from __future__ import annotations

import uuid

import boto3
import pytest

from ferry.names import ResourceNames
from services.jobs.adapters import DynamoQueuedJobs
from services.projections.tables import create_read_model_tables
from tests.support.moto_server import unique_name

pytestmark = pytest.mark.usefixtures("aws_env")


def test_counts_a_customers_received_and_queued_jobs_up_to_the_limit() -> None:
    ddb = boto3.client("dynamodb")
    names = ResourceNames(unique_name("ql"))
    create_read_model_tables(ddb, names)
    statuses = ["QUEUED"] * 4 + ["RECEIVED"] * 2 + ["RUNNING", "SUCCEEDED", "FAILED"]
    for i, status in enumerate(statuses):
        for customer in ("cust-a", "cust-b"):
            if customer == "cust-b" and status != "RUNNING":
                continue
            ddb.put_item(
                TableName=names.jobs_table,
                Item={
                    "job_id": {"S": str(uuid.uuid4())},
                    "customer_id": {"S": customer},
                    "status": {"S": status},
                    "customer_status": {"S": f"{customer}#{status}"},
                    "created_at": {"S": f"2026-12-03T08:00:{i:02d}.000000+00:00"},
                },
            )
    queued = DynamoQueuedJobs(names.jobs_table)
    assert queued.count("cust-a", 100) == 6
    assert queued.count("cust-a", 5) == 5  # no further than the limit
    assert queued.count("cust-a", 2) == 2
    assert queued.count("cust-b", 100) == 0  # another customer's running job is not waiting


def test_a_failed_read_counts_nothing_so_a_transfer_is_never_refused_for_it() -> None:
    assert DynamoQueuedJobs(unique_name("no-such-table")).count("cust-a", 10) == 0
