"""Notifications in two regions (ferry/local/regions.py; docs/multi-region.md §5): a webhook
subscription made through region A's API is delivered once while both regions' notifiers race
for it (the delivery's conditional claim on the shared subscriptions table decides), and after
region A is killed region B delivers, signed with the subscription's secret read from B's
replica (A's Secrets Manager, down since the kill, is never asked)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from ferry.local.regions import CORE_SERVICES, REGION_A, REGION_B, refused_requests
from services.notifications.domain import SIGNATURE_HEADER, verify
from tests.integration.test_two_regions import Api, _fast_env, _start, regions_env

__all__ = ["regions_env"]  # the fixture, used by name

pytestmark = [pytest.mark.timeout(600)]

SERVICES = (*CORE_SERVICES, "notifications", "notifier")


class Receiver:
    """A webhook receiver on 127.0.0.1: every POST (headers, body, time) is kept; 200."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                posts.append({"headers": dict(self.headers), "body": body, "at": time.time()})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def of_job(self, job_id: str) -> list[dict[str, Any]]:
        return [p for p in self.posts if json.loads(p["body"])["detail"].get("job_id") == job_id]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()
    found.server.server_close()


def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.3)
    return found


def _outcomes(regions: Any, event_id: str) -> dict[str, str]:
    """Region -> its notifier's outcome of attempt 1 of ``event_id`` (its log's "delivery")."""
    found: dict[str, str] = {}
    for name in (REGION_A, REGION_B):
        log = regions[name].data_dir / "logs" / "notifier.log"
        for line in log.read_text(errors="replace").splitlines() if log.exists() else ():
            if '"delivery"' not in line or event_id not in line:
                continue
            record = json.loads(line[line.index("{") :])
            if record.get("message") == "delivery" and record.get("key") == event_id:
                found[name] = str(record.get("outcome"))
    return found


def test_a_subscription_is_delivered_once_by_either_region_and_after_a_failover(
    regions_env: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    env = {**_fast_env(), "POWERTOOLS_LOG_LEVEL": "INFO"}  # the notifiers' "delivery" lines
    regions = _start(regions_env / "sim", monkeypatch, extra_env=env, services=SERVICES)
    try:
        a, b = regions[REGION_A], regions[REGION_B]
        assert a.info is not None
        api_a = Api(a.api_url, a.info.api_key)
        api_b = Api(b.api_url, a.info.api_key)  # the API keys table is shared
        sub = api_a.ok(
            "POST",
            "/subscriptions",
            {
                "name": "ops",
                "events": ["JobSucceeded"],
                "target": {"type": "webhook", "url": receiver.url},
            },
        )
        secret = str(sub["secret"])
        s3 = boto3.client("s3")
        bucket = f"{regions.prefix}-data"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="in/a.bin", Body=b"a" * 1000)
        s3.put_object(Bucket=bucket, Key="in/b.bin", Body=b"b" * 1000)
        src = api_a.endpoint(
            {"name": "src", "type": "s3", "bucket": bucket, "prefix": "in/", "direction": "BOTH"}
        )
        dst = api_a.endpoint(
            {"name": "dst", "type": "s3", "bucket": bucket, "prefix": "out/", "direction": "BOTH"}
        )

        def transfer(api: Api, name: str) -> str:
            body = {
                "source": {"endpoint_id": src, "path": name},
                "target": {"endpoint_id": dst, "path": name},
            }
            status, answer = api.transfer(body, key=f"notify-{name}")
            assert status == 202, answer
            job_id = str(answer["job_id"])
            _wait(lambda: api.job(job_id)["status"] == "SUCCEEDED", 90, f"{name} SUCCEEDED")
            return job_id

        # both regions up: both notifiers get JobSucceeded (each region's bus has every event)
        first = transfer(api_a, "a.bin")
        [post] = _wait(lambda: receiver.of_job(first), 60, "the first JobSucceeded webhook")
        event_id = post["headers"]["Ferry-Event-Id"]

        # each region's notifier tried it: one sent, the other lost the claim
        def both() -> dict[str, str] | None:
            found = _outcomes(regions, event_id)
            return found if len(found) == 2 else None

        outcomes = _wait(both, 30, "both regions' notifiers to take the delivery")
        assert sorted(outcomes.values()) == ["delivered", "duplicate"], outcomes
        time.sleep(2)
        assert len(receiver.of_job(first)) == 1, receiver.of_job(first)

        regions.kill(REGION_A)
        second = transfer(api_b, "b.bin")
        [post] = _wait(lambda: receiver.of_job(second), 60, "the JobSucceeded webhook from B")
        time.sleep(3)
        assert len(receiver.of_job(second)) == 1
        assert verify(secret, post["headers"][SIGNATURE_HEADER], post["body"], int(time.time()))
        assert refused_requests(regions.aws_endpoint) == {REGION_A: 0}
        print(
            f"\nJobSucceeded webhooks: {len(receiver.posts)} for 2 jobs (one before the kill, "
            f"delivered by the claim's winner of the two regions; one by {REGION_B} after it);"
            f" the first job's attempt per region: {outcomes}"
        )
    finally:
        regions.stop()
