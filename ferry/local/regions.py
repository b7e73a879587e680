"""Two Ferry regions on one machine: the local simulation of active-active (issue 15).

One moto server stands for the AWS account. Its DynamoDB stands for the multi-Region strongly
consistent (MRSC) tables, which both regions use under the same names: the event store, leases
and slots, idempotency, API keys, endpoints, ``<prefix>-publications`` (publish-once
claims) and ``<prefix>-subscriptions`` (notifications). In the simulation the read models are
shared too (the projectors' writes are conditional on versions, so two regions' projectors racing on one item is safe; in AWS they are
per-region, eventually consistent). Each region runs a complete set of Ferry's service
processes (``ferry.local.stack.LocalStack``): its own API port, stream publisher (reading the
same table stream with its own checkpoints), bus, archive, rules and queues
(``<prefix>-<region>-bus``, ``<prefix>-<region>-executor``, ...), projectors, process manager
and executors. Each region's publisher claims each event and the winner puts it to both buses
(FERRY_PUBLICATIONS_TABLE, FERRY_PEER_BUS_ARNS; events/publications.py).

Regions are named as AWS regions (FERRY_REGION, recorded on events, leases and claims). A few
services build their AWS clients for FERRY_REGION; moto keeps each region's resources apart, so
the simulation's moto server answers every region's request from us-east-1 (the credential
scope's region is rewritten): one account, one set of MRSC tables, as if every region's
endpoint reached its local replica. Secrets Manager is the exception: it stays regional, as in
AWS (endpoint secrets are created in one region with replicas in the other,
ferry/secret_regions.py), and a killed region's Secrets Manager is down too
(``TwoRegions.kill``: its requests are refused with 503 and counted, ``GET /_ferry/down``).

One S3 (moto) holds the staging bucket; in AWS each region has its own staging bucket with
replication (docs/multi-region-runtime.md).

    python -m ferry.local.regions up --data-dir .ferry-regions   # both regions, Ctrl-C stops
    python -m ferry.local.regions moto --port 5000               # the one-region moto server
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import urllib.request
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events._moto import SerialMotoServer
from ferry.local import bootstrap
from ferry.local.stack import REGION, LocalStack, StackInfo, free_port, wait_for_port
from ferry.local.supervisor import Service, Supervisor
from ferry.names import ENV_PEER_BUS_ARNS, ENV_SECRETS_REPLICA_REGIONS, ResourceNames

REGION_A = "us-east-1"
REGION_B = "us-west-2"
MOTO_REGION = REGION  # every region's request is answered from this one

_SCOPE = re.compile(r"(Credential=[^/,\s]+/\d{8}/)([a-z0-9-]+)(/)([a-z0-9-]+)")
_QUERY_SCOPE = re.compile(r"(X-Amz-Credential=[^&%]+(?:%2F|/)\d{8}(?:%2F|/))([a-z0-9-]+)")
#: Services that stay regional in the simulation, as in AWS (not rewritten to MOTO_REGION).
REGIONAL_SERVICES = frozenset({"secretsmanager"})
DOWN_PATH = "/_ferry/down"  # POST /_ferry/down/<region>: that region's regional services fail


def one_region(
    app: Callable[..., Iterable[bytes]], down: dict[str, int] | None = None
) -> Callable[..., Iterable[bytes]]:
    """WSGI middleware: the request's SigV4 scope region becomes MOTO_REGION (moto picks the
    backend by it; it does not check signatures), except for REGIONAL_SERVICES. ``down``
    (region → requests refused): a request of a regional service scoped to such a region is
    answered 503 and counted; ``POST /_ferry/down/<region>`` adds one, ``GET /_ferry/down``
    shows the counts."""
    refused = down if down is not None else {}
    lock = threading.Lock()

    def scope(match: re.Match[str]) -> str:
        region = match[2] if match[4] in REGIONAL_SERVICES else MOTO_REGION
        return f"{match[1]}{region}{match[3]}{match[4]}"

    def answer(start_response: Callable[..., Any], status: str, body: Any) -> Iterable[bytes]:
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json")])
        return [data]

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "")
        if path.startswith(DOWN_PATH):
            if environ.get("REQUEST_METHOD") == "POST":
                with lock:
                    refused.setdefault(path.removeprefix(DOWN_PATH).strip("/"), 0)
            with lock:
                return answer(start_response, "200 OK", dict(refused))
        auth = environ.get("HTTP_AUTHORIZATION")
        if auth:
            found = _SCOPE.search(auth)
            if found and found[4] in REGIONAL_SERVICES and found[2] in refused:
                with lock:
                    refused[found[2]] += 1
                return answer(
                    start_response,
                    "503 Service Unavailable",
                    {"__type": "ServiceUnavailable", "message": f"{found[2]} is down"},
                )
            environ["HTTP_AUTHORIZATION"] = _SCOPE.sub(scope, auth)
        query = environ.get("QUERY_STRING")
        if query and "X-Amz-Credential" in query:
            environ["QUERY_STRING"] = _QUERY_SCOPE.sub(rf"\g<1>{MOTO_REGION}", query)
        return app(environ, start_response)

    return wrapped


def region_down(aws_endpoint: str, region: str) -> None:
    """Tell the simulation's moto server that ``region``'s regional services are down."""
    request = urllib.request.Request(f"{aws_endpoint}{DOWN_PATH}/{region}", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def refused_requests(aws_endpoint: str) -> dict[str, int]:
    """Requests refused so far per down region (``region_down``)."""
    with urllib.request.urlopen(f"{aws_endpoint}{DOWN_PATH}", timeout=10) as response:
        return {str(k): int(v) for k, v in json.loads(response.read()).items()}


class OneRegionMotoServer(SerialMotoServer):
    """events._moto's server (DynamoDB serialised) answering every region from MOTO_REGION."""

    def start(self) -> str:
        url = super().start()
        assert self._server is not None
        self._server.app = one_region(self._server.app)
        return url


def mrsc_tables(names: ResourceNames) -> tuple[str, ...]:
    """The tables that are MRSC global tables in AWS (docs/multi-region.md): the simulation's
    moto refuses transactions on them, as DynamoDB does."""
    return (
        names.events_table,
        names.leases_table,
        names.idempotency_table,
        names.api_keys_table,
        names.endpoints_table,
        names.publications_table,
        names.subscriptions_table,
    )


def _moto_main(port: int, mrsc: Iterable[str] = ()) -> int:
    server = OneRegionMotoServer("127.0.0.1", port, mrsc_tables=mrsc)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    with server:
        print(f"MOTO_URL={server.url}", flush=True)
        stopped.wait()
    return 0


#: The services of a region when ``services="core"``: what a transfer needs (the API, the
#: publisher, the projections and the jobs process manager, the endpoints' verdicts and the
#: executor with its validator). Leaves out mail, notifications, routes, audit exports and the
#: schedulers' stand-ins (each another Python process: 2 x 15 processes do not fit a 2-core
#: test machine's time budget).
CORE_SERVICES = (
    "api",
    "publisher",
    "projections",
    "endpoint-checks",
    "jobs-process-manager",
    "executor",
)


@dataclass
class Region:
    name: str  # an AWS region name: FERRY_REGION
    stack: LocalStack
    messaging: ResourceNames
    bus_arn: str = ""
    info: StackInfo | None = None

    @property
    def api_url(self) -> str:
        return self.stack.api_url

    @property
    def data_dir(self) -> Path:
        return self.stack.data_dir


class TwoRegions:
    """One moto server (its own supervisor) and two LocalStacks on it, regions A and B."""

    def __init__(
        self,
        data_dir: Path,
        *,
        prefix: str = "ferry",
        regions: tuple[str, str] = (REGION_A, REGION_B),
        extra_env: Mapping[str, str] | None = None,
        services: Collection[str] | None = None,
        on_event: Callable[[str], None] | None = None,
        held: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        """``held``: per region, services added but started only on ``start_held`` (a test
        that needs region A's executor to lease every job first)."""
        self.held = dict(held or {})
        self.data_dir = Path(data_dir).resolve()
        self.prefix = prefix
        self.names = ResourceNames(prefix)
        self.moto_port = free_port()
        self.extra_env = dict(extra_env or {})
        self.services = services
        self.on_event = on_event or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.moto: Supervisor | None = None
        self.regions: dict[str, Region] = {}
        for name in regions:
            messaging = ResourceNames(f"{prefix}-{name}")
            self.regions[name] = Region(name, self._stack(name, messaging), messaging)

    def _stack(self, name: str, messaging: ResourceNames) -> LocalStack:
        def on_event(msg: str) -> None:
            self.on_event(f"[{name}] {msg}")

        return LocalStack(
            self.data_dir / name,
            api_port=0,
            moto_port=self.moto_port,
            prefix=self.prefix,
            on_event=on_event,
            external_moto=True,
            region=name,
            messaging_prefix=messaging.prefix,
            publications=True,
            services=self.services,
            held=self.held.get(name, ()),
        )

    @property
    def aws_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    def __getitem__(self, name: str) -> Region:
        return self.regions[name]

    def start(self) -> TwoRegions:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(bootstrap.aws_environment(self.aws_endpoint, MOTO_REGION))
        env["FERRY_DATA_DIR"] = str(self.data_dir)
        self.moto = Supervisor(self.data_dir / "logs", self.data_dir, base_env=env)
        argv = [sys.executable, "-m", "ferry.local.regions", "moto", "--port", str(self.moto_port)]
        argv += [f"--mrsc-table={table}" for table in mrsc_tables(self.names)]
        try:
            self.moto.add(Service("moto", argv, critical=True))
            moto = self.moto
            wait_for_port("127.0.0.1", self.moto_port, 30, lambda: moto.failed is None)
            # Both regions' resources first: each region's publisher needs the other's bus ARN.
            for region in self.regions.values():
                made = bootstrap.create_resources(
                    self.names,
                    self.aws_endpoint,
                    MOTO_REGION,
                    messaging=region.messaging,
                    publications=True,
                )
                region.bus_arn = made.bus_arn
            for region in self.regions.values():
                peers = [r.bus_arn for r in self.regions.values() if r is not region]
                others = [r.name for r in self.regions.values() if r is not region]
                region.stack.extra_env = {
                    **self.extra_env,
                    ENV_PEER_BUS_ARNS: ",".join(peers),
                    ENV_SECRETS_REPLICA_REGIONS: ",".join(others),
                }
                region.info = region.stack.start()
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, name: str) -> list[int]:
        """A region failure: SIGKILL every process group of the region at once, and its
        regional services (Secrets Manager) refuse every request from then on."""
        killed = self.regions[name].stack.kill()
        region_down(self.aws_endpoint, name)
        return killed

    def stop(self) -> None:
        for region in self.regions.values():
            region.stack.stop()
        if self.moto is not None:
            self.moto.stop()

    def __enter__(self) -> TwoRegions:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Two Ferry regions on one moto server")
    sub = parser.add_subparsers(dest="command", required=True)
    moto = sub.add_parser("moto", help="the moto server answering every region from us-east-1")
    moto.add_argument("--port", type=int, default=0)
    moto.add_argument(
        "--mrsc-table",
        action="append",
        default=[],
        help="a table standing for an MRSC global table: transactions on it are refused",
    )
    up = sub.add_parser("up", help="start regions A and B; Ctrl-C stops both")
    up.add_argument("--data-dir", default=".ferry-regions")
    up.add_argument("--core", action="store_true", help="only the services a transfer needs")
    args = parser.parse_args(argv)
    if args.command == "moto":
        return _moto_main(args.port, args.mrsc_table)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    regions = TwoRegions(Path(args.data_dir), services=CORE_SERVICES if args.core else None)
    with regions:
        print(f"AWS endpoint: {regions.aws_endpoint}", flush=True)
        for region in regions.regions.values():
            assert region.info is not None
            print(f"{region.name}: API URL {region.api_url}", flush=True)
            print(f"{region.name}: API key {region.info.api_key}", flush=True)
        while not stop.is_set():
            if any(
                r.stack.supervisor and r.stack.supervisor.failed for r in regions.regions.values()
            ):
                return 1
            if regions.moto is not None and regions.moto.failed:
                return 1
            stop.wait(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
