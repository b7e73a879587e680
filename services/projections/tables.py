"""The read-model tables (docs/architecture.md, "Read models"): created by the local stack, the
tests and ``rebuild``; infra/ mirrors these definitions."""

from __future__ import annotations

from typing import Any

from ferry.names import ResourceNames

ENDPOINTS_CUSTOMER_INDEX = "customer-index"
JOBS_CUSTOMER_CREATED_INDEX = "customer-created-index"
JOBS_CUSTOMER_STATUS_INDEX = "customer-status-index"
JOBS_CUSTOMER_ROUTE_INDEX = "customer-route-index"  # sparse: jobs a route started
JOBS_CUSTOMER_ROUTE_STATUS_INDEX = "customer-route-status-index"
# A job touches two endpoints: one pair per side, merged by the endpoint filter. Keys only (the
# filter reads the items by key), so a progress write does not rewrite them; the target pair holds
# only jobs whose target is not their source (the source pair has those).
JOBS_CUSTOMER_SOURCE_INDEX = "customer-source-index"
JOBS_CUSTOMER_SOURCE_STATUS_INDEX = "customer-source-status-index"
JOBS_CUSTOMER_TARGET_INDEX = "customer-target-index"
JOBS_CUSTOMER_TARGET_STATUS_INDEX = "customer-target-status-index"


def _gsi(name: str, partition: str, sort: str, projection: str = "ALL") -> dict[str, Any]:
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": partition, "KeyType": "HASH"},
            {"AttributeName": sort, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": projection},
    }


def table_definitions(names: ResourceNames) -> list[dict[str, Any]]:
    """CreateTable requests for the read-model tables (endpoints, jobs, job stats; on-demand)."""
    return [
        {
            "TableName": names.endpoints_table,
            "KeySchema": [{"AttributeName": "endpoint_id", "KeyType": "HASH"}],
            "AttributeDefinitions": [
                {"AttributeName": "endpoint_id", "AttributeType": "S"},
                {"AttributeName": "customer_id", "AttributeType": "S"},
                {"AttributeName": "created_at", "AttributeType": "S"},
            ],
            "GlobalSecondaryIndexes": [
                _gsi(ENDPOINTS_CUSTOMER_INDEX, "customer_id", "created_at"),
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
        {
            "TableName": names.jobs_table,
            "KeySchema": [{"AttributeName": "job_id", "KeyType": "HASH"}],
            "AttributeDefinitions": [
                {"AttributeName": "job_id", "AttributeType": "S"},
                {"AttributeName": "customer_id", "AttributeType": "S"},
                {"AttributeName": "customer_status", "AttributeType": "S"},
                {"AttributeName": "customer_route", "AttributeType": "S"},
                {"AttributeName": "customer_route_status", "AttributeType": "S"},
                {"AttributeName": "customer_source", "AttributeType": "S"},
                {"AttributeName": "customer_source_status", "AttributeType": "S"},
                {"AttributeName": "customer_target", "AttributeType": "S"},
                {"AttributeName": "customer_target_status", "AttributeType": "S"},
                {"AttributeName": "created_at", "AttributeType": "S"},
            ],
            "GlobalSecondaryIndexes": [
                _gsi(JOBS_CUSTOMER_CREATED_INDEX, "customer_id", "created_at"),
                _gsi(JOBS_CUSTOMER_STATUS_INDEX, "customer_status", "created_at"),
                _gsi(JOBS_CUSTOMER_ROUTE_INDEX, "customer_route", "created_at"),
                _gsi(JOBS_CUSTOMER_ROUTE_STATUS_INDEX, "customer_route_status", "created_at"),
                _gsi(JOBS_CUSTOMER_SOURCE_INDEX, "customer_source", "created_at", "KEYS_ONLY"),
                _gsi(
                    JOBS_CUSTOMER_SOURCE_STATUS_INDEX,
                    "customer_source_status",
                    "created_at",
                    "KEYS_ONLY",
                ),
                _gsi(JOBS_CUSTOMER_TARGET_INDEX, "customer_target", "created_at", "KEYS_ONLY"),
                _gsi(
                    JOBS_CUSTOMER_TARGET_STATUS_INDEX,
                    "customer_target_status",
                    "created_at",
                    "KEYS_ONLY",
                ),
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
        _stats_definition(names),
    ]


def _stats_definition(names: ResourceNames) -> dict[str, Any]:
    """The jobs-per-hour counters (services/projections/stats.py): the customer's partition,
    one row per hour and shard."""
    return {
        "TableName": names.job_stats_table,
        "KeySchema": [
            {"AttributeName": "customer_id", "KeyType": "HASH"},
            {"AttributeName": "hour_shard", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "customer_id", "AttributeType": "S"},
            {"AttributeName": "hour_shard", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def create_read_model_tables(dynamodb_client: Any, names: ResourceNames) -> list[str]:
    """Create the read-model tables if missing; returns the names created."""
    created = []
    for definition in table_definitions(names):
        try:
            dynamodb_client.create_table(**definition)
        except dynamodb_client.exceptions.ResourceInUseException:
            continue
        created.append(definition["TableName"])
    for name in created:
        dynamodb_client.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
    return created


def delete_read_model_tables(dynamodb_client: Any, names: ResourceNames) -> list[str]:
    """Delete the read-model tables if present; returns the names deleted."""
    deleted = []
    for name in (names.endpoints_table, names.jobs_table, names.job_stats_table):
        try:
            dynamodb_client.delete_table(TableName=name)
        except dynamodb_client.exceptions.ResourceNotFoundException:
            continue
        deleted.append(name)
    for name in deleted:
        dynamodb_client.get_waiter("table_not_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
    return deleted
