"""The local stack, a real OpenSSH sshd and a driver's handles on both, for bench/chaos.py and
bench/load_push.py.

``LocalRun`` starts ``ferry.local.stack.LocalStack`` in this process (moto server and every Ferry
service as its own supervised process, exactly what ``ferry up`` runs) and
``tests.support.sshd.SshdServer`` with its SFTP operation log on. The driver talks to Ferry only
through the public HTTP API (``api()``), and to "the customer's" buckets and SFTP directories
with its own AWS access key (``DRIVER_KEY``), so the moto server's call counter
(``events/_moto_calls.py``) keeps the driver's calls apart from Ferry's (``FERRY_KEY``).

It sets, for the processes it starts: ``FERRY_EGRESS_ALLOW=127.0.0.0/8`` (the test sshd is on
loopback), the executor settings given, and ``FERRY_MOTO_COUNT_CALLS`` when counting. The local
supervisor restarts a dead service after ``0.5 * 2**n`` s (n = restarts in a row, up to 30 s);
a chaos run kills the executor every few seconds on purpose, so the backoff cap is lowered to
``restart_cap`` seconds while the run lasts (ECS would start a replacement task in tens of seconds;
the cap only shortens the run).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3

from events._moto_calls import CALLS_PATH
from ferry.local import supervisor as local_supervisor
from ferry.local.stack import DEMO_CUSTOMER, REGION, LocalStack
from tests.support.sshd import SshdServer

DRIVER_KEY = "bench"  # the driver's own AWS access key id (counted apart)
FERRY_KEY = "testing"  # what every Ferry process of the local stack signs with
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
CUSTOMER_TAG = "ferry:customer"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalRun:
    def __init__(
        self,
        data_dir: Path,
        *,
        executor_env: dict[str, str] | None = None,
        count_calls: bool = False,
        restart_cap: float = 2.0,
        log: Any = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.executor_env = executor_env or {}
        self.count_calls = count_calls
        self.restart_cap = restart_cap
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._saved_env: dict[str, str | None] = {}
        self._saved_cap = local_supervisor.MAX_BACKOFF_SECONDS
        self.stack: LocalStack | None = None
        self.sshd: SshdServer | None = None
        self.api_key = ""

    # ------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> LocalRun:
        env = {"FERRY_EGRESS_ALLOW": "127.0.0.0/8", **self.executor_env}
        if self.count_calls:
            env["FERRY_MOTO_COUNT_CALLS"] = "1"
        for key, value in env.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        local_supervisor.MAX_BACKOFF_SECONDS = self.restart_cap
        try:
            self.sshd = SshdServer(sftp_log_level="INFO").start()
            self.stack = LocalStack(
                self.data_dir, api_port=0, moto_port=0, on_event=lambda m: self.log(f"[stack] {m}")
            )
            info = self.stack.start()
            self.api_key = info.api_key
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.stack is not None:
            self.stack.stop()
        if self.sshd is not None:
            self.sshd.cleanup()
        local_supervisor.MAX_BACKOFF_SECONDS = self._saved_cap
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    @property
    def names(self) -> Any:
        assert self.stack is not None
        return self.stack.names

    @property
    def aws_endpoint(self) -> str:
        assert self.stack is not None
        return self.stack.aws_endpoint

    # ------------------------------------------------------------------------------- AWS
    def client(self, service: str, key: str = DRIVER_KEY) -> Any:
        session: Any = boto3.session.Session()
        return session.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name=REGION,
            aws_access_key_id=key,
            aws_secret_access_key="x",
        )

    def customer_bucket(self, bucket: str, *, versioned: bool = False) -> None:
        """A bucket of the (demo) customer: tagged for S3 tenancy checks, versioned if asked."""
        s3 = self.client("s3")
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_tagging(
            Bucket=bucket, Tagging={"TagSet": [{"Key": CUSTOMER_TAG, "Value": DEMO_CUSTOMER}]}
        )
        if versioned:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def queue_depth(self, attr: str) -> int:
        assert self.stack is not None and self.stack.resources is not None
        url = self.stack.resources.queue_urls[attr]
        got = self.client("sqs").get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(got["ApproximateNumberOfMessages"]) + int(
            got["ApproximateNumberOfMessagesNotVisible"]
        )

    def calls(self, *, reset: bool = False) -> list[dict[str, Any]]:
        req = urllib.request.Request(
            self.aws_endpoint + CALLS_PATH, method="DELETE" if reset else "GET"
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            rows: list[dict[str, Any]] = json.loads(resp.read())["calls"]
        return rows

    # ------------------------------------------------------------------------------- API
    def api(self, method: str, path: str, body: Any = None, timeout: float = 60) -> tuple[int, Any]:
        assert self.stack is not None
        req = urllib.request.Request(
            self.stack.api_url + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"x-api-key": self.api_key, "Content-Type": "application/json"},
        )
        for attempt in range(5):
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    return resp.status, json.loads(resp.read() or b"null")
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read() or b"null")
            except OSError:  # the API process restarting, a reset under load
                if attempt == 4:
                    raise
                time.sleep(1 + attempt)
        raise AssertionError("unreachable")

    def register(self, body: dict[str, Any], timeout: float = 90) -> str:
        status, created = self.api("POST", "/endpoints", body)
        if status >= 300:
            raise RuntimeError(f"POST /endpoints → {status}: {created}")
        endpoint_id = str(created["endpoint_id"])
        deadline = time.monotonic() + timeout
        while True:
            status, got = self.api("GET", f"/endpoints/{endpoint_id}")
            if status == 200 and got.get("status") == "ACTIVE":
                return endpoint_id
            if status == 200 and got.get("status") not in (None, "PENDING_VALIDATION"):
                raise RuntimeError(f"endpoint {body['name']} is {got.get('status')}: {got}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"endpoint {body['name']} not ACTIVE after {timeout} s: {got}")
            time.sleep(0.5)

    def register_s3(self, name: str, bucket: str, **extra: Any) -> str:
        return self.register(
            {"name": name, "type": "s3", "bucket": bucket, "direction": "BOTH", **extra}
        )

    def register_sftp(self, name: str, base_path: Path, **extra: Any) -> str:
        sshd = self.sshd
        assert sshd is not None
        return self.register(
            {
                "name": name,
                "type": "sftp",
                "direction": "BOTH",
                "host": sshd.host,
                "port": sshd.port,
                "username": sshd.username,
                "base_path": str(base_path),
                "host_key": sshd.host_key_line,
                "private_key": sshd.private_key_text,
                **extra,
            }
        )

    def sftp_dir(self, name: str) -> Path:
        assert self.sshd is not None
        return self.sshd.make_dir(name)

    # -------------------------------------------------------------------------- executor
    def executor_pid(self) -> int | None:
        assert self.stack is not None and self.stack.supervisor is not None
        return self.stack.supervisor.pids().get("executor")

    def kill_executor(self) -> int | None:
        """kill -9 the executor process (its whole process group); its pid, or None if down."""
        pid = self.executor_pid()
        if pid is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        return pid
