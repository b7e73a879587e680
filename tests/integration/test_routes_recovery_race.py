"""Recovery under a real race (issue 9 case 5): failed route files recovered both ways — a
POST /jobs/{id}/redrive of the failed job and a POST /routes/{id}/files/retry of the file — and
then two scanners settling at the same instant (threads, DynamoDB event store and scan state,
S3 source on moto server): every file is delivered and its source moved exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import boto3
import pytest

from services.routes.adapters import EndpointSourceOpener
from services.routes.application import RoutesApplication
from services.routes.ports import EndpointInfo, SourceOpener, SourceSession
from services.routes.scanner import Scanner
from tests.integration.routes_harness import RoutesStack
from tests.support.fakes.routes import FakeJobs

FILES = 6


class CountingOpener(SourceOpener):
    """The real S3 source, counting the post-action moves it performs (a spy, not a fake)."""

    def __init__(self, real: SourceOpener) -> None:
        self.real = real
        self.moves: Counter[str] = Counter()
        self.lock = threading.Lock()

    def open(self, endpoint: EndpointInfo) -> SourceSession:
        session = self.real.open(endpoint)
        opener = self

        class Counted(SourceSession):
            def iter_files(self, directory: str, recursive: bool) -> Any:
                return session.iter_files(directory, recursive)

            def exists(self, path: str) -> bool:
                return session.exists(path)

            def remove(self, path: str) -> None:
                session.remove(path)

            def move(self, path: str, to: str, *, marker: str) -> None:
                with opener.lock:
                    opener.moves[path] += 1
                session.move(path, to, marker=marker)

            def close(self) -> None:
                session.close()

        return Counted()


@pytest.fixture
def setup(aws_env: dict[str, str]) -> dict[str, Any]:
    stack = RoutesStack()
    jobs = FakeJobs()  # job outcomes are set by the test; the ledger and S3 are real
    app = stack.use_jobs(jobs)
    s3 = boto3.client("s3")
    inbox, lake = stack.buckets("inbox", "lake")
    source = stack.put_endpoint("s3", bucket=inbox, prefix="")
    target = stack.put_endpoint("s3", bucket=lake, prefix="")
    route_id = stack.create_route(
        {
            "name": "recover",
            "source": {"endpoint_id": source, "path": "in"},
            "targets": [{"endpoint_id": target, "path_template": "got/{filename}"}],
            "trigger": {"type": "schedule", "every": "1m"},
            "stable": {"checks": 1},
            "post_action": "move",
            "move_to": "done",
        }
    )
    opener = CountingOpener(EndpointSourceOpener(stack.names.endpoints_table, s3_client=s3))

    def scanner() -> Scanner:
        return stack.scanner(opener, jobs)

    return {
        "stack": stack,
        "app": app,
        "jobs": jobs,
        "s3": s3,
        "inbox": inbox,
        "route_id": route_id,
        "opener": opener,
        "scanners": [scanner(), scanner()],
    }


def test_recovered_files_are_moved_once_while_two_scanners_settle(setup: dict[str, Any]) -> None:
    app: RoutesApplication = setup["app"]
    jobs: FakeJobs = setup["jobs"]
    s3, inbox, route_id = setup["s3"], setup["inbox"], setup["route_id"]
    first, second = setup["scanners"]
    for i in range(FILES):
        s3.put_object(Bucket=inbox, Key=f"in/f{i}.csv", Body=f"row {i}".encode())
    now = time.time()
    assert first.tick(now + 60).dispatched == FILES
    for job_id in list(jobs.requests):
        jobs.finish(job_id, "FAILED", "TARGET_EXISTS")
    first.tick(now + 61)  # not due: settles only → FileDeliveryFailed, watched
    paths = [f"in/f{i}.csv" for i in range(FILES)]
    for path in paths:
        assert app.file_events(route_id, path)[-1].detail_type() == "FileDeliveryFailed"

    new_jobs = []
    for i, path in enumerate(paths):
        ledger = app.ledger(route_id, path)
        assert ledger is not None
        [entry] = ledger.dispatched.values()
        [failed] = entry["job_ids"]
        if i % 2:  # POST /jobs/{id}/redrive of the failed job, as an operator would
            new_jobs.append(jobs.redrive(failed))
        else:  # POST /routes/{id}/files/retry — and a redrive of the same job on top of it
            [retried] = app.retry_file(app_customer(setup), "ops", route_id, path).job_ids
            assert jobs.redrive(failed) == retried
            new_jobs.append(retried)
    for job_id in new_jobs:
        jobs.finish(job_id, "SUCCEEDED")

    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def settle(scanner: Scanner) -> None:
        barrier.wait()
        try:
            scanner.tick(now + 62)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=settle, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors

    opener: CountingOpener = setup["opener"]
    assert opener.moves == Counter({path: 1 for path in paths})
    for path in paths:
        events = [e.detail_type() for e in app.file_events(route_id, path)]
        assert events.count("FileDelivered") == 1, (path, events)
        assert events.count("FilePostActionCompleted") == 1, (path, events)
    listed = s3.list_objects_v2(Bucket=inbox)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(f"done/f{i}.csv" for i in range(FILES))
    # nothing is left to watch: later ticks do nothing
    assert first.tick(now + 63).settled == 0 and second.tick(now + 64).settled == 0


def app_customer(setup: dict[str, Any]) -> str:
    stack: RoutesStack = setup["stack"]
    return stack.customer
