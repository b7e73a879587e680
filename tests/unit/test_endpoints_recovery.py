"""Endpoint recovery paths (issue 9) and S3 tenancy rules enforced by the endpoints API (issue 8):
POST /endpoints/{id}/validate, DELETE /endpoints/{id} (retire), enable on a VALIDATION_FAILED
endpoint, names unique per customer, Ferry's own buckets refused, external_id / role_arn.

Through the real Powertools resolver on in-memory eventsourcing and a fake Secrets Manager."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from events.translate import stream_events
from ferry.api import issue_key
from ferry.apigw import rest_event
from services.endpoints.bootstrap import bootstrap
from services.endpoints.handlers import build_resolver as endpoints_resolver
from services.endpoints.settings import EndpointsSettings
from tests.support.fakes.endpoints import InMemoryEndpointUsage, InMemorySecretStore
from tests.support.fakes.keys import InMemoryKeyStore
from tests.unit.test_endpoints_api import HOST_KEY, PASSWORD

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


class Api:
    def __init__(self) -> None:
        keys = InMemoryKeyStore()
        self.key, principal = issue_key(keys, "cust-a")
        self.other_key, _ = issue_key(keys, "cust-b")
        self.key_id = principal.key_id
        self.secrets = InMemorySecretStore()
        self.usage = InMemoryEndpointUsage()
        context = bootstrap(
            secrets=self.secrets,
            keys=keys,
            env=POPO,
            settings=EndpointsSettings(prefix="test"),
            usage=self.usage,
        )
        self.context = context
        self.app, self.resolver = context.app, endpoints_resolver(context)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        resolver: Any = None,
    ) -> tuple[int, dict[str, Any]]:
        headers = {"x-api-key": key or self.key, "content-type": "application/json"}
        text = json.dumps(body) if body is not None else None
        event = rest_event(method, path, body=text, headers=headers)
        response = (resolver or self.resolver).resolve(event, None)
        return response["statusCode"], json.loads(response["body"])

    def register(self, **overrides: Any) -> dict[str, Any]:
        status, body = self.call("POST", "/endpoints", sftp(**overrides))
        assert status == 201, body
        return body

    def types(self, endpoint_id: str) -> list[str]:
        return [e.detail_type() for e in stream_events(self.app.recorder, endpoint_id)]

    def fail_validation(self, endpoint_id: str) -> None:
        version = self.app.get(endpoint_id).version
        assert self.app.record_validation(
            endpoint_id, version, False, reason_code="BASE_PATH_MISSING", message="gone"
        )


def sftp(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "partner sftp",
        "type": "sftp",
        "direction": "BOTH",
        "host": "sftp.example.com",
        "username": "ferry",
        "base_path": "/data/in",
        "host_key": HOST_KEY,
        "password": PASSWORD,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def s3(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "landing",
        "type": "s3",
        "direction": "BOTH",
        "bucket": "customer-landing",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def api() -> Api:
    return Api()


# --- POST /endpoints/{id}/validate ----------------------------------------------------------------
def test_validate_reruns_validation_of_a_failed_endpoint(api: Api) -> None:
    eid = api.register()["endpoint_id"]
    api.fail_validation(eid)
    assert api.call("GET", "/x")[0] in (403, 404)  # sanity: unknown route is not a 5xx
    status, body = api.call("POST", f"/endpoints/{eid}/validate")
    assert status == 202, body
    assert body["status"] == "PENDING_VALIDATION"
    assert api.types(eid)[-1] == "EndpointValidationRequested"
    endpoint = api.app.get(eid)
    assert endpoint.needs_validation
    # the fixed endpoint passes: ACTIVE
    assert api.app.record_validation(eid, endpoint.version, True, checks=["connect"])
    assert api.app.get(eid).status.value == "ACTIVE"


def test_a_verdict_for_the_configuration_before_the_request_is_dropped(api: Api) -> None:
    eid = api.register()["endpoint_id"]
    checked = api.app.get(eid).version  # a validator loaded the endpoint here ...
    api.call("POST", f"/endpoints/{eid}/validate")  # ... then the customer asked again
    assert api.app.record_validation(eid, checked, False, reason_code="X", message="m") is False
    assert api.app.get(eid).status.value == "PENDING_VALIDATION"


def test_validate_of_another_customers_endpoint_is_404(api: Api) -> None:
    eid = api.register()["endpoint_id"]
    status, body = api.call("POST", f"/endpoints/{eid}/validate", key=api.other_key)
    assert status == 404, body
    assert api.types(eid)[-1] == "EndpointRegistered"


# --- enable on VALIDATION_FAILED ----------------------------------------------------------------------
def test_enable_on_a_failed_endpoint_revalidates_instead_of_changing_nothing(api: Api) -> None:
    eid = api.register()["endpoint_id"]
    api.fail_validation(eid)
    before = api.types(eid)
    status, body = api.call("POST", f"/endpoints/{eid}/enable")
    assert status == 200, body
    assert body["status"] == "PENDING_VALIDATION"
    assert api.types(eid) == [*before, "EndpointValidationRequested"]


def test_enable_on_an_active_endpoint_is_a_truthful_no_op(api: Api) -> None:
    eid = api.register()["endpoint_id"]
    assert api.app.record_validation(eid, api.app.get(eid).version, True)
    before = api.types(eid)
    status, body = api.call("POST", f"/endpoints/{eid}/enable")
    assert (status, body["status"]) == (200, "ACTIVE")
    assert api.types(eid) == before


# --- DELETE /endpoints/{id} ------------------------------------------------------------------------
def test_retire_records_endpoint_retired_and_refuses_every_later_command(api: Api) -> None:
    body = api.register()
    eid = body["endpoint_id"]
    arn = api.app.get(eid).secret_arn
    status, body = api.call("DELETE", f"/endpoints/{eid}")
    assert (status, body["status"]) == (200, "RETIRED"), body
    assert api.types(eid)[-1] == "EndpointRetired"
    assert arn in api.secrets.deleted
    for method, path, payload in [
        ("PATCH", f"/endpoints/{eid}", {"port": 2200}),
        ("POST", f"/endpoints/{eid}/disable", None),
        ("POST", f"/endpoints/{eid}/enable", None),
        ("POST", f"/endpoints/{eid}/validate", None),
    ]:
        status, body = api.call(method, path, payload)
        assert status == 409, (method, path, body)
        assert body["error"]["code"] == "endpoint_retired"
    # idempotent, and still nothing new
    assert api.call("DELETE", f"/endpoints/{eid}")[0] == 200
    assert api.types(eid).count("EndpointRetired") == 1
    # a verdict arriving after retirement is dropped
    assert api.app.record_validation(eid, api.app.get(eid).version, True) is False


def test_retire_is_refused_while_jobs_or_routes_use_the_endpoint(api: Api) -> None:
    eid = api.register()["endpoint_id"]
    api.usage.uses[("cust-a", eid)] = ["job 1 (RUNNING)", "enabled route r1"]
    status, body = api.call("DELETE", f"/endpoints/{eid}")
    assert status == 409, body
    assert body["error"]["code"] == "endpoint_in_use"
    assert "job 1" in body["error"]["message"] and "route r1" in body["error"]["message"]
    assert "EndpointRetired" not in api.types(eid)
    api.usage.uses.clear()
    assert api.call("DELETE", f"/endpoints/{eid}")[0] == 200


def test_retire_of_another_customers_endpoint_is_404(api: Api) -> None:
    eid = api.register()["endpoint_id"]
    assert api.call("DELETE", f"/endpoints/{eid}", key=api.other_key)[0] == 404
    assert "EndpointRetired" not in api.types(eid)


# --- names unique per customer ---------------------------------------------------------------------
def test_a_second_endpoint_with_the_same_name_is_409(api: Api) -> None:
    api.register(name="Partner SFTP")
    for name in ("Partner SFTP", "partner sftp", "PARTNER SFTP"):
        status, body = api.call("POST", "/endpoints", sftp(name=name))
        assert status == 409, (name, body)
        assert body["error"]["code"] == "name_taken"
        assert body["error"]["field"] == "name"
    # another customer may use the name
    status, _ = api.call("POST", "/endpoints", sftp(name="Partner SFTP"), key=api.other_key)
    assert status == 201
    # the secret of a refused registration is not left behind (nothing was created for it)
    assert len(api.secrets.names) == 2


def test_rename_onto_a_taken_name_is_409_and_renaming_frees_the_old_name(api: Api) -> None:
    a = api.register(name="a")["endpoint_id"]
    api.register(name="b")
    status, body = api.call("PATCH", f"/endpoints/{a}", {"name": "B"})
    assert (status, body["error"]["code"]) == (409, "name_taken"), body
    status, body = api.call("PATCH", f"/endpoints/{a}", {"name": "c"})
    assert (status, body["name"]) == (200, "c"), body
    assert api.call("POST", "/endpoints", sftp(name="a"))[0] == 201  # "a" is free again
    # a case-only rename keeps the claim
    assert api.call("PATCH", f"/endpoints/{a}", {"name": "C"})[0] == 200
    assert api.call("POST", "/endpoints", sftp(name="c"))[0] == 409


def test_a_retired_endpoints_name_may_be_reused(api: Api) -> None:
    old = api.register(name="reused")["endpoint_id"]
    assert api.call("POST", "/endpoints", sftp(name="reused"))[0] == 409
    assert api.call("DELETE", f"/endpoints/{old}")[0] == 200
    status, body = api.call("POST", "/endpoints", sftp(name="reused"))
    assert status == 201, body
    assert body["endpoint_id"] != old


def test_racing_registrations_with_one_name_give_exactly_one_201(api: Api) -> None:
    barrier = threading.Barrier(8)
    results: list[int] = []
    lock = threading.Lock()

    def create() -> None:
        # one resolver per thread, like one Lambda instance each (a resolver holds its request's
        # context), over the same application and stores: the race is in the name claim
        resolver = endpoints_resolver(api.context)
        barrier.wait()
        status, _ = api.call("POST", "/endpoints", sftp(name="raced"), resolver=resolver)
        with lock:
            results.append(status)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201] + [409] * 7


# --- S3 tenancy at the API ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bucket", ["test-staging", "test-staging-123456789012-us-east-1"], ids=["local", "deployed"]
)
def test_ferrys_own_buckets_are_refused_on_create_and_patch(api: Api, bucket: str) -> None:
    status, body = api.call("POST", "/endpoints", s3(bucket=bucket))
    assert status == 422, body
    assert (body["error"]["field"], body["error"]["code"]) == ("bucket", "bucket_reserved")
    status, body = api.call("POST", "/endpoints", s3())
    assert status == 201
    status, body = api.call("PATCH", f"/endpoints/{body['endpoint_id']}", {"bucket": bucket})
    assert status == 422, body
    assert body["error"]["field"] == "bucket"


def test_s3_endpoints_get_a_stable_generated_external_id(api: Api) -> None:
    role = "arn:aws:iam::111122223333:role/ferry-access"
    status, body = api.call("POST", "/endpoints", s3(role_arn=role))
    assert status == 201, body
    external_id = body["external_id"]
    assert external_id.startswith("ferry-") and len(external_id) == 38
    assert body["role_arn"] == role
    eid = body["endpoint_id"]
    status, body = api.call("PATCH", f"/endpoints/{eid}", {"prefix": "in/", "role_arn": None})
    assert status == 200, body
    assert body["external_id"] == external_id and body.get("role_arn") is None
    other = api.call("POST", "/endpoints", s3(name="second"))[1]
    assert other["external_id"] != external_id  # unique per endpoint, hence per customer


@pytest.mark.parametrize(
    ("method", "body"),
    [("POST", s3(external_id="ferry-mine")), ("PATCH", {"external_id": "ferry-mine"})],
)
def test_external_id_cannot_be_chosen_by_the_customer(
    api: Api, method: str, body: dict[str, Any]
) -> None:
    path = "/endpoints"
    if method == "PATCH":
        path = f"/endpoints/{api.call('POST', '/endpoints', s3())[1]['endpoint_id']}"
    status, answer = api.call(method, path, body)
    assert status == 422, answer
    assert answer["error"]["field"] == "external_id"


@pytest.mark.parametrize(
    "role_arn",
    [
        "arn:aws:iam::123:role/x",
        "arn:aws:s3:::bucket",
        "role/x",
        "arn:aws:iam::111122223333:user/u",
    ],
)
def test_a_bad_role_arn_is_422_naming_it(api: Api, role_arn: str) -> None:
    status, body = api.call("POST", "/endpoints", s3(role_arn=role_arn))
    assert status == 422, body
    assert body["error"]["field"] == "role_arn"


def test_sftp_endpoints_take_no_role_arn(api: Api) -> None:
    status, body = api.call("POST", "/endpoints", sftp(role_arn="arn:aws:iam::111122223333:role/x"))
    assert status == 422, body
    assert body["error"]["field"] == "role_arn"


# --- the read-model fold mirrors the aggregate ----------------------------------------------------
def test_read_model_fold_of_validation_requested_and_retired(api: Api) -> None:
    from services.projections.readmodels import fold_endpoint

    eid = api.register()["endpoint_id"]
    api.fail_validation(eid)
    api.call("POST", f"/endpoints/{eid}/validate")
    item = None
    statuses = []
    for event in stream_events(api.app.recorder, eid):
        item = fold_endpoint(item, event)
        statuses.append(item["status"])
    assert statuses == ["PENDING_VALIDATION", "VALIDATION_FAILED", "PENDING_VALIDATION"]
    assert api.call("DELETE", f"/endpoints/{eid}")[0] == 200
    last = stream_events(api.app.recorder, eid)[-1]
    item = fold_endpoint(item, last)
    assert item["status"] == "RETIRED"
    assert item["status"] == api.app.get(eid).status.value


def test_the_read_model_and_get_carry_role_arn_and_external_id(api: Api) -> None:
    from services.projections.readmodels import fold_endpoint

    role = "arn:aws:iam::111122223333:role/ferry-access"
    body = api.call("POST", "/endpoints", s3(role_arn=role))[1]
    [registered] = stream_events(api.app.recorder, body["endpoint_id"])
    item = fold_endpoint(None, registered)
    assert item["config"]["external_id"] == body["external_id"]
    assert item["config"]["role_arn"] == role
