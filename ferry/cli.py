"""``ferry``: run the local stack and drive the Ferry HTTP API from a terminal.

    ferry up                      # the local stack: prints API URL, API key, AWS endpoint
    ferry demo [--exit]           # the stack + an SFTP server + one transfer per flow
    ferry endpoints add --name in --type s3 --bucket b --direction INBOUND
    ferry transfer --from EP:path --to EP:path
    ferry status JOB --watch
    ferry jobs | events JOB | cancel JOB | redrive JOB
    ferry keys create|list|revoke | projections rebuild

Configuration: ``<data-dir>/config.json`` (written by ``ferry up``; ``--data-dir`` or
FERRY_DATA_DIR, default ./.ferry) or, from any other directory, the copy ``ferry up`` writes to
``$XDG_CONFIG_HOME/ferry/config.json``; FERRY_API_URL / FERRY_API_KEY override both. Human output
by default, ``--json`` for scripts; every failure exits non-zero with the API's message and field.
Ids: tables show 8 characters; any unique prefix of 6 or more is accepted wherever an id is.

What every command module shares (consoles, CliError, config, the HTTP client, tables) is in
``ferry/cli_common.py``; ``keys``, ``routes`` and ``consumers`` are ``ferry/cli_keys.py``,
``cli_routes.py``, ``cli_consumers.py``. Over 400 lines because the endpoints, transfer and jobs
commands and the argument parser of every command are here, one small function each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from ferry.cli_common import (
    CONFIG_NAME,
    FINAL_STATUSES,
    ApiClient,
    CliError,
    _items,
    cell,
    data_dir_of,
    emit_json,
    err,
    events_table,
    human_bytes,
    job_table,
    kv_table,
    load_config,
    out,
    parse_rate,
    resolve_id,
    say,
    short_id,
    signal_event,
    status_cell,
    table,
    wait_for_endpoint,
)
from ferry.cli_stack import (
    DEFAULT_API_PORT,
    DEFAULT_MOTO_PORT,
    DEFAULT_SFTP_PORT,
    RateMeter,
    choose_port,
    print_console_line,
    print_stack_lines,
    publish_user_config,
    unpublish_user_config,
)

_emit_json = emit_json

# ------------------------------------------------------------------------------------------
# Local stack
# ------------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from ferry.local.stack import LocalStack, PortInUse

    stop = signal_event()
    stack = LocalStack(
        data_dir_of(args),
        api_port=choose_port(args.port, DEFAULT_API_PORT, "--port"),
        moto_port=choose_port(args.moto_port, DEFAULT_MOTO_PORT, "--moto-port"),
        on_event=lambda msg: err.print(say("[yellow]ferry up:[/] {}", msg)),
    )
    published: Path | None = None
    info = None
    try:
        try:
            info = stack.start()
        except PortInUse as error:
            raise CliError(str(error)) from None
        print_stack_lines(info)
        print_console_line(info)
        published = publish_user_config(info)
        err.print(
            say("Logs: {}   Config: {}   Ctrl-C stops everything.", info.data_dir / "logs",
                published or info.data_dir / CONFIG_NAME)
        )  # fmt: skip
        code = stack.wait(stop)
        err.print("Stopping the local stack (services first, then moto server)…")
        return code
    finally:
        stack.stop()
        if info is not None:
            unpublish_user_config(published, info)


def cmd_demo(args: argparse.Namespace) -> int:
    from ferry.local.demo import run_demo

    return run_demo(args, data_dir_of(args))


def cmd_projections_rebuild(args: argparse.Namespace) -> int:
    config = load_config(args)
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or config.get("aws_endpoint")
    if endpoint:
        from ferry.local.bootstrap import service_environment
        from ferry.names import ResourceNames

        os.environ.update(
            service_environment(
                ResourceNames(), str(endpoint), str(config.get("region") or "us-east-1"), {}
            )
        )
    try:
        from services.projections import rebuild as rebuild_module
    except ImportError as error:
        raise CliError(f"services.projections.rebuild is not available: {error}") from None
    import contextlib
    import io

    started = time.monotonic()
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        try:
            code = rebuild_module.main([])
        except Exception as error:
            raise CliError(f"rebuild failed: {type(error).__name__}: {error}") from None
    message = captured.getvalue().strip()
    if code:
        raise CliError(f"rebuild failed (exit {code}): {message}")
    summary = {"rebuilt": True, "seconds": round(time.monotonic() - started, 2), "report": message}
    if args.json:
        _emit_json(summary)
    else:
        out.print(message or f"read models rebuilt in {summary['seconds']} s")
    return 0


# ------------------------------------------------------------------------------------------
# Endpoints
# ------------------------------------------------------------------------------------------

ENDPOINT_COLUMNS = ("endpoint", "name", "type", "direction", "status", "status_reason")

ENDPOINTS_ADD_EPILOG = """\
S3 buckets in your own AWS account (delegated access, --role-arn):
  1. ferry endpoints add --type s3 --bucket BUCKET --role-arn arn:aws:iam::ACCOUNT:role/NAME ...
     prints the endpoint's external_id (ferry-...; also in `ferry endpoints show`).
  2. Give the role this trust policy (FERRY_ROLE_ARNS: the deployment's ExecutorTaskRoleArn,
     ScannerTaskRoleArn and RoutesPushRoleArn stack outputs; EXTERNAL_ID: step 1's):
       {"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow",
                       "Principal": {"AWS": [FERRY_ROLE_ARNS]},
                       "Action": "sts:AssumeRole",
                       "Condition": {"StringEquals": {"sts:ExternalId": "EXTERNAL_ID"}}}]}
     and a permission policy on the bucket only: s3:GetObject, s3:PutObject, s3:DeleteObject,
     s3:AbortMultipartUpload, s3:ListMultipartUploadParts on arn:aws:s3:::BUCKET/* and
     s3:ListBucket, s3:GetBucketLocation on arn:aws:s3:::BUCKET (plus kms:Decrypt /
     kms:GenerateDataKey on the bucket's key if it uses SSE-KMS).
  3. ferry endpoints validate ENDPOINT_ID --wait
The external id is generated by Ferry, unique to the endpoint and never changes: another
customer naming your role cannot present it, so your role trusts only your endpoint.

Buckets in Ferry's own account (no --role-arn) are usable only when tagged
ferry:customer=<your customer id> (space-separated ids) or granted by the deployment
(FERRY_BUCKET_GRANTS); the local stack's operator customer (demo) may use any untagged one.
Ferry's own buckets (its staging bucket) are refused.
"""


BANDWIDTH_HELP = (
    "a byte rate all transfers to or from it share, e.g. 20MB/s, 512KiB/s (default: no cap)"
)


def endpoint_body(args: argparse.Namespace) -> dict[str, Any]:
    """The flat POST /endpoints body; key files are read from disk, never echoed."""
    body: dict[str, Any] = {"name": args.name, "type": args.type}
    for attr in ("direction", "max_concurrency"):
        if getattr(args, attr) is not None:
            body[attr] = getattr(args, attr)
    if args.bandwidth_limit is not None:
        body["bandwidth_limit"] = parse_rate(args.bandwidth_limit, "--bandwidth-limit")
    if args.type == "s3":
        for attr in ("bucket", "prefix", "region", "kms_key_id", "role_arn"):
            if getattr(args, attr) is not None:
                body[attr] = getattr(args, attr)
        return body
    for attr in ("host", "port", "username", "base_path", "host_key"):
        if getattr(args, attr) is not None:
            body[attr] = getattr(args, attr)
    if args.host_key_file:
        body["host_key"] = _read_file(args.host_key_file, "--host-key-file").strip()
    if args.private_key_file:
        body["private_key"] = _read_file(args.private_key_file, "--private-key-file")
    if args.passphrase is not None:
        body["passphrase"] = args.passphrase
    if args.passphrase_env:
        body["passphrase"] = _env_value(args.passphrase_env, "--passphrase-env")
    if args.password is not None:
        body["password"] = args.password
    if args.password_env:
        body["password"] = _env_value(args.password_env, "--password-env")
    return body


def _read_file(path: str, option: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}", field=option) from None


def _env_value(name: str, option: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise CliError(f"environment variable {name} is not set", field=option)
    return value


def _endpoint_table(endpoints: list[dict[str, Any]]) -> Table:
    made = table(*ENDPOINT_COLUMNS)
    for e in endpoints:
        made.add_row(
            cell(short_id(e.get("endpoint_id"))),
            cell(e.get("name")),
            cell(e.get("type")),
            cell(e.get("direction")),
            status_cell(e.get("status")),
            cell(e.get("status_reason")),
        )
    return made


def cmd_endpoints_add(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    created = client.request("POST", "/endpoints", endpoint_body(args))
    if args.wait:
        created = wait_for_endpoint(client, created["endpoint_id"], args.wait)
    if args.json:
        _emit_json(created)
    else:
        out.print(_endpoint_table([created]))
        if created.get("external_id"):
            out.print(
                say("external_id: {}", created["external_id"])
                + "  (the sts:ExternalId your role's trust policy must require; see "
                "`ferry endpoints add --help`)"
            )
    if args.wait and created.get("status") != "ACTIVE":
        raise CliError(
            f"endpoint {created['endpoint_id']} is {created.get('status')}: "
            f"{created.get('status_reason') or 'not ACTIVE'}"
        )
    return 0


def endpoint_patch_body(args: argparse.Namespace) -> dict[str, Any]:
    """The PATCH /endpoints/{id} body: only what was given (``--bandwidth-limit none`` sends
    null, lifting the cap); new credentials are read from files or variables, never echoed."""
    body: dict[str, Any] = {}
    for attr in ("name", "direction", "max_concurrency", "host_key"):
        if getattr(args, attr) is not None:
            body[attr] = getattr(args, attr)
    if args.bandwidth_limit is not None:
        body["bandwidth_limit"] = parse_rate(
            args.bandwidth_limit, "--bandwidth-limit", allow_none=True
        )
    if args.host_key_file:
        body["host_key"] = _read_file(args.host_key_file, "--host-key-file").strip()
    if args.private_key_file:
        body["private_key"] = _read_file(args.private_key_file, "--private-key-file")
    if args.password_env:
        body["password"] = _env_value(args.password_env, "--password-env")
    if args.passphrase_env:
        body["passphrase"] = _env_value(args.passphrase_env, "--passphrase-env")
    if not body:
        raise CliError("nothing to change: give at least one option (see --help)")
    return body


def cmd_endpoints_update(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    body = endpoint_patch_body(args)
    endpoint_id = resolve_id(client, "endpoint", args.endpoint_id)
    updated = client.request("PATCH", f"/endpoints/{endpoint_id}", body)
    if args.json:
        _emit_json(updated)
    else:
        out.print(kv_table(updated))
    return 0


def cmd_endpoints_list(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    payload = client.request("GET", "/endpoints", query={"limit": args.limit})
    endpoints = _items(payload, "endpoints")
    if args.json:
        _emit_json(payload)
    else:
        out.print(_endpoint_table(endpoints))
    return 0


def cmd_endpoints_show(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    endpoint_id = resolve_id(client, "endpoint", args.endpoint_id)
    found = client.request("GET", f"/endpoints/{endpoint_id}")
    if args.json:
        _emit_json(found)
    else:
        out.print(kv_table(found))
    return 0


def cmd_endpoints_state(args: argparse.Namespace) -> int:
    """disable / enable / validate (POST) and retire (DELETE). ``enable`` of a
    VALIDATION_FAILED endpoint re-runs validation (status PENDING_VALIDATION); ``--wait`` then
    waits for the verdict and exits non-zero unless the endpoint is ACTIVE."""
    client = ApiClient.from_args(args)
    args.endpoint_id = resolve_id(client, "endpoint", args.endpoint_id)
    if args.endpoint_command == "retire":
        found = client.request("DELETE", f"/endpoints/{args.endpoint_id}")
    else:
        found = client.request("POST", f"/endpoints/{args.endpoint_id}/{args.endpoint_command}")
    found = found or {}
    wait = getattr(args, "wait", None)
    if wait and found.get("status") == "PENDING_VALIDATION":
        found = wait_for_endpoint(client, args.endpoint_id, wait, after=found.get("version"))
    if args.json:
        _emit_json(found)
    else:
        status = found.get("status", "ok")
        note = ""
        if status == "PENDING_VALIDATION":
            note = " (validation re-run; `ferry endpoints show` for the verdict)"
        elif found.get("status_reason") and status != "ACTIVE":
            note = f" ({found['status_reason']})"
        out.print(say("endpoint {}: {}{}", args.endpoint_id, status, note))
    if wait and found.get("status") != "ACTIVE":
        raise CliError(
            f"endpoint {args.endpoint_id} is {found.get('status')}: "
            f"{found.get('status_reason') or 'not ACTIVE'}"
        )
    return 0


# ------------------------------------------------------------------------------------------
# Jobs
# ------------------------------------------------------------------------------------------


def parse_location(value: str, option: str) -> dict[str, str]:
    endpoint_id, sep, path = value.partition(":")
    if not sep or not endpoint_id or not path:
        raise CliError(f"{option} must be ENDPOINT_ID:PATH, got {value!r}", field=option)
    return {"endpoint_id": endpoint_id, "path": path}


def transfer_body(args: argparse.Namespace, client: ApiClient | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.overwrite:
        options["overwrite"] = True
    if args.post_action:
        options["post_action"] = args.post_action
    if args.move_to:
        options["move_to"] = args.move_to
    if args.verify:
        options["verify"] = args.verify
    if args.max_attempts is not None:
        options["max_attempts"] = args.max_attempts
    if args.bandwidth_limit is not None:
        options["bandwidth_limit"] = parse_rate(args.bandwidth_limit, "--bandwidth-limit")
    body: dict[str, Any] = {
        "source": parse_location(args.source, "--from"),
        "target": parse_location(args.target, "--to"),
    }
    if client is not None:  # short endpoint ids → full ids
        for key, option in (("source", "--from"), ("target", "--to")):
            body[key]["endpoint_id"] = resolve_id(
                client, "endpoint", body[key]["endpoint_id"], field=option
            )
    if options:
        body["options"] = options
    if getattr(args, "no_dedupe", False):
        body["dedupe"] = False
    return body


def cmd_transfer(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    created = client.request("POST", "/transfers", transfer_body(args, client), headers=headers)
    if args.watch:
        return watch_job(client, created["job_id"], as_json=args.json, timeout=args.timeout)
    if args.json:
        _emit_json(created)
    elif created.get("deduplicated"):
        basis = {
            "idempotency_key": "same Idempotency-Key",
            "content": "same request and source content",
            "request": "same request; the source could not be looked up",
        }.get(str(created.get("dedupe")), "same request")
        out.print(
            say("already submitted as job {} ({}; ", created["job_id"], created.get("status"))
            + f"{basis}; --no-dedupe for a new job)"
        )
    else:
        out.print(say("job {}: {}", created["job_id"], created.get("status")))
    return 0


def fetch_job(client: ApiClient, job_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.request("GET", f"/jobs/{job_id}")
    return found


def watch_job(client: ApiClient, job_id: str, *, as_json: bool, timeout: float) -> int:
    """Follow a job until a final status: a progress bar, or JSON lines on each change."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    if as_json:
        last = None
        while True:
            job = _fetch_or_pending(client, job_id)
            snapshot = (job.get("status"), job.get("bytes_committed"), job.get("attempt"))
            if snapshot != last:
                sys.stdout.write(json.dumps(job, default=str) + "\n")
                sys.stdout.flush()
                last = snapshot
            if job.get("status") in FINAL_STATUSES or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    else:
        rate = RateMeter()
        with Progress(
            TextColumn("[bold]{task.fields[status]:<10}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rate]:>11}"),
            TextColumn("{task.fields[eta]}"),
            TimeElapsedColumn(),
            console=err,
        ) as progress:
            task = progress.add_task(job_id, total=None, status="…", rate="", eta="")
            while True:
                job = _fetch_or_pending(client, job_id)
                total = job.get("bytes_total")
                speed, eta = rate.update(job)
                progress.update(
                    task,
                    total=total or None,
                    completed=job.get("bytes_committed") or 0,
                    status=job.get("status", ""),
                    rate=f"{human_bytes(speed)}/s" if speed else "",
                    eta=f"ETA {eta}" if eta else "",
                )
                if job.get("status") in FINAL_STATUSES or time.monotonic() > deadline:
                    if job.get("status") == "SUCCEEDED" and total:
                        progress.update(task, completed=total)
                    break
                time.sleep(0.3)
        out.print(job_table([job]))
        if job.get("error_message"):
            out.print(say("[red]{}[/]: {}", job.get("error_code"), job["error_message"]))
    status = job.get("status")
    note = cancel_note(job)
    if note and not as_json:
        out.print(note)
    if status == "SUCCEEDED":
        return 0
    if status not in FINAL_STATUSES:
        err.print(f"[yellow]timed out after {timeout:.0f} s; job is {status}[/]")
        return 3
    return 1


def cancel_note(job: dict[str, Any]) -> str | None:
    """What became of a cancel request: pending, honoured, or too late (delivered)."""
    if not job.get("cancel_requested"):
        return None
    status = job.get("status")
    if status == "CANCELLED":
        return "cancel: cancelled (nothing delivered)"
    if job.get("cancel_outcome") == "too_late" or status == "SUCCEEDED":
        return "cancel: too late: delivered (the file was at the target before the cancel)"
    if status in FINAL_STATUSES:
        return f"cancel: the job ended {status} before the cancel was honoured"
    return "cancel requested: the executor stops at its next commit point"


def _fetch_or_pending(client: ApiClient, job_id: str) -> dict[str, Any]:
    try:
        return fetch_job(client, job_id)
    except CliError as error:
        if error.status == 404:  # the read model lags the command by a moment
            return {"job_id": job_id, "status": "RECEIVED"}
        raise


def cmd_status(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    args.job_id = resolve_id(client, "job", args.job_id)
    if args.watch:
        return watch_job(client, args.job_id, as_json=args.json, timeout=args.timeout)
    job = fetch_job(client, args.job_id)
    if args.json:
        _emit_json(job)
    else:
        out.print(job_table([job]))
        if job.get("error_message"):
            out.print(say("[red]{}[/]: {}", job.get("error_code"), job["error_message"]))
        note = cancel_note(job)
        if note:
            out.print(note)
    return 1 if job.get("status") in ("FAILED", "CANCELLED") else 0


def cmd_jobs(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    query = {
        "status": args.status,
        "limit": args.limit,
        "since": args.since,
        "until": args.until,
        "next_token": args.next_token,
    }
    payload = client.request("GET", "/jobs", query=query)
    if args.json:
        _emit_json(payload)
        return 0
    out.print(job_table(_items(payload, "jobs")))
    token = payload.get("next_token") if isinstance(payload, dict) else None
    if token:
        out.print(say("more: ferry jobs --next-token {}", token))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    kind = "endpoints" if args.endpoint else "jobs"
    full_id = resolve_id(client, "endpoint" if args.endpoint else "job", args.id)
    payload = client.request("GET", f"/{kind}/{full_id}/events")
    if args.json:
        _emit_json(payload)
    else:
        out.print(events_table(_items(payload, "events")))
    return 0


def cmd_job_action(args: argparse.Namespace) -> int:
    client = ApiClient.from_args(args)
    args.job_id = resolve_id(client, "job", args.job_id)
    result = client.request("POST", f"/jobs/{args.job_id}/{args.action}") or {}
    if args.json and not getattr(args, "wait", None):
        _emit_json(result)
    elif args.action == "redrive":
        out.print(say("redriven as job {} ({})", result.get("job_id"), result.get("status")))
    elif result.get("status") == "CANCELLED":
        out.print(say("job {}: cancelled", args.job_id))
    else:
        out.print(
            say("cancel requested for job {} ({}): ", args.job_id, result.get("status"))
            + "the executor stops at its next commit point, unless the file is already delivered"
        )
    if args.action == "cancel" and getattr(args, "wait", None):
        if watch_job(client, args.job_id, as_json=args.json, timeout=args.wait) == 3:
            return 3  # timed out
        # the cancel happened (0), or the file was delivered first / the job ended otherwise (1)
        return 0 if fetch_job(client, args.job_id).get("status") == "CANCELLED" else 1
    return 0


# ------------------------------------------------------------------------------------------
# Parser
# ------------------------------------------------------------------------------------------


class _CommandListFormatter(argparse.RawDescriptionHelpFormatter):
    """One line per command in ``ferry --help``: argparse measures subcommand names without the
    indent it then prints them with, so a long name would push its help to the next line."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=24)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            names = [len(self._format_action_invocation(a)) for a in action._get_subactions()]
            indented = max(names, default=0) + self._current_indent + self._indent_increment
            self._action_max_length = max(self._action_max_length, indented)


ID_HELP = "the id, or a unique prefix of at least 6 characters (tables show 8)"

MAIN_EPILOG = """\
examples:
  ferry up                                   # then, from any directory:
  ferry endpoints add --name in --type s3 --bucket landing --direction INBOUND --wait
  ferry transfer --from 1a2b3c4d:big.bin --to 5e6f7a8b:copy/big.bin --watch
  ferry jobs --status FAILED
  ferry events 9c0d1e2f

`ferry COMMAND --help` for each command's options and examples. The console is at
<API URL>/console (`ferry up` prints it).
"""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        default=None,
        help="the local stack's directory (default: FERRY_DATA_DIR, else ./.ferry if it has a "
        "config, else the one the last `ferry up` wrote to ~/.config/ferry)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output (JSON)")

    parser = argparse.ArgumentParser(
        prog="ferry",
        description="Ferry: managed file transfer (SFTP and S3) — run the local stack and drive "
        "the Ferry API.",
        epilog=MAIN_EPILOG,
        formatter_class=_CommandListFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, epilog: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=text,
            description=text[0].upper() + text[1:] + ".",
            epilog="examples:\n" + epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kwargs,
        )

    up = command(
        "up",
        "run the local stack in the foreground (Ctrl-C stops it)",
        "  ferry up\n  ferry up --port 8081 --moto-port 0 --data-dir /tmp/ferry\n",
        parents=[common],
    )
    up.add_argument(
        "--port", type=int, default=None,
        help=f"API port (default {DEFAULT_API_PORT}, or a free one if taken; 0: any free port)",
    )  # fmt: skip
    up.add_argument(
        "--moto-port", type=int, default=None,
        help=f"moto server port (default {DEFAULT_MOTO_PORT}, or a free one if taken; 0: any)",
    )  # fmt: skip
    up.set_defaults(func=cmd_up)

    demo = command(
        "demo",
        "the local stack + an SFTP server + a transfer per flow",
        "  ferry demo\n  ferry demo --size-mb 50 --exit\n",
        parents=[common],
    )
    demo.add_argument(
        "--port", type=int, default=None,
        help=f"API port (default {DEFAULT_API_PORT}, or a free one if taken; 0: any free port)",
    )  # fmt: skip
    demo.add_argument(
        "--moto-port", type=int, default=None,
        help=f"moto server port (default {DEFAULT_MOTO_PORT}, or a free one if taken; 0: any)",
    )  # fmt: skip
    demo.add_argument(
        "--sftp-port", type=int, default=None,
        help=f"SFTP server port (default {DEFAULT_SFTP_PORT}, or a free one if taken; 0: any)",
    )  # fmt: skip
    demo.add_argument("--size-mb", type=int, default=200, help="size of the large demo file (MB)")
    demo.add_argument("--exit", action="store_true", help="stop everything when done")
    demo.add_argument("--timeout", type=float, default=600, help="per-step timeout, seconds")
    demo.set_defaults(func=cmd_demo)

    from ferry.cli_keys import register as register_keys

    register_keys(sub, common)  # keys create|list|revoke
    from ferry.cli_audit import register as register_audit

    register_audit(sub, common)  # audit verify|checkpoint|events
    from ferry.cli_replay import register as register_replay

    register_replay(sub, common)  # replay --since --until --to-queue|--to-bus

    ep = command(
        "endpoints",
        "register and manage endpoints (SFTP servers, S3 buckets)",
        "  ferry endpoints add --name in --type s3 --bucket landing --direction INBOUND --wait\n"
        "  ferry endpoints list\n  ferry endpoints show 1a2b3c4d\n"
        "  ferry endpoints validate 1a2b3c4d --wait\n"
        "  ferry endpoints update 1a2b3c4d --bandwidth-limit 20MB/s\n",
    )
    ep_sub = ep.add_subparsers(dest="endpoints_command", required=True, metavar="ACTION")
    add = ep_sub.add_parser(
        "add",
        parents=[common],
        help="register an endpoint",
        epilog=ENDPOINTS_ADD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("--name", required=True, help="a name, unique per customer (ignoring case)")
    add.add_argument("--type", required=True, choices=["s3", "sftp"], help="the endpoint's kind")
    add.add_argument(
        "--direction",
        choices=["INBOUND", "OUTBOUND", "BOTH"],
        help="INBOUND: a source; OUTBOUND: a target; BOTH",
    )
    add.add_argument("--max-concurrency", type=int, help="transfers at once using it (default 4)")
    add.add_argument("--bandwidth-limit", metavar="RATE", help=BANDWIDTH_HELP)
    add.add_argument("--bucket", help="s3: the bucket")
    add.add_argument("--prefix", help="s3: key prefix every path is under (e.g. in/)")
    add.add_argument("--region", help="s3: the bucket's region (default: the deployment's)")
    add.add_argument("--kms-key-id", help="s3: SSE-KMS key for objects Ferry writes")
    add.add_argument(
        "--role-arn",
        help="s3: a role in your account Ferry assumes (with the endpoint's external_id)",
    )
    add.add_argument("--host", help="sftp: host name or address")
    add.add_argument("--port", type=int, help="sftp: port (default 22)")
    add.add_argument("--username", help="sftp: user name")
    add.add_argument("--base-path", help="sftp: directory every path is under (e.g. /upload)")
    add.add_argument("--host-key", help="OpenSSH host key line or SHA256: fingerprint")
    add.add_argument("--host-key-file", help="file holding the host key line")
    add.add_argument("--private-key-file", help="sftp: the private key to log in with")
    add.add_argument("--passphrase", help="private key passphrase (prefer --passphrase-env)")
    add.add_argument("--passphrase-env", help="read the passphrase from this variable")
    add.add_argument("--password", help="SFTP password (prefer --password-env)")
    add.add_argument("--password-env", help="read the password from this variable")
    add.add_argument(
        "--wait",
        type=float,
        nargs="?",
        const=60.0,
        default=None,
        help="wait (seconds, default 60) until validated; non-zero exit unless ACTIVE",
    )
    add.set_defaults(func=cmd_endpoints_add)
    upd = ep_sub.add_parser(
        "update",
        parents=[common],
        help="change an endpoint's settings or credentials (only the options given)",
        epilog="  ferry endpoints update 1a2b3c4d --bandwidth-limit 50MB/s\n"
        "  ferry endpoints update 1a2b3c4d --bandwidth-limit none   # lift the cap\n"
        "  ferry endpoints update 1a2b3c4d --password-env PARTNER_PW --max-concurrency 2\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upd.add_argument("endpoint_id", help=ID_HELP)
    upd.add_argument("--name", help="a new name, unique per customer (ignoring case)")
    upd.add_argument("--direction", choices=["INBOUND", "OUTBOUND", "BOTH"], help="a new direction")
    upd.add_argument("--max-concurrency", type=int, help="transfers at once using it")
    upd.add_argument(
        "--bandwidth-limit", metavar="RATE", help=BANDWIDTH_HELP + "; none lifts the cap"
    )
    upd.add_argument("--host-key", help="sftp: a new pinned host key line or SHA256: fingerprint")
    upd.add_argument("--host-key-file", help="sftp: file holding the new host key line")
    upd.add_argument("--private-key-file", help="sftp: a new private key to log in with")
    upd.add_argument("--passphrase-env", help="read the new key's passphrase from this variable")
    upd.add_argument("--password-env", help="read the new SFTP password from this variable")
    upd.set_defaults(func=cmd_endpoints_update)
    ls = ep_sub.add_parser("list", parents=[common], help="this customer's endpoints")
    ls.add_argument("--limit", type=int, help="at most this many (1-100)")
    ls.set_defaults(func=cmd_endpoints_list)
    show = ep_sub.add_parser("show", parents=[common], help="one endpoint")
    show.add_argument("endpoint_id", help=ID_HELP)
    show.set_defaults(func=cmd_endpoints_show)
    for action, text in (
        ("disable", "disable an endpoint"),
        ("enable", "enable an endpoint (re-validates one that failed validation)"),
        ("validate", "re-run validation (e.g. after fixing the server, bucket or role)"),
        ("retire", "retire an endpoint for good (refused while jobs or enabled routes use it)"),
    ):
        p = ep_sub.add_parser(action, parents=[common], help=text)
        p.add_argument("endpoint_id", help=ID_HELP)
        if action in ("enable", "validate"):
            p.add_argument(
                "--wait",
                type=float,
                nargs="?",
                const=60.0,
                default=None,
                help="wait (seconds, default 60) for the verdict; non-zero exit unless ACTIVE",
            )
        p.set_defaults(func=cmd_endpoints_state, endpoint_command=action)

    tr = command(
        "transfer",
        "submit a transfer job",
        "  ferry transfer --from 1a2b3c4d:big.bin --to 5e6f7a8b:2024/big.bin --watch\n"
        "  ferry transfer --from SRC:in/a.csv --to DST:a.csv --post-action move --move-to done/\n",
        parents=[common],
    )
    tr.add_argument(
        "--from", dest="source", required=True, metavar="ENDPOINT_ID:PATH",
        help="the source file (endpoint id or a unique prefix of it, ':', the path)",
    )  # fmt: skip
    tr.add_argument(
        "--to", dest="target", required=True, metavar="ENDPOINT_ID:PATH",
        help="where it goes (endpoint id or prefix, ':', the path)",
    )  # fmt: skip
    tr.add_argument("--overwrite", action="store_true", help="replace an existing target file")
    tr.add_argument(
        "--post-action",
        choices=["none", "delete", "move"],
        help="what to do with the source once delivered (default none)",
    )
    tr.add_argument("--move-to", help="with --post-action move: the source-side directory")
    tr.add_argument(
        "--verify",
        choices=["size", "digest", "reread"],
        help="how delivery is checked (default digest)",
    )
    tr.add_argument("--max-attempts", type=int, help="attempts before FAILED (default 5)")
    tr.add_argument(
        "--bandwidth-limit",
        metavar="RATE",
        help="at most this byte rate for this job (e.g. 10MB/s; the endpoints' caps apply too)",
    )
    tr.add_argument(
        "--idempotency-key", help="the same key (24 h) returns the same job, never a second one"
    )
    tr.add_argument(
        "--no-dedupe",
        action="store_true",
        help="always a new job (default: the same request for the same source content within "
        "10 minutes returns the earlier job)",
    )
    tr.add_argument(
        "--watch", action="store_true", help="follow it until it finishes (rate and ETA)"
    )
    tr.add_argument(
        "--timeout", type=float, default=3600, help="with --watch: give up after N seconds"
    )
    tr.set_defaults(func=cmd_transfer)

    st = command(
        "status",
        "a job's status and progress",
        "  ferry status 1a2b3c4d\n  ferry status 1a2b3c4d --watch\n"
        "  ferry status 1a2b3c4d --watch --json   # one JSON line per change\n",
        parents=[common],
    )
    st.add_argument("job_id", help=ID_HELP)
    st.add_argument("--watch", action="store_true", help="follow it until it finishes (rate, ETA)")
    st.add_argument(
        "--timeout", type=float, default=3600, help="with --watch: give up after N seconds"
    )
    st.set_defaults(func=cmd_status)

    jobs = command(
        "jobs",
        "this customer's jobs, newest first",
        "  ferry jobs\n  ferry jobs --status FAILED\n"
        "  ferry jobs --since 2026-01-02T00:00:00Z --limit 100\n",
        parents=[common],
    )
    jobs.add_argument(
        "--status",
        choices=["QUEUED", "RUNNING", "RETRY_SCHEDULED", "SUCCEEDED", "FAILED", "CANCELLED"],
        help="only jobs in this status",
    )
    jobs.add_argument("--limit", type=int, help="at most this many (1-100, default 50)")
    jobs.add_argument("--since", help="created at or after (ISO 8601)")
    jobs.add_argument("--until", help="created at or before (ISO 8601)")
    jobs.add_argument("--next-token", help="the next page (printed under the table)")
    jobs.set_defaults(func=cmd_jobs)

    ev = command(
        "events",
        "a job's audit trail (or an endpoint's history)",
        "  ferry events 1a2b3c4d\n  ferry events 5e6f7a8b --endpoint\n",
        parents=[common],
    )
    ev.add_argument("id", metavar="JOB_ID", help=ID_HELP)
    ev.add_argument("--endpoint", action="store_true", help="the id is an endpoint's")
    ev.set_defaults(func=cmd_events)

    for action, text, example in (
        ("cancel", "cancel a job (honoured at its next commit point)",
         "  ferry cancel 1a2b3c4d\n  ferry cancel 1a2b3c4d --wait\n"),
        ("redrive", "re-run a FAILED or CANCELLED job as a new job",
         "  ferry redrive 1a2b3c4d\n"),
    ):  # fmt: skip
        p = command(action, text, example, parents=[common])
        p.add_argument("job_id", help=ID_HELP)
        if action == "cancel":
            p.add_argument(
                "--wait",
                type=float,
                nargs="?",
                const=600.0,
                default=None,
                help="follow the job (seconds, default 600) until final: cancelled, or too late",
            )
        p.set_defaults(func=cmd_job_action, action=action)

    proj = command(
        "projections", "read models (rebuild from the event store)", "  ferry projections rebuild\n"
    )
    proj_sub = proj.add_subparsers(dest="projections_command", required=True, metavar="ACTION")
    rb = proj_sub.add_parser(
        "rebuild", parents=[common], help="drop and replay every read model from the event store"
    )
    rb.set_defaults(func=cmd_projections_rebuild)

    from ferry.cli_routes import register as register_routes

    register_routes(sub, ApiClient.from_args)
    from ferry.cli_consumers import register as register_consumers

    register_consumers(sub)
    from ferry.cli_subscriptions import register as register_subscriptions

    register_subscriptions(sub, ApiClient.from_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except CliError as error:
        where = f" [field: {error.field}]" if error.field else ""
        if getattr(args, "json", False):
            payload: dict[str, Any] = {"error": {"message": error.message}}
            if error.field:
                payload["error"]["field"] = error.field
            if error.status:
                payload["error"]["status"] = error.status
            sys.stderr.write(json.dumps(payload) + "\n")
        else:
            err.print(f"[red]error:[/] {escape(error.message + where)}")
        return 2 if error.status is None else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
