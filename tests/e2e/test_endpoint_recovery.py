"""As a user would, on ``ferry up``: S3 tenancy (issue 8) and the endpoint recovery paths
(issue 9) through the CLI and the HTTP API — the validator consumes EndpointValidationRequested
through the local EventBridge stand-in like any other validation trigger.

- demo (the operator customer) may use an untagged same-account bucket; another customer
  (``ferry keys create acme``) gets VALIDATION_FAILED ``ACCESS_DENIED`` until the bucket is tagged
  ``ferry:customer=acme``, then ``POST /endpoints/{id}/validate`` makes it ACTIVE;
- enable on a VALIDATION_FAILED endpoint re-runs validation (never a silent no-op);
- names are unique per customer; retire frees the name; a retired endpoint takes no transfer;
- Ferry's staging bucket is refused (422 ``bucket``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.harness import Stack, http, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def settled(stack: Stack, endpoint_id: str, key: str, after: int = 0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status, body = http(stack, "GET", f"/endpoints/{endpoint_id}", key=key)
        if status != 200 or int(body.get("version") or 0) <= after:
            return None
        return body if body["status"] != "PENDING_VALIDATION" else None

    found: dict[str, Any] = wait_until(done, 60, what=f"a verdict on {endpoint_id}")
    return found


def test_another_customer_needs_a_tag_and_revalidates_once_granted(stack: Stack) -> None:
    s3 = stack.client("s3")
    s3.create_bucket(Bucket="acme-landing")
    acme = stack.cli_json("keys", "create", "acme")["api_key"]
    status, created = http(
        stack,
        "POST",
        "/endpoints",
        {"name": "landing", "type": "s3", "direction": "BOTH", "bucket": "acme-landing"},
        key=acme,
    )
    assert status == 201, created
    assert created["external_id"].startswith("ferry-")
    eid = created["endpoint_id"]
    failed = settled(stack, eid, acme)
    assert failed["status"] == "VALIDATION_FAILED", failed
    assert failed["status_reason"].startswith("ACCESS_DENIED"), failed
    assert "ferry:customer=acme" in failed["status_reason"]

    # enable on a failed endpoint re-runs validation: a new verdict, not a silent no-op
    status, enabled = http(stack, "POST", f"/endpoints/{eid}/enable", key=acme)
    assert (status, enabled["status"]) == (200, "PENDING_VALIDATION"), enabled
    again = settled(stack, eid, acme, after=enabled["version"] - 1)
    assert again["status"] == "VALIDATION_FAILED", again

    s3.put_bucket_tagging(
        Bucket="acme-landing",
        Tagging={"TagSet": [{"Key": "ferry:customer", "Value": "acme"}]},
    )
    status, requested = http(stack, "POST", f"/endpoints/{eid}/validate", key=acme)
    assert (status, requested["status"]) == (202, "PENDING_VALIDATION"), requested
    active = settled(stack, eid, acme, after=requested["version"] - 1)
    assert active["status"] == "ACTIVE", active
    # the demo (operator) customer may not use a bucket tagged for acme
    refused = stack.cli(
        "endpoints", "add", "--name", "acmes", "--type", "s3", "--bucket", "acme-landing",
        "--direction", "BOTH", "--wait", "60", check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "ACCESS_DENIED" in refused.stdout + refused.stderr


def test_names_retire_and_staging_through_the_cli(stack: Stack) -> None:
    stack.client("s3").create_bucket(Bucket="demo-recovery")
    add = ("endpoints", "add", "--type", "s3", "--bucket", "demo-recovery", "--direction", "BOTH")
    first = stack.cli_json(*add, "--name", "recovery", "--wait", "60")
    assert first["status"] == "ACTIVE", first
    taken = stack.cli(*add, "--name", "Recovery", check=False)
    assert taken.returncode != 0 and "409" in taken.stderr, taken.stderr

    retired = stack.cli_json("endpoints", "retire", first["endpoint_id"])
    assert retired["status"] == "RETIRED"
    wait_until(
        lambda: stack.cli_json("endpoints", "show", first["endpoint_id"])["status"] == "RETIRED",
        20,
        what="RETIRED in the read model",
    )
    refused = stack.cli(
        "transfer", "--from", f"{first['endpoint_id']}:a.bin", "--to",
        f"{first['endpoint_id']}:b.bin", check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "409" in refused.stderr, refused.stderr
    second = stack.cli_json(*add, "--name", "recovery", "--wait", "60")  # the name is free again
    assert second["endpoint_id"] != first["endpoint_id"] and second["status"] == "ACTIVE"

    staging = next(
        b["Name"]
        for b in stack.client("s3").list_buckets()["Buckets"]
        if b["Name"].endswith("-staging")
    )
    status, body = http(
        stack, "POST", "/endpoints",
        {"name": "ferrys-own", "type": "s3", "direction": "BOTH", "bucket": staging},
    )  # fmt: skip
    assert status == 422 and body["error"]["field"] == "bucket", body
