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
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)

ClientFactory = Callable[[argparse.Namespace], Any]


def _error(message: str, field: str | None = None) -> Exception:
    from ferry.cli_common import CliError

    return CliError(message, field=field)


def _emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _location(text: str, flag: str) -> tuple[str, str]:
    endpoint, sep, path = text.partition(":")
    if not sep or not endpoint:
        raise _error(f"{flag} takes ENDPOINT_ID:PATH, got {text!r}", flag.lstrip("-"))
    return endpoint, path


def definition_from(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /routes body from --file or from the flags (the API validates it)."""
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
    endpoint, path = _location(args.source, "--from")
    source: dict[str, Any] = {"endpoint_id": endpoint, "path": path}
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
        targets.append({"endpoint_id": target_endpoint, "path_template": template or "{filename}"})
    if args.event:
        trigger: dict[str, Any] = {"type": "event"}
    elif args.cron:
        trigger = {"type": "schedule", "cron": args.cron}
    else:
        trigger = {"type": "schedule", "every": args.every or "5m"}
    body: dict[str, Any] = {
        "name": args.name,
        "source": source,
        "targets": targets,
        "trigger": trigger,
    }
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
    table = Table("route_id", "name", "trigger", "source", "targets", "enabled")
    for route in routes:
        trigger = route.get("trigger") or {}
        source = route.get("source") or {}
        table.add_row(
            str(route.get("route_id")),
            str(route.get("name")),
            f"{trigger.get('type')} {trigger.get('every') or trigger.get('cron') or ''}".strip(),
            f"{source.get('endpoint_id')}:{source.get('path', '')} {source.get('pattern', '')}",
            ", ".join(
                f"{t.get('endpoint_id')}:{t.get('path_template')}"
                for t in route.get("targets") or []
            ),
            _cell(route.get("enabled")),
        )
    return table


def _show(route: dict[str, Any]) -> Table:
    table = Table("field", "value", show_header=False)
    for key, value in route.items():
        table.add_row(key, _cell(value))
    return table


def register(subparsers: Any, client_factory: ClientFactory) -> None:
    """Add ``ferry routes …`` to the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", default=None, help="local stack state (default ./.ferry or FERRY_DATA_DIR)"
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")

    routes = subparsers.add_parser("routes", help="files that arrive somewhere become jobs")
    sub = routes.add_subparsers(dest="routes_command", required=True, metavar="ACTION")

    def run(fn: Callable[[Any, argparse.Namespace], Any], render: Callable[[Any], Any]) -> Any:
        def command(args: argparse.Namespace) -> int:
            result = fn(client_factory(args), args)
            if args.json:
                _emit_json(result)
            else:
                out.print(render(result))
            return 0

        return command

    add = sub.add_parser("add", parents=[common], help="create a route")
    add.add_argument("--file", help="a JSON file with the whole POST /routes body")
    add.add_argument("--name")
    add.add_argument("--from", dest="source", metavar="ENDPOINT:PATH", help="source dir/prefix")
    add.add_argument(
        "--to", action="append", metavar="ENDPOINT:TEMPLATE", help="a target (repeat: fan-out)"
    )
    add.add_argument("--pattern", help="glob (default *) or, with --regex, a regex")
    add.add_argument("--regex", action="store_true")
    add.add_argument("--recursive", action="store_true")
    add.add_argument("--min-size", type=int)
    add.add_argument("--max-size", type=int)
    when = add.add_mutually_exclusive_group()
    when.add_argument("--event", action="store_true", help="S3 push: on Object Created")
    when.add_argument("--every", help="pull schedule, e.g. 5m (default)")
    when.add_argument("--cron", help="pull schedule, 5-field cron")
    add.add_argument("--stable-checks", type=int)
    add.add_argument("--min-age")
    add.add_argument("--done-marker", help="e.g. '{name}.done' or '{stem}.ok'")
    add.add_argument("--post-action", choices=["none", "delete", "move"])
    add.add_argument("--move-to")
    add.add_argument("--max-attempts", type=int)
    add.add_argument("--verify", choices=["size", "digest", "reread"])
    add.add_argument("--overwrite", action="store_true")
    add.add_argument("--once-per-name", action="store_true")
    add.add_argument("--disabled", action="store_true", help="create it disabled")
    add.set_defaults(func=run(lambda c, a: c.request("POST", "/routes", definition_from(a)), _show))

    ls = sub.add_parser("list", parents=[common], help="this customer's routes")
    ls.set_defaults(
        func=run(
            lambda c, a: c.request("GET", "/routes"),
            lambda payload: _routes_table(list(payload.get("items", []))),
        )
    )

    show = sub.add_parser("show", parents=[common], help="one route (with its status)")
    show.add_argument("route_id")
    show.set_defaults(func=run(lambda c, a: c.request("GET", f"/routes/{a.route_id}"), _show))

    def state_change(action: str) -> Callable[[Any, argparse.Namespace], Any]:
        def call(client: Any, args: argparse.Namespace) -> Any:
            return client.request("POST", f"/routes/{args.route_id}/{action}")

        return call

    for action in ("disable", "enable"):
        p = sub.add_parser(action, parents=[common], help=f"{action} a route")
        p.add_argument("route_id")
        p.set_defaults(func=run(state_change(action), _show))

    files = sub.add_parser(
        "files", parents=[common], help="the ledger: what happened to each file (and why)"
    )
    files.add_argument("route_id")
    files.add_argument("--name", help="a file name or path (substring)")
    files.add_argument("--limit", type=int, default=100)
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
    retry.add_argument("route_id")
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
    unrouted.add_argument("endpoint_id")
    unrouted.add_argument("--limit", type=int, default=100)
    unrouted.set_defaults(
        func=run(
            lambda c, a: c.request(
                "GET", f"/endpoints/{a.endpoint_id}/unrouted", query={"limit": a.limit}
            ),
            _unrouted_table,
        )
    )


def _retried(payload: dict[str, Any]) -> str:
    jobs = ", ".join(payload.get("job_ids") or []) or "-"
    return f"retrying {payload.get('path')} ({payload.get('file_version')}): jobs {jobs}"


def _unrouted_table(payload: dict[str, Any]) -> Table:
    table = Table("key", "size", "version", "reason", "at", "detail")
    for item in payload.get("items", []):
        table.add_row(
            str(item.get("key")),
            _cell(item.get("size")),
            _cell(item.get("version")),
            _cell(item.get("reason")),
            _cell(item.get("at")),
            _cell(item.get("detail")),
        )
    return table


def _files_table(payload: dict[str, Any]) -> Table:
    table = Table("path", "status", "reason", "first seen", "jobs", "detail")
    for item in payload.get("items", []):
        table.add_row(
            str(item.get("path")),
            str(item.get("status")),
            _cell(item.get("reason")),
            _cell(item.get("first_seen_at")),
            ", ".join(item.get("job_ids") or []) or "-",
            _cell(item.get("detail")),
        )
    return table
