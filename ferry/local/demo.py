"""``ferry demo``: the local stack, an SFTP server, and one transfer per flow, live.

1. starts the local stack (as ``ferry up``) and the embedded SFTP server
   (``ferry.local.sftp_server``, asyncssh) serving ``<data-dir>/sftp-root`` on 127.0.0.1;
2. creates two demo buckets on moto and generates files (one of ``--size-mb``, to watch);
3. registers three endpoints through the HTTP API — the SFTP one with its pinned host key —
   and waits until the executor's validator has made them ACTIVE;
4. runs S3→S3, S3→SFTP, SFTP→S3 and SFTP→SFTP transfers with live progress bars;
5. prints the status table and the S3→SFTP job's audit trail;
6. leaves everything running for the user to explore (or stops with ``--exit``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from ferry.local.stack import LocalStack, PortInUse, ensure_free, wait_for_port
from ferry.local.supervisor import Service

SOURCE_BUCKET = "ferry-demo-source"
TARGET_BUCKET = "ferry-demo-target"
MB = 1000 * 1000
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")

console = Console(highlight=False)


class RandomStream:
    """A file-like object of ``size`` random bytes (uploaded without holding them in memory)."""

    def __init__(self, size: int) -> None:
        self.remaining = size

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.remaining:
            n = self.remaining
        n = min(n, 8 * 1024 * 1024)
        self.remaining -= n
        return os.urandom(n)


def _write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * 1024 * 1024)
            f.write(os.urandom(n))
            left -= n


def _sftp_details(log_path: Path, timeout: float) -> dict[str, Any]:
    """The JSON line ``python -m ferry.local.sftp_server`` prints once it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            lines = log_path.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        for line in reversed(lines):
            if line.startswith("{") and "host_key" in line:
                found: dict[str, Any] = json.loads(line)
                return found
        time.sleep(0.1)
    raise TimeoutError(f"the SFTP server printed no connection details (see {log_path})")


def run_demo(args: argparse.Namespace, data_dir: Path) -> int:
    from ferry.cli_common import CliError, signal_event

    stop = signal_event()
    try:
        return _run(args, data_dir, stop)
    except PortInUse as error:
        raise CliError(str(error)) from None


def _run(args: argparse.Namespace, data_dir: Path, stop: Any) -> int:
    from ferry.cli_common import ApiClient, CliError, events_table, job_table, say
    from ferry.cli_stack import (
        DEFAULT_API_PORT,
        DEFAULT_MOTO_PORT,
        DEFAULT_SFTP_PORT,
        choose_port,
        print_console_line,
        publish_user_config,
        unpublish_user_config,
    )

    args.port = choose_port(args.port, DEFAULT_API_PORT, "--port")
    args.moto_port = choose_port(args.moto_port, DEFAULT_MOTO_PORT, "--moto-port")
    args.sftp_port = choose_port(args.sftp_port, DEFAULT_SFTP_PORT, "--sftp-port")
    stack = LocalStack(
        data_dir,
        api_port=args.port,
        moto_port=args.moto_port,
        on_event=lambda msg: console.print(say("[yellow]stack:[/] {}", msg)),
    )
    published = None
    try:
        if args.sftp_port:
            ensure_free(args.sftp_port, "--sftp-port")
        with console.status("Starting the local stack (moto server, API, workers)…"):
            info = stack.start()
        print(f"API URL: {info.api_url}", flush=True)
        print(f"API key: {info.api_key}", flush=True)
        print(f"AWS endpoint: {info.aws_endpoint}", flush=True)
        print_console_line(info)
        published = publish_user_config(info)
        sftp = _start_sftp(stack, args)
        console.print(
            f"SFTP server: sftp://{sftp['username']}@{sftp['host']}:{sftp['port']} "
            f"serving {sftp['root']}"
        )
        client = ApiClient(info.api_url, info.api_key)
        try:
            jobs = _run_transfers(stack, client, sftp, args)
        except CliError as error:
            where = f" [field: {error.field}]" if error.field else ""
            console.print(say("[red]demo failed:[/] {}{}", error.message, where))
            return 1
        listed = client.request("GET", "/jobs", query={"limit": 20})
        console.rule("Jobs")
        console.print(job_table(listed.get("jobs", []) if isinstance(listed, dict) else listed))
        trail_of = jobs.get("S3 → SFTP") or next(iter(jobs.values()))
        console.rule(f"Audit trail of job {trail_of['job_id']} (GET /jobs/{{id}}/events)")
        trail = client.request("GET", f"/jobs/{trail_of['job_id']}/events")
        console.print(events_table(trail.get("events", [])))
        from ferry.local.mail import show_failure_notification

        console.rule("Get told: subscriptions (docs/notifications.md)")
        show_failure_notification(client, data_dir, console, args.timeout)
        ok = all(j.get("status") == "SUCCEEDED" for j in jobs.values())
        if args.exit:
            console.print("[green]demo succeeded[/]" if ok else "[red]some transfers failed[/]")
            return 0 if ok else 1
        _explore_hints(info, sftp, data_dir, jobs)
        return stack.wait(stop)
    finally:
        with console.status("Stopping (services first, then moto server)…"):
            stack.stop()
        if published is not None:
            unpublish_user_config(published, info)


def _start_sftp(stack: LocalStack, args: argparse.Namespace) -> dict[str, Any]:
    assert stack.supervisor is not None
    port = args.sftp_port
    if port == 0:
        from ferry.local.stack import free_port

        port = free_port()
    log_path = stack.data_dir / "logs" / "sftp.log"
    log_path.unlink(missing_ok=True)
    root = stack.data_dir / "sftp-root"
    stack.supervisor.add(
        Service(
            "sftp",
            [
                sys.executable,
                "-m",
                "ferry.local.sftp_server",
                "--data-dir",
                str(stack.data_dir / "sftp"),
                "--root",
                str(root),
                "--port",
                str(port),
            ],
        )
    )
    wait_for_port("127.0.0.1", port, 30, lambda: "sftp" in stack.supervisor.pids())  # type: ignore[union-attr]
    return _sftp_details(log_path, 30)


def _run_transfers(
    stack: LocalStack, client: Any, sftp: dict[str, Any], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    from ferry.local import bootstrap

    s3 = bootstrap.aws_client("s3", stack.aws_endpoint, "us-east-1")
    big = args.size_mb * MB
    root = Path(sftp["root"])
    with console.status("Generating demo files…"):
        for bucket in (SOURCE_BUCKET, TARGET_BUCKET):
            s3.create_bucket(Bucket=bucket)
        s3.upload_fileobj(RandomStream(big), SOURCE_BUCKET, "outgoing/big.bin")
        _write_random(root / "outbox" / "invoices.csv", 2 * MB)
        _write_random(root / "outbox" / "photos.bin", max(1, args.size_mb // 4) * MB)
        for folder in ("inbox", "archive"):
            (root / folder).mkdir(parents=True, exist_ok=True)

    with console.status("Registering endpoints; waiting for validation…"):
        endpoints = {
            "s3-source": _register(
                client,
                {
                    "name": "demo-s3-source",
                    "type": "s3",
                    "bucket": SOURCE_BUCKET,
                    "prefix": "outgoing/",
                    "direction": "INBOUND",
                },
                args.timeout,
            ),
            "s3-target": _register(
                client,
                {
                    "name": "demo-s3-target",
                    "type": "s3",
                    "bucket": TARGET_BUCKET,
                    "prefix": "incoming/",
                    "direction": "OUTBOUND",
                },
                args.timeout,
            ),
            "sftp": _register(
                client,
                {
                    "name": "demo-sftp",
                    "type": "sftp",
                    "host": sftp["host"],
                    "port": sftp["port"],
                    "username": sftp["username"],
                    "base_path": "/",
                    "host_key": sftp["host_key"],
                    "private_key": Path(sftp["private_key_path"]).read_text(),
                    "direction": "BOTH",
                },
                args.timeout,
            ),
        }
    console.print(
        "Endpoints ACTIVE: "
        + ", ".join(f"{name} {e['endpoint_id']}" for name, e in endpoints.items())
    )

    src, dst, ftp = (endpoints[k]["endpoint_id"] for k in ("s3-source", "s3-target", "sftp"))
    flows = {
        "S3 → S3": (f"{src}:big.bin", f"{dst}:copies/big.bin"),
        "S3 → SFTP": (f"{src}:big.bin", f"{ftp}:inbox/big.bin"),
        "SFTP → S3": (f"{ftp}:outbox/invoices.csv", f"{dst}:from-sftp/invoices.csv"),
        "SFTP → SFTP": (f"{ftp}:outbox/photos.bin", f"{ftp}:archive/photos.bin"),
    }
    jobs: dict[str, dict[str, Any]] = {}
    for label, (source, target) in flows.items():
        s_id, _, s_path = source.partition(":")
        t_id, _, t_path = target.partition(":")
        jobs[label] = client.request(
            "POST",
            "/transfers",
            {
                "source": {"endpoint_id": s_id, "path": s_path},
                "target": {"endpoint_id": t_id, "path": t_path},
                "options": {"overwrite": True, "verify": "digest"},
            },
        )
    return _follow(client, jobs, args.timeout)


def _register(client: Any, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    from ferry.cli_common import CliError, wait_for_endpoint

    created = client.request("POST", "/endpoints", body)
    found = wait_for_endpoint(client, created["endpoint_id"], timeout)
    if found.get("status") != "ACTIVE":
        raise CliError(
            f"endpoint {body['name']} is {found.get('status')}: {found.get('status_reason')}"
        )
    return found


def _follow(
    client: Any, jobs: dict[str, dict[str, Any]], timeout: float
) -> dict[str, dict[str, Any]]:
    from ferry.cli_common import human_bytes, say
    from ferry.cli_stack import RateMeter

    deadline = time.monotonic() + timeout
    meters = {label: RateMeter() for label in jobs}
    with Progress(
        TextColumn("{task.description:<12}"),
        TextColumn("[bold]{task.fields[status]:<10}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rate]:>11}"),
        TextColumn("{task.fields[eta]:>9}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks = {
            label: progress.add_task(
                label, total=None, status=job.get("status", ""), rate="", eta=""
            )
            for label, job in jobs.items()
        }
        while True:
            for label, job in list(jobs.items()):
                if job.get("status") in FINAL and "bytes_total" in job:
                    continue
                try:
                    job = client.request("GET", f"/jobs/{job['job_id']}")
                except Exception:
                    continue  # the read model may lag a moment behind the command
                jobs[label] = job
                total = job.get("bytes_total") or None
                done = job.get("bytes_committed") or 0
                if job.get("status") == "SUCCEEDED" and total:
                    done = total
                speed, eta = meters[label].update(job)
                progress.update(
                    tasks[label],
                    total=total,
                    completed=done,
                    status=job["status"],
                    rate=f"{human_bytes(speed)}/s" if speed else "",
                    eta=f"ETA {eta}" if eta else "",
                )
            if all(j.get("status") in FINAL for j in jobs.values()):
                break
            if time.monotonic() > deadline:
                console.print("[red]timed out waiting for the transfers[/]")
                break
            time.sleep(0.25)
    for label, job in jobs.items():
        if job.get("status") != "SUCCEEDED":
            console.print(
                say(
                    "[red]{}: {} {}[/] {}",
                    label,
                    job.get("status"),
                    job.get("error_code") or "",
                    job.get("error_message") or "",
                )
            )
    return jobs


def _explore_hints(
    info: Any, sftp: dict[str, Any], data_dir: Path, jobs: dict[str, dict[str, Any]]
) -> None:
    dd = "" if str(data_dir) == ".ferry" else f" --data-dir {shlex.quote(str(data_dir))}"
    any_job = next(iter(jobs.values()))["job_id"]
    console.rule("The stack keeps running — explore it (Ctrl-C stops everything)")
    print(f"API URL: {info.api_url}")
    print(f"API key: {info.api_key}")
    print(f"AWS endpoint: {info.aws_endpoint}")
    print(f"Console: {info.api_url}/console   (sign in with the API key above)")
    print(
        f"SFTP: sftp -P {sftp['port']} -i {sftp['private_key_path']} "
        f"{sftp['username']}@{sftp['host']}   (root: {sftp['root']})"
    )
    print()
    print("Try:")
    print(f"  ferry jobs{dd}")
    print(f"  ferry status {any_job}{dd}")
    print(f"  ferry events {any_job}{dd}")
    print(f"  ferry endpoints list{dd}")
    print(f"  curl -s -H 'x-api-key: {info.api_key}' {info.api_url}/jobs | python -m json.tool")
    print(
        f"  AWS_ENDPOINT_URL={info.aws_endpoint} AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x "
        f"aws s3 ls s3://{TARGET_BUCKET} --recursive"
    )
    print(f"  curl -s {info.api_url}/openapi.json   # the API, documented")
    sys.stdout.flush()
