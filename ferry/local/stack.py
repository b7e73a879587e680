"""The local stack: moto server + every Ferry service as its own process, on one machine.

``LocalStack(...).start()`` runs what ``ferry up`` prints about:

1. moto server (``python -m events._moto``: moto with DynamoDB requests applied one at a time,
   see events/_moto.py) — stands in for the AWS account;
2. every resource of ``ferry.names.ResourceNames`` (``ferry.local.bootstrap``);
3. the demo customer's API key (``ferry.local.keys``) and every key recorded in keys.json;
4. the services, supervised (``ferry.local.supervisor``): the API (``ferry.local.apiserver``,
   for API Gateway), the stream publisher (``ferry.local.stream_poller``, for the DynamoDB stream
   event source mapping), the projections consumer, the endpoints' verdict consumer and the jobs
   process manager (``ferry.local.sqs_poller``, for the SQS event source mapping), and the executor
   (``python -m services.executor``, as its Fargate task would run it).

Everything the services run is the code that runs in AWS; only those stand-ins are local.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.api import DynamoKeyStore, hash_key, issue_key
from ferry.local import bootstrap, keys
from ferry.local.supervisor import Service, Supervisor
from ferry.names import ENV_DEPLOYMENT_REGION, ENV_PUBLICATIONS_TABLE, ResourceNames

DEMO_CUSTOMER = "demo"
REGION = "us-east-1"
_UNSET_FOR_CHILDREN = (
    "AWS_CA_BUNDLE",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortInUse(RuntimeError):
    pass


def ensure_free(port: int, option: str) -> None:
    """Fail early and clearly when another program (or another stack) holds the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUse(
                f"port {port} is in use on 127.0.0.1 (another `ferry up`?): choose another "
                f"with {option} N (0 picks a free one)"
            ) from None


def wait_for_port(host: str, port: int, timeout: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the process meant to listen on {host}:{port} exited")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


@dataclass
class StackInfo:
    api_url: str
    api_key: str
    aws_endpoint: str
    region: str
    data_dir: Path

    def config(self) -> dict[str, Any]:
        return {
            "api_url": self.api_url,
            "api_key": self.api_key,
            "aws_endpoint": self.aws_endpoint,
            "region": self.region,
            "customer_id": DEMO_CUSTOMER,
        }


# (name, handler or module) of each service; SQS pollers read the queue of the given attribute.
SQS_SERVICES: tuple[tuple[str, str, str], ...] = (
    ("projections", "services.projections.consumer:handler", "projections_queue"),
    ("endpoint-checks", "services.endpoints.consumer:handler", "endpoint_checks_queue"),
    ("jobs-process-manager", "services.jobs.process_manager:handler", "jobs_queue"),
    ("routes-push", "services.routes.push:handler", "routes_queue"),
    ("routes-projections", "services.routes.consumer:handler", "routes_projections_queue"),
    ("notifications", "services.notifications.consumer:handler", "notifications_queue"),
    ("notifier", "services.notifications.deliver:handler", "notifications_deliver_queue"),
    ("audit-exporter", "services.projections.audit_exporter:handler", "audit_exports_queue"),
)


class _Only:
    """The supervisor, adding only the services named in ``only`` (None: every one), those
    in ``held`` without starting them."""

    def __init__(self, supervisor: Supervisor, only: set[str] | None, held: set[str]) -> None:
        self._supervisor = supervisor
        self._only = only
        self._held = held

    def add(self, service: Service) -> None:
        if self._only is None or service.name in self._only:
            self._supervisor.add(service, start=service.name not in self._held)

    def pids(self) -> dict[str, int]:
        return self._supervisor.pids()


class LocalStack:
    def __init__(
        self,
        data_dir: Path,
        *,
        api_port: int = 8080,
        moto_port: int = 5000,
        prefix: str = "ferry",
        on_event: Callable[[str], None] | None = None,
        executor: bool = True,
        external_moto: bool = False,
        region: str | None = None,
        messaging_prefix: str | None = None,
        publications: bool = False,
        extra_env: Mapping[str, str] | None = None,
        services: Collection[str] | None = None,
        held: Collection[str] = (),
    ) -> None:
        """The defaults are ``ferry up``'s one region. For the two-region simulation
        (ferry/local/regions.py): ``external_moto`` — use the moto server already listening on
        ``moto_port`` (not started, not stopped here); ``region`` — FERRY_REGION of every
        service (the region recorded on events and leases; AWS calls still go to moto's
        us-east-1); ``messaging_prefix`` — the region's own bus, archive, rules and queues
        (tables and buckets keep ``prefix``: shared); ``publications`` — create the publish-once
        claims table and set FERRY_PUBLICATIONS_TABLE; ``extra_env`` — more variables for every
        service (FERRY_PEER_BUS_ARNS, executor settings); ``services`` — run only these of the
        service names (None: all); ``held`` — add these but start them only on
        ``start_held(name)``."""
        self.data_dir = Path(data_dir).resolve()
        self.api_port = api_port or free_port()
        if external_moto and not moto_port:
            raise ValueError("external_moto needs the moto server's port")
        self.moto_port = moto_port or free_port()
        self.names = ResourceNames(prefix=prefix)
        self.on_event = on_event or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.with_executor = executor
        self.external_moto = external_moto
        self.region = region or REGION
        self.messaging = ResourceNames(prefix=messaging_prefix) if messaging_prefix else None
        self.publications = publications
        self.extra_env = dict(extra_env or {})
        self.only = set(services) if services is not None else None
        self.held = set(held)
        self.supervisor: Supervisor | None = None
        self.info: StackInfo | None = None
        self.resources: bootstrap.Resources | None = None
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def aws_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    # ------------------------------------------------------------------------------ start
    def start(self) -> StackInfo:
        if not self.external_moto:
            ensure_free(self.moto_port, "--moto-port")
        ensure_free(self.api_port, "--port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        base_env = {k: v for k, v in os.environ.items() if k not in _UNSET_FOR_CHILDREN}
        base_env.update(bootstrap.aws_environment(self.aws_endpoint, REGION))
        # Every process of this stack (and its children) carries it: leak checks look for it.
        base_env["FERRY_DATA_DIR"] = str(self.data_dir)
        self.supervisor = Supervisor(
            self.data_dir / "logs", self.data_dir, base_env=base_env, on_event=self.on_event
        )
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackInfo:
        supervisor = self.supervisor
        assert supervisor is not None
        py = sys.executable
        if not self.external_moto:
            supervisor.add(
                Service(
                    "moto",
                    [py, "-m", "events._moto", "--port", str(self.moto_port)],
                    critical=True,
                )
            )
        wait_for_port("127.0.0.1", self.moto_port, 30, lambda: supervisor.failed is None)
        for k in _UNSET_FOR_CHILDREN:
            os.environ.pop(k, None)  # this process talks to moto too (http: no CA bundle)
        self.resources = bootstrap.create_resources(
            self.names,
            self.aws_endpoint,
            REGION,
            messaging=self.messaging,
            publications=self.publications,
        )
        # A fresh moto server: stream checkpoints of an earlier run no longer apply.
        with contextlib.suppress(OSError):
            (self.data_dir / "stream-checkpoints.json").unlink()
        api_key = self._keys()

        service_env = self.resources.environment()
        if os.environ.get("FERRY_EGRESS_ALLOW"):  # the operator's extra SFTP egress ranges
            service_env["FERRY_EGRESS_ALLOW"] += "," + os.environ["FERRY_EGRESS_ALLOW"]
        service_env.update(
            {
                "POWERTOOLS_METRICS_NAMESPACE": "Ferry",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "FERRY_PREFIX": self.names.prefix,
                # S3 tenancy: the operator's own customer may use untagged same-account buckets
                # (README: `aws s3 mb` then `ferry endpoints add`); every other customer needs
                # the bucket tagged ferry:customer=<id> (or FERRY_BUCKET_GRANTS)
                "FERRY_OPERATOR_CUSTOMER": DEMO_CUSTOMER,
            }
        )
        if os.environ.get("FERRY_BUCKET_GRANTS"):  # the operator's explicit grants
            service_env["FERRY_BUCKET_GRANTS"] = os.environ["FERRY_BUCKET_GRANTS"]
        service_env[ENV_DEPLOYMENT_REGION] = self.region
        if self.publications:
            service_env[ENV_PUBLICATIONS_TABLE] = self.names.publications_table
        # Notifications (issue 12, docs/notifications.md): plain-http webhooks allowed (to the
        # loopback allow-list), a 2 s first retry (then 3x each), mail into the mail catcher.
        smtp_port = free_port()
        service_env.update(
            {
                "FERRY_WEBHOOK_ALLOW_HTTP": "true",
                "FERRY_NOTIFY_RETRY_BASE_SECONDS": os.environ.get(
                    "FERRY_NOTIFY_RETRY_BASE_SECONDS", "2"
                ),
                "FERRY_SMTP_HOST": "127.0.0.1",
                "FERRY_SMTP_PORT": str(smtp_port),
                "FERRY_EMAIL_FROM": "ferry@localhost",
            }
        )
        service_env.update(self.extra_env)
        services = _Only(supervisor, self.only, self.held)
        mail = [py, "-m", "ferry.local.mail", "--port", str(smtp_port)]
        mail += ["--dir", str(self.data_dir / "mail")]
        services.add(
            Service("mail", mail, env={**service_env, "POWERTOOLS_SERVICE_NAME": "ferry-mail"})
        )
        services.add(
            Service(
                "api",
                [py, "-m", "ferry.local.apiserver", "--port", str(self.api_port)],
                env={**service_env, "POWERTOOLS_SERVICE_NAME": "ferry-api"},
            )
        )
        services.add(
            Service(
                "publisher",
                [
                    py,
                    "-m",
                    "ferry.local.stream_poller",
                    "--table",
                    self.names.events_table,
                    "--data-dir",
                    str(self.data_dir),
                ],
                env={**service_env, "POWERTOOLS_SERVICE_NAME": "ferry-publisher"},
            )
        )
        for name, handler, queue_attr in SQS_SERVICES:
            services.add(
                Service(
                    name,
                    [
                        py,
                        "-m",
                        "ferry.local.sqs_poller",
                        "--queue-url",
                        self.resources.queue_urls[queue_attr],
                        "--handler",
                        handler,
                        "--function-name",
                        f"{self.names.prefix}-{name}",
                    ],
                    env={**service_env, "POWERTOOLS_SERVICE_NAME": f"ferry-{name}"},
                )
            )
        if self.with_executor:
            services.add(
                Service(
                    "executor",
                    [py, "-m", "services.executor"],
                    env={
                        **service_env,
                        "POWERTOOLS_SERVICE_NAME": "ferry-executor",
                        # The same task runs the endpoint validator worker (as on Fargate).
                        "FERRY_EXECUTOR_RUN_VALIDATOR": "true",
                        # Short long-polls: Ctrl-C stops the stack within a couple of seconds.
                        "FERRY_EXECUTOR_POLL_WAIT_SECONDS": "2",
                    },
                )
            )
            # Routes: the pull scanner (data plane) and, standing in for EventBridge Scheduler
            # (moto's schedules never fire), the ticker that feeds its queue.
            for name, module in (
                ("routes-ticker", "services.routes.ticker"),
                ("routes-scanner", "services.routes.scanner"),  # + SLA deadline checks
                ("jobs-slow-check", "services.jobs.slow_check"),  # JobSlow (EventBridge Scheduler)
                ("audit-checkpoint", "services.projections.audit_checkpoints"),  # hourly
                # active-active: the expired-item sweep (MRSC tables have no TTL), hourly in AWS
                *([("expiry-sweep", "events.expiry")] if self.publications else []),
            ):
                services.add(
                    Service(
                        name,
                        [py, "-m", module],
                        env={**service_env, "POWERTOOLS_SERVICE_NAME": f"ferry-{name}"},
                    )
                )
        wait_for_port("127.0.0.1", self.api_port, 30, lambda: "api" in supervisor.pids())
        self.info = StackInfo(
            api_url=self.api_url,
            api_key=api_key,
            aws_endpoint=self.aws_endpoint,
            region=REGION,
            data_dir=self.data_dir,
        )
        keys.write_config(self.data_dir, self.info.config())
        self._watcher = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._watcher.start()
        return self.info

    def _keys(self) -> str:
        """Load keys.json into the table; reuse the demo key of config.json or issue one."""
        assert self.resources is not None
        table = DynamoKeyStore(
            self.names.api_keys_table,
            client=bootstrap.aws_client("dynamodb", self.aws_endpoint, REGION),
        )
        keys.load_keys_into(table, self.data_dir)
        previous = keys.read_config(self.data_dir).get("api_key")
        known = {k["key_hash"] for k in keys.read_keys(self.data_dir)}
        if isinstance(previous, str) and hash_key(previous) in known:
            return previous
        api_key, _ = issue_key(
            keys.FileBackedKeyStore(self.data_dir, table), DEMO_CUSTOMER, name="demo"
        )
        return api_key

    def _watch(self) -> None:
        assert self.supervisor is not None
        self.supervisor.run(self._watch_stop)

    # ------------------------------------------------------------------------------- run
    def wait(self, stop: threading.Event) -> int:
        """Block until ``stop`` is set or a critical service dies; 0 or 1."""
        assert self.supervisor is not None
        while not stop.is_set():
            if self.supervisor.failed:
                return 1
            stop.wait(0.2)
        return 0

    def start_held(self, name: str) -> None:
        """Start a service of ``held``."""
        assert self.supervisor is not None
        self.supervisor.start_held(name)

    def kill(self) -> list[int]:
        """SIGKILL every process group of this stack at once, restarting none (a region
        failure in the simulation); the pids killed. ``stop()`` afterwards closes the logs."""
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        return self.supervisor.kill_all() if self.supervisor is not None else []

    def stop(self) -> None:
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.supervisor is not None:
            self.supervisor.stop()

    def api_ready(self, timeout: float = 30.0) -> bool:
        """True once the API answers (any HTTP status) within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.api_url + "/jobs", timeout=5).close()
                return True
            except urllib.error.HTTPError:
                return True
            except OSError:
                time.sleep(0.1)
        return False
