"""``ferry audit exports start|show|list`` — a customer's audit exports through the API (POST
/audit/exports, GET /audit/exports/{id}, GET /audit/exports) with the configured API key: the
export runs as a job in the stack (not in this process), and ``show --download DIR`` fetches every
file by its presigned URL so ``ferry audit verify --export DIR`` checks it offline.

    ferry audit exports start --since 2026-03-01T00:00:00Z --until 2026-04-01T00:00:00Z --wait
    ferry audit exports show ID [--wait] [--download ./audit-2026-03]
    ferry audit exports list
"""

from __future__ import annotations

import argparse
import time
import urllib.request
from pathlib import Path
from typing import Any

from ferry.cli_audit_common import cli_error, err, out, parse_time

FINAL = ("SUCCEEDED", "FAILED")


def _client(args: argparse.Namespace) -> Any:
    from ferry.cli_common import ApiClient

    return ApiClient.from_args(args)


def _wait(client: Any, export_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with err.status(f"export {export_id[:8]}: waiting") as status:
        while True:
            view: dict[str, Any] = client.request("GET", f"/audit/exports/{export_id}")
            status.update(f"export {export_id[:8]}: {view['status']}")
            if view["status"] in FINAL or time.monotonic() > deadline:
                return view
            time.sleep(1.0)


def _print(view: dict[str, Any]) -> None:
    out.print(f"export {view['export_id']}: {view['status']}")
    out.print(f"  period {view['since']} .. {view['until']}")
    if view.get("count") is not None:
        out.print(f"  {view['count']} events in {max(0, len(view['files']) - 1)} file(s)")
    if view.get("manifest_sha256"):
        out.print(f"  manifest sha256 {view['manifest_sha256']}")
    if view.get("error"):
        out.print(f"  failed: {view['error']['code']}: {view['error']['message']}")


def _download(view: dict[str, Any], target: Path) -> None:
    if view["status"] != "SUCCEEDED":
        raise cli_error(f"export is {view['status']}: nothing to download", "--download")
    target.mkdir(parents=True, exist_ok=True)
    for file in view["files"]:
        name = Path(file["name"]).name  # the API names files; never a path
        with urllib.request.urlopen(file["url"], timeout=60) as response:
            (target / name).write_bytes(response.read())
    err.print(f"downloaded {len(view['files'])} file(s) to {target}")
    err.print(f"check it offline: ferry audit verify --export {target}")


def _finish(args: argparse.Namespace, view: dict[str, Any]) -> int:
    if getattr(args, "download", None):
        _download(view, Path(args.download))
    if args.json:
        from ferry.cli_common import emit_json

        emit_json(view)
    else:
        _print(view)
    return 1 if view["status"] == "FAILED" else 0


def cmd_start(args: argparse.Namespace) -> int:
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    assert since is not None and until is not None  # required options
    client = _client(args)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    view = client.request(
        "POST",
        "/audit/exports",
        {"since": since.isoformat(), "until": until.isoformat()},
        headers=headers,
    )
    if args.wait:
        view = _wait(client, view["export_id"], args.timeout)
    return _finish(args, view)


def cmd_show(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.wait:
        view = _wait(client, args.export_id, args.timeout)
    else:
        view = client.request("GET", f"/audit/exports/{args.export_id}")
    return _finish(args, view)


def cmd_list(args: argparse.Namespace) -> int:
    listed = _client(args).request("GET", "/audit/exports", query={"limit": args.limit})
    if args.json:
        from ferry.cli_common import emit_json

        emit_json(listed)
        return 0
    from rich.table import Table

    table = Table()
    for column in ("export", "status", "since", "until", "events", "created"):
        table.add_column(column)
    for e in listed["exports"]:
        count = "" if e.get("count") is None else str(e["count"])
        table.add_row(e["export_id"], e["status"], e["since"], e["until"], count, e["created_at"])
    out.print(table)
    return 0


def register(audit_sub: Any, common: argparse.ArgumentParser) -> None:
    exports = audit_sub.add_parser(
        "exports",
        help="start and follow audit exports through the API (your API key's customer)",
        description=(
            "Audit exports run as jobs in the stack: start one for a period, follow it, "
            "download its files by their presigned URLs (15 minutes) and check them offline "
            "with `ferry audit verify --export DIR`."
        ),
    )
    sub = exports.add_subparsers(dest="exports_command", required=True, metavar="ACTION")
    start = sub.add_parser("start", parents=[common], help="start an export of a period")
    start.add_argument("--since", required=True, help="from this instant (ISO 8601 with zone)")
    start.add_argument("--until", required=True, help="up to this instant (at most 366 days)")
    start.add_argument("--idempotency-key", help="the same key and period: the same export")
    start.add_argument("--wait", action="store_true", help="follow it until it is final")
    start.add_argument("--download", metavar="DIR", help="with --wait: fetch its files to DIR")
    start.add_argument("--timeout", type=float, default=900.0, help="--wait at most (s)")
    start.set_defaults(func=cmd_start)
    show = sub.add_parser("show", parents=[common], help="an export's status and files")
    show.add_argument("export_id", help="the export id")
    show.add_argument("--wait", action="store_true", help="follow it until it is final")
    show.add_argument("--download", metavar="DIR", help="fetch its files to DIR")
    show.add_argument("--timeout", type=float, default=900.0, help="--wait at most (s)")
    show.set_defaults(func=cmd_show)
    listing = sub.add_parser("list", parents=[common], help="your exports, newest first")
    listing.add_argument("--limit", type=int, default=20, help="at most this many (1-100)")
    listing.set_defaults(func=cmd_list)
