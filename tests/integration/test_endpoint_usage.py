"""What guards DELETE /endpoints/{id}: ``ReadModelEndpointUsage`` over the real jobs and routes
read-model tables (moto server), and the endpoints API refusing to retire an endpoint in use."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from events.contract import EndpointConfig, EndpointType
from ferry.names import ResourceNames
from services.endpoints.adapters import ReadModelEndpointUsage
from services.endpoints.application import EndpointsApplication, Registration
from services.endpoints.domain import EndpointInUse
from services.projections.tables import create_read_model_tables
from services.routes.adapters import create_tables as create_routes_tables
from services.routes.adapters import serialize
from tests.support.fakes.endpoints import InMemorySecretStore
from tests.support.moto_server import unique_name

pytestmark = pytest.mark.usefixtures("aws_env")


def _job(job_id: str, customer: str, status: str, source: str, target: str) -> dict[str, Any]:
    return {
        "job_id": {"S": job_id},
        "customer_id": {"S": customer},
        "status": {"S": status},
        "customer_status": {"S": f"{customer}#{status}"},
        "created_at": {"S": "2026-12-01T00:00:00+00:00"},
        "source": {"M": {"endpoint_id": {"S": source}, "path": {"S": "a"}}},
        "target": {"M": {"endpoint_id": {"S": target}, "path": {"S": "b"}}},
    }


def _route(route_id: str, customer: str, source: str, targets: list[str], enabled: bool) -> Any:
    return serialize(
        {
            "route_id": route_id,
            "sk": "route",
            "customer_id": customer,
            "created_at": "2026-12-01T00:00:00+00:00",
            "enabled": enabled,
            "definition": {
                "name": route_id,
                "source": {"endpoint_id": source, "path": "in"},
                "targets": [{"endpoint_id": t, "path": "out"} for t in targets],
                "enabled": enabled,
            },
        }
    )


def test_usage_finds_jobs_not_final_and_enabled_routes_only() -> None:
    ddb = boto3.client("dynamodb")
    names = ResourceNames(unique_name("fu"))
    create_read_model_tables(ddb, names)
    create_routes_tables(ddb, names.routes_table, names.route_scan_table)
    usage = ReadModelEndpointUsage(names.jobs_table, names.routes_table, ddb)
    e1, e2, other = "e-1", "e-2", "e-other"
    for job_id, customer, status, src, dst in [
        ("j-run", "c", "RUNNING", e1, other),
        ("j-queued", "c", "QUEUED", other, e1),
        ("j-done", "c", "SUCCEEDED", e1, other),  # final: no longer a user
        ("j-failed", "c", "FAILED", e2, e1),
        ("j-theirs", "d", "RUNNING", e1, e1),  # another customer's (cannot name c's endpoint)
    ]:
        ddb.put_item(TableName=names.jobs_table, Item=_job(job_id, customer, status, src, dst))
    ddb.put_item(TableName=names.routes_table, Item=_route("r-on", "c", other, [e2], True))
    ddb.put_item(TableName=names.routes_table, Item=_route("r-off", "c", e1, [e2], False))

    found = usage.users("c", e1)
    assert sorted(found) == ["job j-queued (QUEUED)", "job j-run (RUNNING)"]
    assert usage.users("c", e2) == ["enabled route r-on"]
    assert usage.users("c", "e-unused") == []

    # through the application: retire refused while in use, allowed once unused
    app = EndpointsApplication(
        secrets=InMemorySecretStore(),
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        is_reserved_bucket=lambda b: False,
        usage=usage,
        new_id=lambda: uuid.UUID(int=2),
    )
    endpoint = app.register(
        customer_id="c",
        actor="k",
        registration=Registration(
            name="n",
            direction="BOTH",
            max_concurrency=1,
            config=EndpointConfig(type=EndpointType.S3, bucket="b-1"),
        ),
    )
    eid = str(endpoint.id)
    ddb.put_item(TableName=names.jobs_table, Item=_job("j-new", "c", "VERIFYING", eid, other))
    with pytest.raises(EndpointInUse):
        app.retire(customer_id="c", endpoint_id=eid, actor="k")
    ddb.delete_item(TableName=names.jobs_table, Key={"job_id": {"S": "j-new"}})
    assert app.retire(customer_id="c", endpoint_id=eid, actor="k").status.value == "RETIRED"
