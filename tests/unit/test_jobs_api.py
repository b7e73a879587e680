"""services/jobs through its HTTP handler (the real Powertools resolver), in-memory adapters."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import pytest

from events.contract import Direction, EndpointStatus, EndpointType, JobStatus
from events.translate import stream_events
from ferry.api import issue_key
from ferry.apigw import rest_event
from services.jobs.application import TransferRequest, check_path
from services.jobs.bootstrap import JobsContext, bootstrap
from services.jobs.handlers import build_resolver
from services.jobs.ports import EndpointInfo
from services.jobs.settings import JobsSettings
from tests.support.fakes.jobs import (
    InMemoryEndpointDirectory,
    InMemoryIdempotencyStore,
    InMemorySourceIdentity,
)
from tests.support.fakes.keys import InMemoryKeyStore


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    service: JobsContext
    directory: InMemoryEndpointDirectory
    clock: Clock
    key: str
    other_key: str
    ids: dict[str, str] = field(default_factory=dict)
    sources: InMemorySourceIdentity = field(default_factory=InMemorySourceIdentity)
    call: Callable[..., tuple[int, dict[str, Any]]] = field(init=False)

    def __post_init__(self) -> None:
        resolver = build_resolver(self.service)

        def call(
            method: str,
            path: str,
            body: Any = None,
            *,
            key: str | None = None,
            headers: dict[str, str] | None = None,
            raw: str | None = None,
        ) -> tuple[int, dict[str, Any]]:
            hdrs = {"x-api-key": key or self.key, **(headers or {})}
            payload = raw if raw is not None else (None if body is None else json.dumps(body))
            response = resolver.resolve(rest_event(method, path, body=payload, headers=hdrs), None)
            return response["statusCode"], json.loads(response["body"])

        self.call = call


def _endpoint(
    customer: str,
    type_: EndpointType,
    direction: Direction = Direction.BOTH,
    status: EndpointStatus = EndpointStatus.ACTIVE,
) -> EndpointInfo:
    return EndpointInfo(
        endpoint_id=str(uuid4()),
        customer_id=customer,
        type=type_,
        direction=direction,
        status=status,
    )


@pytest.fixture
def world() -> World:
    keys = InMemoryKeyStore()
    key, _ = issue_key(keys, "cust-a")
    other_key, _ = issue_key(keys, "cust-b")
    endpoints = {
        "s3": _endpoint("cust-a", EndpointType.S3),
        "s3b": _endpoint("cust-a", EndpointType.S3),
        "sftp": _endpoint("cust-a", EndpointType.SFTP),
        "sftp2": _endpoint("cust-a", EndpointType.SFTP),
        "inbound": _endpoint("cust-a", EndpointType.S3, Direction.INBOUND),
        "outbound": _endpoint("cust-a", EndpointType.S3, Direction.OUTBOUND),
        "disabled": _endpoint("cust-a", EndpointType.S3, status=EndpointStatus.DISABLED),
        "pending": _endpoint("cust-a", EndpointType.S3, status=EndpointStatus.PENDING_VALIDATION),
        "failed": _endpoint("cust-a", EndpointType.S3, status=EndpointStatus.VALIDATION_FAILED),
        "retired": _endpoint("cust-a", EndpointType.S3, status=EndpointStatus.RETIRED),
        "theirs": _endpoint("cust-b", EndpointType.S3),
        "theirs2": _endpoint("cust-b", EndpointType.SFTP),
    }
    directory = InMemoryEndpointDirectory(list(endpoints.values()))
    clock = Clock()
    sources = InMemorySourceIdentity()
    service = bootstrap(
        settings=JobsSettings(jobs_dedupe_window_seconds=600),
        endpoints=directory,
        idempotency=InMemoryIdempotencyStore(clock=clock),
        keys=keys,
        sources=sources,
    )
    w = World(service, directory, clock, key, other_key)
    w.sources = sources
    w.ids = {name: e.endpoint_id for name, e in endpoints.items()}
    return w


def transfer(world: World, src: str = "s3", tgt: str = "sftp", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": {"endpoint_id": world.ids[src], "path": "in/report.csv"},
        "target": {"endpoint_id": world.ids[tgt], "path": "out/report.csv"},
    }
    body.update(overrides)
    return body


# --------------------------------------------------------------------------------------------
# POST /transfers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "tgt", "flow"),
    [
        ("s3", "s3b", "S3_TO_S3"),
        ("s3", "sftp", "S3_TO_SFTP"),
        ("sftp", "s3", "SFTP_TO_S3"),
        ("sftp", "sftp2", "SFTP_TO_SFTP"),
    ],
)
def test_submit_queues_a_job_with_the_flow_of_its_endpoints(
    world: World, src: str, tgt: str, flow: str
) -> None:
    status, body = world.call("POST", "/transfers", transfer(world, src, tgt))
    assert status == 202, body
    assert body["status"] == "QUEUED"
    job = world.service.app.get_job("cust-a", body["job_id"])
    assert job.status == JobStatus.QUEUED
    assert job.spec["flow"] == flow
    assert job.spec["options"] == {
        "overwrite": False,
        "post_action": "none",
        "move_to": None,
        "max_attempts": 5,
        "verify": "digest",
    }
    published = stream_events(world.service.app.recorder, body["job_id"])
    assert [e.detail_type() for e in published] == ["JobRequested", "JobQueued"]
    requested = published[0]
    assert requested.customer_id == "cust-a"
    assert requested.correlation_id == body["job_id"]
    assert requested.actor.startswith("key-")  # type: ignore[attr-defined]


def test_submit_with_all_options(world: World) -> None:
    options = {
        "overwrite": True,
        "post_action": "move",
        "move_to": "archive/",
        "max_attempts": 3,
        "verify": "reread",
    }
    status, body = world.call("POST", "/transfers", transfer(world, options=options))
    assert status == 202, body
    assert world.service.app.get_job("cust-a", body["job_id"]).spec["options"] == options


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["source"].update(path="../etc/passwd"), "source.path"),
        (lambda b: b["source"].update(path="a/../../b"), "source.path"),
        (lambda b: b["target"].update(path="/abs/file"), "target.path"),
        (lambda b: b["target"].update(path=""), "target.path"),
        (lambda b: b["target"].update(path="dir/"), "target.path"),
        (lambda b: b["source"].update(path="a\x00b"), "source.path"),
        (lambda b: b["source"].update(path="a\nb"), "source.path"),
        (lambda b: b["source"].update(path="a//b"), "source.path"),
        (lambda b: b["options"].update(move_to="../x"), "options.move_to"),
        (lambda b: b.update(extra=1), "extra"),
        (lambda b: b["source"].update(colour="red"), "source.colour"),
        (lambda b: b["options"].update(post_action="shred"), "options.post_action"),
        (lambda b: b["options"].update(verify="eyeball"), "options.verify"),
        (lambda b: b["options"].update(max_attempts=0), "options.max_attempts"),
        (lambda b: b["options"].update(max_attempts=21), "options.max_attempts"),
        (lambda b: b["options"].update(overwrite="yes"), "options.overwrite"),
        (lambda b: b.pop("target"), "target"),
        (lambda b: b["source"].pop("endpoint_id"), "source.endpoint_id"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(
    world: World, mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    body = transfer(world, options={"post_action": "move", "move_to": "archive"})
    mutate(body)
    status, answer = world.call("POST", "/transfers", body)
    assert status == 422, answer
    assert answer["error"]["field"] == field


def test_move_without_move_to_is_422(world: World) -> None:
    status, answer = world.call(
        "POST", "/transfers", transfer(world, options={"post_action": "move"})
    )
    assert (status, answer["error"]["field"]) == (422, "options.move_to")


def test_same_source_and_target_is_422(world: World) -> None:
    body = transfer(world, "s3", "s3")
    body["target"]["path"] = body["source"]["path"]
    status, answer = world.call("POST", "/transfers", body)
    assert (status, answer["error"]["code"]) == (422, "same_location")


@pytest.mark.parametrize(
    ("src", "tgt", "status", "field", "code"),
    [
        ("theirs", "sftp", 404, "source.endpoint_id", "endpoint_not_found"),
        ("s3", "theirs2", 404, "target.endpoint_id", "endpoint_not_found"),
        ("disabled", "sftp", 409, "source.endpoint_id", "endpoint_disabled"),
        ("s3", "disabled", 409, "target.endpoint_id", "endpoint_disabled"),
        ("pending", "sftp", 409, "source.endpoint_id", "endpoint_not_validated"),
        ("s3", "failed", 409, "target.endpoint_id", "endpoint_not_validated"),
        ("retired", "sftp", 409, "source.endpoint_id", "endpoint_retired"),
        ("outbound", "sftp", 422, "source.endpoint_id", "direction_mismatch"),
        ("s3", "inbound", 422, "target.endpoint_id", "direction_mismatch"),
    ],
)
def test_endpoint_rejections(
    world: World, src: str, tgt: str, status: int, field: str, code: str
) -> None:
    got, answer = world.call("POST", "/transfers", transfer(world, src, tgt))
    assert (got, answer["error"]["field"], answer["error"]["code"]) == (status, field, code)


def test_unknown_endpoint_is_404(world: World) -> None:
    body = transfer(world)
    body["source"]["endpoint_id"] = str(uuid4())
    status, answer = world.call("POST", "/transfers", body)
    assert (status, answer["error"]["field"]) == (404, "source.endpoint_id")


def test_inbound_source_and_outbound_target_are_fine(world: World) -> None:
    status, _ = world.call("POST", "/transfers", transfer(world, "inbound", "outbound"))
    assert status == 202


def test_not_json_is_400_and_no_key_is_401(world: World) -> None:
    status, answer = world.call("POST", "/transfers", raw="{not json")
    assert status == 400, answer
    resolver = build_resolver(world.service)
    response = resolver.resolve(rest_event("POST", "/transfers", body="{}"), None)
    assert response["statusCode"] == 401


@pytest.mark.parametrize(
    "path", ["a", "dir/file.txt", "deep/er/file name (1).csv", "ünïcødé/файл", ".hidden"]
)
def test_good_paths(path: str) -> None:
    assert check_path(path) == path


# --------------------------------------------------------------------------------------------
# Idempotency
# --------------------------------------------------------------------------------------------


def test_same_key_same_body_is_the_same_job(world: World) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = world.call("POST", "/transfers", transfer(world), headers=headers)
    again = world.call("POST", "/transfers", transfer(world), headers=headers)
    assert first[0] == again[0] == 202
    assert first[1]["job_id"] == again[1]["job_id"]


def test_same_key_equivalent_body_with_defaults_spelt_out_is_the_same_job(world: World) -> None:
    headers = {"idempotency-key": "order-43"}
    first = world.call("POST", "/transfers", transfer(world), headers=headers)
    spelt = transfer(world, options={"overwrite": False, "verify": "digest"})
    again = world.call("POST", "/transfers", spelt, headers=headers)
    assert first[1]["job_id"] == again[1]["job_id"]


def test_same_key_other_body_is_409(world: World) -> None:
    headers = {"Idempotency-Key": "order-44"}
    world.call("POST", "/transfers", transfer(world), headers=headers)
    other = transfer(world)
    other["target"]["path"] = "out/other.csv"
    status, answer = world.call("POST", "/transfers", other, headers=headers)
    assert (status, answer["error"]["code"], answer["error"]["field"]) == (
        409,
        "idempotency_key_reused",
        "Idempotency-Key",
    )


def test_keys_are_scoped_per_customer(world: World) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    mine = world.call("POST", "/transfers", transfer(world), headers=headers)
    body = transfer(world, "theirs", "theirs2")
    theirs = world.call("POST", "/transfers", body, headers=headers, key=world.other_key)
    assert mine[0] == theirs[0] == 202
    assert mine[1]["job_id"] != theirs[1]["job_id"]


def test_bad_idempotency_key_is_422(world: World) -> None:
    status, answer = world.call(
        "POST", "/transfers", transfer(world), headers={"Idempotency-Key": "x" * 300}
    )
    assert (status, answer["error"]["field"]) == (422, "Idempotency-Key")


def test_without_key_a_duplicate_within_the_window_is_the_same_job(world: World) -> None:
    first = world.call("POST", "/transfers", transfer(world))
    world.clock.now += 599
    again = world.call("POST", "/transfers", transfer(world))
    assert first[1]["job_id"] == again[1]["job_id"]


def test_without_key_after_the_window_is_a_new_job(world: World) -> None:
    first = world.call("POST", "/transfers", transfer(world))
    world.clock.now += 601
    again = world.call("POST", "/transfers", transfer(world))
    assert again[0] == 202
    assert first[1]["job_id"] != again[1]["job_id"]


def test_without_key_another_source_version_is_a_new_job(world: World) -> None:
    v1 = transfer(world)
    v1["source"]["version"] = "etag-1"
    v2 = transfer(world)
    v2["source"]["version"] = "etag-2"
    a = world.call("POST", "/transfers", v1)[1]["job_id"]
    b = world.call("POST", "/transfers", v2)[1]["job_id"]
    c = world.call("POST", "/transfers", v1)[1]["job_id"]
    assert a != b
    assert a == c


def test_replayed_request_reports_the_current_status(world: World) -> None:
    headers = {"Idempotency-Key": "k-status"}
    job_id = world.call("POST", "/transfers", transfer(world), headers=headers)[1]["job_id"]
    world.call("POST", f"/jobs/{job_id}/cancel")
    status, answer = world.call("POST", "/transfers", transfer(world), headers=headers)
    assert (status, answer) == (
        202,
        {
            "job_id": job_id,
            "status": "CANCELLED",
            "deduplicated": True,
            "dedupe": "idempotency_key",
        },
    )


# --------------------------------------------------------------------------------------------
# cancel / redrive
# --------------------------------------------------------------------------------------------


def test_cancel_then_cancel_again_is_409(world: World) -> None:
    job_id = world.call("POST", "/transfers", transfer(world))[1]["job_id"]
    status, answer = world.call("POST", f"/jobs/{job_id}/cancel")
    # queued, never leased: cancelled at once
    assert (status, answer) == (
        202,
        {"job_id": job_id, "status": "CANCELLED", "cancel_requested": True},
    )
    status, answer = world.call("POST", f"/jobs/{job_id}/cancel")
    assert (status, answer["error"]["code"]) == (409, "job_conflict")


@pytest.mark.parametrize("verb", ["cancel", "redrive"])
def test_another_customers_or_unknown_job_is_404(world: World, verb: str) -> None:
    job_id = world.call("POST", "/transfers", transfer(world))[1]["job_id"]
    world.call("POST", f"/jobs/{job_id}/cancel")
    for key, jid in ((world.other_key, job_id), (world.key, str(uuid4())), (world.key, "nope")):
        status, answer = world.call("POST", f"/jobs/{jid}/{verb}", key=key)
        assert (status, answer["error"]["code"]) == (404, "job_not_found")
    assert world.service.app.get_job("cust-a", job_id).status == JobStatus.CANCELLED


def test_redrive_of_a_queued_job_is_409(world: World) -> None:
    job_id = world.call("POST", "/transfers", transfer(world))[1]["job_id"]
    status, answer = world.call("POST", f"/jobs/{job_id}/redrive")
    assert status == 409, answer


def test_redrive_of_a_cancelled_job_makes_a_new_queued_job(world: World) -> None:
    job_id = world.call("POST", "/transfers", transfer(world))[1]["job_id"]
    world.call("POST", f"/jobs/{job_id}/cancel")
    status, answer = world.call("POST", f"/jobs/{job_id}/redrive")
    assert status == 202, answer
    new_id = answer["job_id"]
    assert answer == {"job_id": new_id, "redrive_of": job_id, "status": "QUEUED"}
    app = world.service.app
    new = app.get_job("cust-a", new_id)
    old = app.get_job("cust-a", job_id)
    assert new.status == JobStatus.QUEUED
    assert new.redrive_of == job_id
    assert new.spec == old.spec
    assert old.redriven_to == new_id
    assert old.status == JobStatus.CANCELLED
    trail = [e.detail_type() for e in stream_events(app.recorder, job_id)]
    assert trail == [
        "JobRequested",
        "JobQueued",
        "JobCancelRequested",
        "JobCancelled",
        "JobRedriven",
    ]
    # Redriving again answers with the same new job (idempotent).
    assert world.call("POST", f"/jobs/{job_id}/redrive") == (202, answer)


def test_redrive_checks_the_endpoints_again(world: World) -> None:
    job_id = world.call("POST", "/transfers", transfer(world))[1]["job_id"]
    world.call("POST", f"/jobs/{job_id}/cancel")
    source = world.directory.get(world.ids["s3"])
    assert source is not None
    world.directory.put(
        EndpointInfo(
            endpoint_id=source.endpoint_id,
            customer_id=source.customer_id,
            type=source.type,
            direction=source.direction,
            status=EndpointStatus.DISABLED,
        )
    )
    status, answer = world.call("POST", f"/jobs/{job_id}/redrive")
    assert (status, answer["error"]["field"]) == (409, "source.endpoint_id")
    assert world.service.app.get_job("cust-a", job_id).redriven_to is None


# --------------------------------------------------------------------------------------------
# Review fixes
# --------------------------------------------------------------------------------------------


def test_review_without_key_other_options_is_a_new_job_same_request_dedupes(world: World) -> None:
    plain = transfer(world, "s3", "s3b")
    other = transfer(world, "s3", "s3b", options={"overwrite": True, "verify": "size"})
    first = world.call("POST", "/transfers", plain)[1]["job_id"]
    second = world.call("POST", "/transfers", other)[1]["job_id"]
    assert first != second
    spec = world.service.app.get_job("cust-a", second).spec
    assert spec["options"]["overwrite"] is True and spec["options"]["verify"] == "size"
    assert world.call("POST", "/transfers", plain)[1]["job_id"] == first
    assert world.call("POST", "/transfers", other)[1]["job_id"] == second


def test_review_replay_after_endpoint_disabled_returns_the_original_job(world: World) -> None:
    from dataclasses import replace

    headers = {"Idempotency-Key": "k-replay"}
    status, first = world.call("POST", "/transfers", transfer(world), headers=headers)
    assert status == 202, first
    source = world.directory.get(world.ids["s3"])
    assert source is not None
    world.directory.put(replace(source, status=EndpointStatus.DISABLED))
    status, again = world.call("POST", "/transfers", transfer(world), headers=headers)
    assert (status, again["job_id"]) == (202, first["job_id"])
    # a new request (another key) still checks the endpoint
    status, answer = world.call(
        "POST", "/transfers", transfer(world), headers={"Idempotency-Key": "k-new"}
    )
    assert (status, answer["error"]["code"]) == (409, "endpoint_disabled")
    # ...and its retry once the endpoint is back creates the job
    world.directory.put(source)
    status, answer = world.call(
        "POST", "/transfers", transfer(world), headers={"Idempotency-Key": "k-new"}
    )
    assert status == 202, answer
    assert world.service.app.get_job("cust-a", answer["job_id"]).status == JobStatus.QUEUED


@pytest.mark.parametrize("raw", ["null", "[]", "1", '"s"', ""])
def test_review_a_non_object_body_is_422_on_body(world: World, raw: str) -> None:
    status, answer = world.call("POST", "/transfers", raw=raw)
    assert status in (400, 422), answer
    assert answer["error"].get("field") == "body", answer


@pytest.mark.parametrize("value", [True, 2.0, "3"])
def test_review_max_attempts_is_a_strict_int(world: World, value: Any) -> None:
    status, answer = world.call(
        "POST", "/transfers", transfer(world, options={"max_attempts": value})
    )
    assert (status, answer["error"].get("field")) == (422, "options.max_attempts"), answer


def test_review_non_canonical_job_ids_are_404(world: World) -> None:
    job_id = world.call("POST", "/transfers", transfer(world))[1]["job_id"]
    for variant in (job_id.upper(), "{" + job_id + "}", job_id.replace("-", ""), "x" * 3000):
        status, answer = world.call("POST", f"/jobs/{variant}/cancel")
        assert (status, answer["error"]["code"]) == (404, "job_not_found")
    assert world.service.app.get_job("cust-a", job_id).status == JobStatus.QUEUED


# --------------------------------------------------------------------------------------------
# Dedupe is explicit (issue 9)
# --------------------------------------------------------------------------------------------


def test_same_request_twice_the_second_says_deduplicated_and_names_the_job(world: World) -> None:
    world.sources.set(world.ids["s3"], "in/report.csv", 'etag="abc"')
    status, first = world.call("POST", "/transfers", transfer(world))
    assert status == 202
    assert (first["deduplicated"], first["dedupe"]) == (False, "content")
    status, second = world.call("POST", "/transfers", transfer(world))
    assert status == 202
    assert second == {**first, "deduplicated": True}


def test_source_content_changed_in_between_is_a_new_job(world: World) -> None:
    world.sources.set(world.ids["s3"], "in/report.csv", 'etag="v1"')
    first = world.call("POST", "/transfers", transfer(world))[1]
    world.sources.set(world.ids["s3"], "in/report.csv", 'etag="v2"')  # rewritten
    second = world.call("POST", "/transfers", transfer(world))[1]
    assert second["job_id"] != first["job_id"] and second["deduplicated"] is False
    world.sources.set(world.ids["s3"], "in/report.csv", 'etag="v1";version=7')
    third = world.call("POST", "/transfers", transfer(world))[1]
    assert third["job_id"] not in (first["job_id"], second["job_id"])


def test_sftp_source_size_and_mtime_are_the_identity(world: World) -> None:
    body = transfer(world, src="sftp", tgt="s3")
    world.sources.set(world.ids["sftp"], "in/report.csv", "size=10;mtime=1700000000")
    first = world.call("POST", "/transfers", body)[1]
    again = world.call("POST", "/transfers", body)[1]
    world.sources.set(world.ids["sftp"], "in/report.csv", "size=10;mtime=1700000001")
    touched = world.call("POST", "/transfers", body)[1]
    assert again["job_id"] == first["job_id"] and again["deduplicated"] is True
    assert touched["job_id"] != first["job_id"]


def test_dedupe_false_is_a_new_job_each_time_and_looks_nothing_up(world: World) -> None:
    world.sources.set(world.ids["s3"], "in/report.csv", 'etag="abc"')
    lookups = world.sources.lookups
    answers = [world.call("POST", "/transfers", transfer(world, dedupe=False)) for _ in range(3)]
    assert [status for status, _ in answers] == [202, 202, 202]
    assert len({a["job_id"] for _, a in answers}) == 3
    assert all((a["deduplicated"], a["dedupe"]) == (False, "off") for _, a in answers)
    assert world.sources.lookups == lookups
    # and a deduplicated submit afterwards is not matched against those
    _, plain = world.call("POST", "/transfers", transfer(world))
    assert plain["deduplicated"] is False


def test_dedupe_must_be_a_boolean(world: World) -> None:
    status, answer = world.call("POST", "/transfers", transfer(world, dedupe="no"))
    assert status == 422 and answer["error"]["field"] == "dedupe"


def test_source_lookup_failing_dedupes_by_the_request_alone_and_says_so(world: World) -> None:
    # nothing set: the fake cannot look the source up (missing / unreachable)
    first = world.call("POST", "/transfers", transfer(world))[1]
    second = world.call("POST", "/transfers", transfer(world))[1]
    assert (first["dedupe"], first["deduplicated"]) == ("request", False)
    assert (second["dedupe"], second["deduplicated"]) == ("request", True)
    assert second["job_id"] == first["job_id"]


def test_idempotency_key_replay_says_deduplicated_and_looks_nothing_up(world: World) -> None:
    headers = {"Idempotency-Key": "k-dd"}
    lookups = world.sources.lookups
    first = world.call("POST", "/transfers", transfer(world), headers=headers)[1]
    again = world.call("POST", "/transfers", transfer(world), headers=headers)[1]
    assert (first["deduplicated"], again["deduplicated"]) == (False, True)
    assert again["job_id"] == first["job_id"] and again["dedupe"] == "idempotency_key"
    assert world.sources.lookups == lookups


def test_the_dedupe_fields_are_documented_in_openapi(world: World) -> None:
    from services.jobs.handlers import TransferAccepted

    schema = TransferAccepted.model_json_schema()
    assert "600 s" in schema["properties"]["deduplicated"]["description"]
    assert "ETag" in TransferRequest.model_json_schema()["properties"]["dedupe"]["description"]
