"""``ferry routes add|list|show|disable|enable|files|retry|unrouted`` — wired into ferry/cli.py with
``register(subparsers, ApiClient.from_args)``.

    ferry routes add --name outbox --from EP:out --pattern '*.csv' --event \\
        --to EP2:'{customer}/{yyyy}/{mm}/' --to EP3:'in/{filename}'
    ferry routes add --name partner --from SFTP_EP:outbound --every 5m --post-action move \\
        --move-to archive --to S3_EP:'partner/{yyyy}/{mm}/{dd}/'
    ferry routes add --file route.json          # the POST /routes body as a file
    ferry routes files ROUTE --name invoice.csv # why was (or wasn't) it sent?
    ferry routes retry ROUTE --path out/invoice.csv   # retry a failed delivery
    ferry routes unrouted S3_ENDPOINT           # objects that arrived and no route took
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from ferry.cli_common import (
    CliError,
    cell,
    emit_json,
    kv_table,
    out,
    resolve_id,
    say,
    short_id,
    status_cell,
    table,
)

ClientFactory = Callable[[argparse.Namespace], Any]
ID_HELP = "the route's id, or a unique prefix of at least 6 characters (tables show 8)"
ENDPOINT_HELP = "the endpoint's id, or a unique prefix of at least 6 characters"


def _error(message: str, field: str | None = None) -> Exception:
    return CliError(message, field=field)


def _location(text: str, flag: str) -> tuple[str, str]:
    endpoint, sep, path = text.partition(":")
    if not sep or not endpoint:
        raise _error(f"{flag} takes ENDPOINT_ID:PATH, got {text!r}", flag.lstrip("-"))
    return endpoint, path


def definition_from(
    args: argparse.Namespace, endpoint: Callable[[str, str], str] | None = None
) -> dict[str, Any]:
    """The POST /routes body from --file or from the flags (the API validates it).
    ``endpoint(value, option)``: a short endpoint id → the full id."""
    full = endpoint or (lambda value, _option: value)
    if args.file:
        try:
            loaded = json.loads(Path(args.file).read_text())
        except (OSError, ValueError) as error:
            raise _error(f"cannot read {args.file}: {error}", "file") from None
        if not isinstance(loaded, dict):
            raise _error(f"{args.file} must hold a JSON object", "file")
        return loaded
    if not args.name or not args.source or not args.to:
        raise _error("--name, --from and at least one --to are required (or --file)", "name")
    source_endpoint, path = _location(args.source, "--from")
    source: dict[str, Any] = {"endpoint_id": full(source_endpoint, "--from"), "path": path}
    for key in ("pattern", "min_size", "max_size"):
        if getattr(args, key) is not None:
            source[key] = getattr(args, key)
    if args.regex:
        source["regex"] = True
    if args.recursive:
        source["recursive"] = True
    targets = []
    for text in args.to:
        target_endpoint, template = _location(text, "--to")
        targets.append(
            {
                "endpoint_id": full(target_endpoint, "--to"),
                "path_template": template or "{filename}",
            }
        )
    if args.event:
        trigger: dict[str, Any] = {"type": "event"}
    elif args.cron:
        trigger = {"type": "schedule", "cron": args.cron}
    else:
        trigger = {"type": "schedule", "every": args.every or "5m"}
    if args.tz:
        trigger["tz"] = args.tz
    body: dict[str, Any] = {
        "name": args.name,
        "source": source,
        "targets": targets,
        "trigger": trigger,
    }
    if args.expect_by or args.expect_every:
        every = args.expect_every or "daily"
        expect: dict[str, Any] = {"every": every, "tz": args.expect_tz or args.tz or "UTC"}
        if args.expect_by:
            expect["by"] = args.expect_by
        if args.expect_min_files is not None:
            expect["min_files"] = args.expect_min_files
        body["expect"] = expect
    stable: dict[str, Any] = {}
    if args.stable_checks is not None:
        stable["checks"] = args.stable_checks
    if args.min_age:
        stable["min_age"] = args.min_age
    if args.done_marker:
        stable["done_marker"] = args.done_marker
    if stable:
        body["stable"] = stable
    for key in ("post_action", "move_to", "max_attempts", "verify"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.overwrite:
        body["overwrite"] = True
    if args.once_per_name:
        body["once_per_name"] = True
    if args.disabled:
        body["enabled"] = False
    return body


def _routes_table(routes: list[dict[str, Any]]) -> Table:
    made = table("route", "name", "status", "trigger", "source", "targets", "enabled")
    for route in routes:
        trigger = route.get("trigger") or {}
        source = route.get("source") or {}
        made.add_row(
            cell(short_id(route.get("route_id"))),
            cell(route.get("name")),
            status_cell(route.get("status")) if route.get("status") else cell(None),
            cell(
                f"{trigger.get('type')} {trigger.get('every') or trigger.get('cron') or ''}"
                + (f" {trigger['tz']}" if trigger.get("tz") else "")
            ),
            cell(
                f"{short_id(source.get('endpoint_id'))}:{source.get('path', '')} "
                f"{source.get('pattern', '')}"
            ),
            cell(
                ", ".join(
                    f"{short_id(t.get('endpoint_id'))}:{t.get('path_template')}"
                    for t in route.get("targets") or []
                )
            ),
            cell(route.get("enabled")),
        )
    return made


def _show(route: dict[str, Any]) -> Table:
    return kv_table(route)


def register(subparsers: Any, client_factory: ClientFactory) -> None:
    """Add ``ferry routes …`` to the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        default=None,
        help="the local stack's directory (default: FERRY_DATA_DIR, else ./.ferry if it has a "
        "config, else the one the last `ferry up` wrote to ~/.config/ferry)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output (JSON)")

    routes = subparsers.add_parser(
        "routes",
        help="files that arrive somewhere become jobs",
        description="Routes: files that arrive somewhere become jobs (push or pull, fan-out).",
        epilog="examples:\n" + (__doc__ or "").split("\n\n", 1)[1].strip("\n") + "\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = routes.add_subparsers(dest="routes_command", required=True, metavar="ACTION")

    def run(fn: Callable[[Any, argparse.Namespace], Any], render: Callable[[Any], Any]) -> Any:
        def command(args: argparse.Namespace) -> int:
            client = client_factory(args)
            if getattr(args, "route_id", None):
                args.route_id = resolve_id(client, "route", args.route_id)
            if getattr(args, "endpoint_id", None):
                args.endpoint_id = resolve_id(client, "endpoint", args.endpoint_id)
            result = fn(client, args)
            if args.json:
                emit_json(result)
            else:
                out.print(render(result))
            return 0

        return command

    def create(client: Any, args: argparse.Namespace) -> Any:
        def endpoint(value: str, option: str) -> str:
            return resolve_id(client, "endpoint", value, field=option)

        return client.request("POST", "/routes", definition_from(args, endpoint))

    add = sub.add_parser("add", parents=[common], help="create a route")
    add.add_argument("--file", help="a JSON file with the whole POST /routes body")
    add.add_argument("--name", help="the route's name")
    add.add_argument("--from", dest="source", metavar="ENDPOINT:PATH", help="source dir/prefix")
    add.add_argument(
        "--to", action="append", metavar="ENDPOINT:TEMPLATE", help="a target (repeat: fan-out)"
    )
    add.add_argument("--pattern", help="glob (default *) or, with --regex, a regex")
    add.add_argument("--regex", action="store_true", help="--pattern is a regular expression")
    add.add_argument("--recursive", action="store_true", help="files in subdirectories too")
    add.add_argument("--min-size", type=int, help="skip files smaller than this (bytes)")
    add.add_argument("--max-size", type=int, help="skip files larger than this (bytes)")
    when = add.add_mutually_exclusive_group()
    when.add_argument("--event", action="store_true", help="S3 push: on Object Created")
    when.add_argument("--every", help="pull schedule, e.g. 5m (default)")
    when.add_argument("--cron", help="pull schedule, 5-field cron")
    add.add_argument("--tz", help="IANA time zone of --cron (default UTC), e.g. Europe/Berlin")
    add.add_argument(
        "--expect-every", help="delivery SLA: daily (default), weekdays or a cron of deadlines"
    )
    add.add_argument("--expect-by", help="delivery SLA deadline HH:MM (daily / weekdays)")
    add.add_argument("--expect-tz", help="time zone of the deadlines (default --tz, else UTC)")
    add.add_argument("--expect-min-files", type=int, help="files needed per window (default 1)")
    add.add_argument(
        "--stable-checks", type=int, help="pull: listings a file must stay unchanged through"
    )
    add.add_argument("--min-age", help="pull: collect a file only this old, e.g. 2m")
    add.add_argument("--done-marker", help="e.g. '{name}.done' or '{stem}.ok'")
    add.add_argument(
        "--post-action",
        choices=["none", "delete", "move"],
        help="the source file once every target has it (default none)",
    )
    add.add_argument("--move-to", help="with --post-action move: the source-side directory")
    add.add_argument("--max-attempts", type=int, help="attempts per job before FAILED")
    add.add_argument(
        "--verify", choices=["size", "digest", "reread"], help="how delivery is checked"
    )
    add.add_argument("--overwrite", action="store_true", help="replace existing target files")
    add.add_argument(
        "--once-per-name", action="store_true", help="a name is sent once, even if rewritten"
    )
    add.add_argument("--disabled", action="store_true", help="create it disabled")
    add.set_defaults(func=run(create, _show))

    ls = sub.add_parser("list", parents=[common], help="this customer's routes")
    ls.set_defaults(
        func=run(
            lambda c, a: c.request("GET", "/routes"),
            lambda payload: _routes_table(list(payload.get("items", []))),
        )
    )

    show = sub.add_parser("show", parents=[common], help="one route (with its status)")
    show.add_argument("route_id", help=ID_HELP)
    show.set_defaults(func=run(lambda c, a: c.request("GET", f"/routes/{a.route_id}"), _show))

    def state_change(action: str) -> Callable[[Any, argparse.Namespace], Any]:
        def call(client: Any, args: argparse.Namespace) -> Any:
            return client.request("POST", f"/routes/{args.route_id}/{action}")

        return call

    for action in ("disable", "enable"):
        p = sub.add_parser(action, parents=[common], help=f"{action} a route")
        p.add_argument("route_id", help=ID_HELP)
        p.set_defaults(func=run(state_change(action), _show))

    files = sub.add_parser(
        "files", parents=[common], help="the ledger: what happened to each file (and why)"
    )
    files.add_argument("route_id", help=ID_HELP)
    files.add_argument("--name", help="a file name or path (substring)")
    files.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    files.set_defaults(
        func=run(
            lambda c, a: c.request(
                "GET", f"/routes/{a.route_id}/files", query={"name": a.name, "limit": a.limit}
            ),
            _files_table,
        )
    )

    retry = sub.add_parser(
        "retry", parents=[common], help="retry a file's failed delivery (redrives its failed jobs)"
    )
    retry.add_argument("route_id", help=ID_HELP)
    retry.add_argument("--path", required=True, help="the file's path, as `routes files` shows")
    retry.set_defaults(
        func=run(
            lambda c, a: c.request("POST", f"/routes/{a.route_id}/files/retry", {"path": a.path}),
            _retried,
        )
    )

    unrouted = sub.add_parser(
        "unrouted", parents=[common], help="objects on an S3 endpoint that no route took (and why)"
    )
    unrouted.add_argument("endpoint_id", help=ENDPOINT_HELP)
    unrouted.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    unrouted.set_defaults(
        func=run(
            lambda c, a: c.request(
                "GET", f"/endpoints/{a.endpoint_id}/unrouted", query={"limit": a.limit}
            ),
            _unrouted_table,
        )
    )


def _retried(payload: dict[str, Any]) -> str:
    jobs = ", ".join(short_id(j) for j in payload.get("job_ids") or []) or "-"
    return say("retrying {} ({}): jobs {}", payload.get("path"), payload.get("file_version"), jobs)


def _unrouted_table(payload: dict[str, Any]) -> Table:
    made = table("key", "size", "version", "reason", "at", "detail")
    for item in payload.get("items", []):
        made.add_row(
            cell(item.get("key")),
            cell(item.get("size")),
            cell(item.get("version")),
            cell(item.get("reason")),
            cell(item.get("at")),
            cell(item.get("detail")),
        )
    return made


def _files_table(payload: dict[str, Any]) -> Table:
    made = table("path", "status", "reason", "first seen", "jobs", "detail")
    for item in payload.get("items", []):
        made.add_row(
            cell(item.get("path")),
            cell(item.get("status")),
            cell(item.get("reason")),
            cell(item.get("first_seen_at")),
            cell(", ".join(short_id(j) for j in item.get("job_ids") or []) or None),
            cell(item.get("detail")),
        )
    return made
