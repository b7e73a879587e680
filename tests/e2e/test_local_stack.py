"""As a new user would: ``ferry up``, then the CLI registers endpoints and submits transfers.

One stack per module (``ferry up`` in a subprocess on free ports, temp data dir); the shutdown
tests start their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Stack, alive, http, processes_of, start_stack, wait_until
from tests.support.sshd import SshdServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def s3_endpoint(stack: Stack, name: str, bucket: str) -> dict[str, Any]:
    stack.client("s3").create_bucket(Bucket=bucket)
    created: dict[str, Any] = stack.cli_json(
        "endpoints", "add", "--name", name, "--type", "s3", "--bucket", bucket,
        "--prefix", "data/", "--direction", "BOTH", "--wait", "60",
    )  # fmt: skip
    return created


def sftp_endpoint(stack: Stack, sshd: SshdServer, base: Path, name: str, *auth: str) -> Any:
    return stack.cli_json(
        "endpoints", "add", "--name", name, "--type", "sftp", "--host", sshd.host,
        "--port", str(sshd.port), "--username", sshd.username, "--base-path", str(base),
        "--host-key", sshd.host_key_line, "--direction", "BOTH", "--wait", "60", *auth,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------


def test_up_prints_the_three_lines_and_writes_config(stack: Stack) -> None:
    assert stack.api_url.startswith("http://127.0.0.1:")
    assert stack.api_key.startswith("fk_")
    assert stack.aws_endpoint.startswith("http://127.0.0.1:")
    config_path = stack.data_dir / "config.json"
    config = json.loads(config_path.read_text())
    assert config["api_url"] == stack.api_url
    assert config["api_key"] == stack.api_key
    assert config["aws_endpoint"] == stack.aws_endpoint
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    keys = json.loads((stack.data_dir / "keys.json").read_text())["keys"]
    assert [k["key_hash"] for k in keys] == [hashlib.sha256(stack.api_key.encode()).hexdigest()]
    assert stack.api_key not in (stack.data_dir / "keys.json").read_text()


def test_api_gateway_stand_in(stack: Stack) -> None:
    # 401 without a key, routing to the right handler, 404/405 envelopes, 413 before reading.
    status, body = http(stack, "GET", "/jobs", key="fk_wrong")
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert http(stack, "GET", "/nope")[0] == 404
    assert http(stack, "DELETE", "/jobs")[0] == 405
    status, body = http(stack, "POST", "/transfers", {"pad": "x" * (300 * 1024)})
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    status, body = http(stack, "GET", "/jobs/00000000-0000-0000-0000-000000000000")
    assert status == 404, body
    with urllib.request.urlopen(stack.api_url + "/openapi.json", timeout=30) as resp:
        doc = json.loads(resp.read())
    for path in ("/endpoints", "/transfers", "/jobs/{job_id}", "/jobs/{job_id}/events"):
        assert path in doc["paths"], sorted(doc["paths"])
    assert doc["components"]["securitySchemes"]["ApiKey"]["name"] == "x-api-key"
    with urllib.request.urlopen(stack.api_url + "/swagger", timeout=30) as resp:
        assert b"/openapi.json" in resp.read()


def test_cli_errors_name_the_field_and_exit_non_zero(stack: Stack) -> None:
    bad = stack.cli("endpoints", "add", "--name", "x", "--type", "s3", "--bucket", "B!",
        "--direction", "BOTH", check=False)  # fmt: skip
    assert bad.returncode != 0
    assert "bucket" in bad.stderr
    missing = stack.cli("status", "00000000-0000-0000-0000-000000000000", check=False)
    assert missing.returncode != 0 and "404" in missing.stderr


def test_register_s3_and_sftp_endpoints_and_transfer(
    stack: Stack, sshd: SshdServer, sftp_dir: Path
) -> None:
    s3 = s3_endpoint(stack, "e2e-s3", "e2e-bucket")
    assert s3["status"] == "ACTIVE", s3
    sftp = sftp_endpoint(
        stack, sshd, sftp_dir, "e2e-sftp", "--private-key-file", str(sshd.private_key_path)
    )
    assert sftp["status"] == "ACTIVE", sftp
    listed = stack.cli_json("endpoints", "list")
    ids = {e["endpoint_id"] for e in listed["endpoints"]}
    assert {s3["endpoint_id"], sftp["endpoint_id"]} <= ids

    payload = os.urandom(3 * 1024 * 1024 + 17)
    stack.client("s3").put_object(Bucket="e2e-bucket", Key="data/in/report.bin", Body=payload)
    job = stack.cli_json(
        "transfer",
        "--from", f"{s3['endpoint_id']}:in/report.bin",
        "--to", f"{sftp['endpoint_id']}:out/report.bin",
    )  # fmt: skip
    assert job["status"] == "QUEUED"

    watched = stack.cli(
        "status", job["job_id"], "--watch", "--json", "--timeout", "120", check=False
    )
    states = [json.loads(line) for line in watched.stdout.splitlines() if line.strip()]
    assert states, watched.stderr
    final = states[-1]
    assert final["status"] == "SUCCEEDED", final
    assert watched.returncode == 0
    assert final["bytes_committed"] == final["bytes_total"] == len(payload)
    written = sftp_dir / "out" / "report.bin"
    assert hashlib.sha256(written.read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()

    trail = stack.cli_json("events", job["job_id"])["events"]
    kinds = [e["detail-type"] for e in trail]
    assert kinds[:2] == ["JobRequested", "JobQueued"] and "JobSucceeded" in kinds
    jobs = stack.cli_json("jobs", "--status", "SUCCEEDED")["jobs"]
    assert job["job_id"] in {j["job_id"] for j in jobs}
    human = stack.cli("jobs")
    assert job["job_id"][:8] in human.stdout  # tables show 8-character ids

    # `ferry projections rebuild` ends with the same read model.
    before = stack.cli_json("status", job["job_id"])
    rebuilt = stack.cli_json("projections", "rebuild")
    assert rebuilt["rebuilt"] is True
    assert stack.cli_json("status", job["job_id"]) == before


def test_a_killed_service_is_restarted(stack: Stack) -> None:
    before = stack.pids()
    victim = before["projections"]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not alive(victim), 10, what="the victim to die")
    new = wait_until(
        lambda: (p := stack.pids().get("projections")) and p != victim and alive(p) and p,
        20,
        what="projections restarted",
    )
    assert new != victim
    # Still working: a new endpoint reaches the read model through the restarted consumer.
    s3 = s3_endpoint(stack, "after-restart", "after-restart-bucket")
    assert s3["status"] == "ACTIVE"


def _secret_needles(sshd: SshdServer) -> dict[str, str]:
    needles = {"password": sshd.password, "passphrase": sshd.key_passphrase}
    for label, text in (
        ("private key", sshd.private_key_text),
        ("encrypted private key", sshd.encrypted_private_key_text),
    ):
        body = [line for line in text.splitlines() if line and not line.startswith("-----")]
        needles[f"{label} line 2"] = body[1]  # any body line is unique to the key
        needles[f"{label} last line"] = body[-1]
    return needles


def _scan(haystack: str, needles: dict[str, str]) -> list[str]:
    return [label for label, value in needles.items() if value in haystack]


def test_no_secret_in_events_read_models_responses_or_logs(
    stack: Stack, sshd: SshdServer, sftp_dir: Path
) -> None:
    needles = _secret_needles(sshd)
    os.environ["E2E_SFTP_PASSWORD"] = sshd.password
    os.environ["E2E_SFTP_PASSPHRASE"] = sshd.key_passphrase
    responses: list[str] = []
    try:
        by_password = stack.cli("endpoints", "add", "--json", "--name", "pw", "--type", "sftp",
            "--host", sshd.host, "--port", str(sshd.port), "--username", sshd.username,
            "--base-path", str(sftp_dir), "--host-key", sshd.host_key_line,
            "--password-env", "E2E_SFTP_PASSWORD", "--direction", "BOTH", "--wait", "60")  # fmt: skip
        by_key = stack.cli("endpoints", "add", "--json", "--name", "enc-key", "--type", "sftp",
            "--host", sshd.host, "--port", str(sshd.port), "--username", sshd.username,
            "--base-path", str(sftp_dir), "--host-key", sshd.host_key_line,
            "--private-key-file", str(sshd.encrypted_private_key_path),
            "--passphrase-env", "E2E_SFTP_PASSPHRASE", "--direction", "BOTH", "--wait", "60")  # fmt: skip
    finally:
        del os.environ["E2E_SFTP_PASSWORD"], os.environ["E2E_SFTP_PASSPHRASE"]
    responses += [by_password.stdout, by_password.stderr, by_key.stdout, by_key.stderr]
    pw, enc = json.loads(by_password.stdout), json.loads(by_key.stdout)
    assert pw["status"] == "ACTIVE" and enc["status"] == "ACTIVE", (pw, enc)

    # Positive control: the secrets ARE where they belong (so the scan can find one).
    secrets = stack.client("secretsmanager")
    arns = [s["ARN"] for s in secrets.list_secrets()["SecretList"]]
    values = "".join(secrets.get_secret_value(SecretId=a)["SecretString"] for a in arns)
    assert {"password", "passphrase", "encrypted private key line 2"} <= set(_scan(values, needles))
    assert pw.get("secret_arn") in arns

    # Every read route, raw; and an update of the credentials.
    needles["patched password"] = "patched-" + os.urandom(8).hex()
    for path in ("/endpoints", "/jobs", "/openapi.json"):
        responses.append(json.dumps(http(stack, "GET", path)))
    for ep in (pw, enc):
        for suffix in ("", "/events"):
            responses.append(
                json.dumps(http(stack, "GET", f"/endpoints/{ep['endpoint_id']}{suffix}"))
            )
        patched = http(
            stack,
            "PATCH",
            f"/endpoints/{ep['endpoint_id']}",
            {"password": needles["patched password"]},
        )
        responses.append(json.dumps(patched))
        if patched[0] == 200:  # let the update reach the event store, read model and logs
            wait_until(
                lambda ep=ep: (
                    "EndpointUpdated"
                    in json.dumps(http(stack, "GET", f"/endpoints/{ep['endpoint_id']}/events"))
                ),
                30,
                what="EndpointUpdated in the audit trail",
            )
    responses.append(stack.cli("endpoints", "list").stdout)
    responses.append(stack.cli("endpoints", "show", pw["endpoint_id"]).stdout)

    ddb = stack.client("dynamodb")
    tables = ddb.list_tables()["TableNames"]
    stored: list[str] = []
    for table in tables:
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                stored.append(repr(item))
                state = item.get("state", {}).get("B")
                if state is not None:
                    stored.append(bytes(state).decode(errors="replace"))
    assert any("EndpointRegistered" in s for s in stored)  # the scan saw the event store

    logs = stack.log_text() + "".join(stack.output)
    assert _scan("\n".join(responses), needles) == [], "secret in an API response"
    assert _scan("\n".join(stored), needles) == [], "secret in the event store / read models"
    assert _scan(logs, needles) == [], "secret in a log line"


# --------------------------------------------------------------------------------------------


def test_ctrl_c_leaves_no_process_behind(tmp_path: Path) -> None:
    # (SIGTERM is checked the same way when the module's stack stops.)
    running = start_stack(tmp_path / "data")
    try:
        wait_until(lambda: len(running.pids()) >= 6, 60, what="every service started")
        recorded = set(running.pids().values())
        procs = set(processes_of(running.data_dir))
        assert recorded <= procs
    finally:
        started = time.monotonic()
        code = running.stop(signal.SIGINT)
    assert code == 0, "".join(running.output[-40:])
    assert time.monotonic() - started < 30  # two phases of at most 10 s each, plus slack
    assert [p for p in recorded if alive(p)] == []
    assert processes_of(running.data_dir) == []
    assert not (running.data_dir / "pids.json").exists()


def test_keys_create_gives_another_customer_an_isolated_view(stack: Stack) -> None:
    mine = s3_endpoint(stack, "isolated", "isolated-bucket")
    created = stack.cli_json("keys", "create", "acme")
    assert created["customer_id"] == "acme" and created["api_key"].startswith("fk_")
    keys = (stack.data_dir / "keys.json").read_text()
    assert created["api_key"] not in keys
    assert hashlib.sha256(created["api_key"].encode()).hexdigest() in keys
    other = created["api_key"]
    status, body = http(stack, "GET", "/endpoints", key=other)
    assert status == 200 and body["endpoints"] == []
    status, body = http(stack, "GET", f"/endpoints/{mine['endpoint_id']}", key=other)
    assert status == 404, body


def test_disable_enable_failure_cancel_and_redrive_through_the_cli(stack: Stack) -> None:
    src = s3_endpoint(stack, "lifecycle-src", "lifecycle-src")
    dst = s3_endpoint(stack, "lifecycle-dst", "lifecycle-dst")
    s, d = src["endpoint_id"], dst["endpoint_id"]

    stack.cli("endpoints", "disable", s)
    wait_until(
        lambda: stack.cli_json("endpoints", "show", s)["status"] == "DISABLED", 20, what="DISABLED"
    )
    refused = stack.cli("transfer", "--from", f"{s}:a.bin", "--to", f"{d}:a.bin", check=False)
    assert refused.returncode != 0 and "409" in refused.stderr, refused.stderr
    stack.cli("endpoints", "enable", s)
    wait_until(
        lambda: stack.cli_json("endpoints", "show", s)["status"] == "ACTIVE", 30, what="ACTIVE"
    )

    # A missing source fails permanently: `status --watch` exits non-zero with the error code.
    job = stack.cli_json("transfer", "--from", f"{s}:missing.bin", "--to", f"{d}:out.bin")
    watched = stack.cli(
        "status", job["job_id"], "--watch", "--json", "--timeout", "60", check=False
    )
    final = json.loads(watched.stdout.splitlines()[-1])
    assert final["status"] == "FAILED" and final["error_code"], final
    assert watched.returncode == 1
    human = stack.cli("status", job["job_id"], check=False)
    assert human.returncode == 1 and final["error_code"] in human.stdout

    cancel = stack.cli("cancel", job["job_id"], check=False)  # already final
    assert cancel.returncode != 0 and "409" in cancel.stderr, cancel.stderr
    redriven = stack.cli_json("redrive", job["job_id"])
    assert redriven["job_id"] != job["job_id"]
    trail = stack.cli_json("events", job["job_id"])["events"]
    assert "JobFailed" in [e["detail-type"] for e in trail]
