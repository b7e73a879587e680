"""``ferry audit verify|checkpoint|events`` — the operator's audit CLI (wired into ferry/cli.py
with ``register(subparsers, common)``).

    ferry audit verify [--customer acme] [--since 2026-03-01T00:00:00Z] [--stream ID] [--json]
    ferry audit checkpoint [--customer acme]        # an AuditCheckpoint now (default: all)
    ferry audit events --customer acme [--since] [--until] [--type JobSucceeded] [--json]
    ferry audit export --since … --until … [--customer acme] --to DIR|s3://bucket/prefix
    ferry audit verify --export DIR|s3://bucket/prefix   # offline: reads nothing but the export

Like ``ferry keys``, it runs against the stack's AWS resources directly (the local stack's moto
server from ``./.ferry/config.json``, or AWS with ``AWS_ENDPOINT_URL`` unset and
``FERRY_EVENTS_TABLE`` / ``FERRY_AUDIT_BUCKET`` set): an auditor's tool, not a customer's (a
customer uses GET /audit/verify and /audit/events with their API key). ``verify`` exits 1 when a
chain or checkpoint is broken and prints the first break (stream, version, what differs).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.table import Table

from ferry.cli_audit_common import (
    audit_context,
    cli_error,
    customers_of,
    err,
    out,
    parse_customer,
    parse_time,
)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    if args.export is not None:
        if args.customer or args.since or args.stream:
            raise cli_error(
                "--export verifies an export alone (no --customer/--since/--stream)", "--export"
            )
        from ferry.cli_audit_export import cmd_verify_export

        return cmd_verify_export(args)
    customer = parse_customer(args.customer)
    since = parse_time(args.since, "--since")
    audit, keys = audit_context(args)
    reports: dict[str, Any] = {}
    if args.stream:
        if not customer:
            raise cli_error("--stream needs --customer (the stream's owner)", "--stream")
        from ferry.errors import NotFound

        try:
            reports[customer] = audit.verify_stream(customer, args.stream)
        except NotFound as error:
            raise cli_error(error.message, "--stream") from None
    else:
        from rich.progress import Progress

        names = customers_of(audit, keys, customer)
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("verifying", total=len(names))
            for name in names:
                reports[name] = audit.verify_customer(name, since=since).as_dict()
                progress.advance(task)
    from ferry.cli_audit_access import verify_access

    verify_access(args, reports, since, stream=args.stream)  # the access log's chains too
    ok = all(r["ok"] for r in reports.values())
    if args.json:
        sys.stdout.write(json.dumps({"ok": ok, "customers": reports}, indent=2) + "\n")
        return 0 if ok else 1
    table = Table()
    for column in ("customer", "ok", "streams", "events", "sealed", "checkpoints", "events/s"):
        table.add_column(column)
    for name, r in reports.items():
        table.add_row(
            name,
            "ok" if r["ok"] else "BROKEN",
            str(r["streams"]),
            str(r["events"]),
            str(r["sealed"]),
            str(r["checkpoints"]),
            str(r["events_per_second"] or "-"),
        )
    out.print(table)
    for name, r in reports.items():
        for problem in r["problems"]:
            err.print(
                f"{name}: stream {problem['stream_id']} version {problem['version']}: "
                f"{problem['kind']}: {problem['detail']}"
            )
    return 0 if ok else 1


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    from services.projections.audit_checkpoints import checkpoint_all

    audit, keys = audit_context(args)
    customers = customers_of(audit, keys, parse_customer(args.customer))
    written = checkpoint_all(audit, customers)
    from ferry.cli_audit_access import checkpoint_access

    checkpoint_access(args, customers)  # the access log's heads, under access-checkpoints/
    if args.customer:
        written = {args.customer: written.get(args.customer)}
    if args.json:
        sys.stdout.write(json.dumps({"written": written}, indent=2) + "\n")
    else:
        for name, seq in written.items():
            out.print(f"{name}: " + (f"checkpoint {seq} written" if seq else "no change"))
    return 0


def cmd_audit_events(args: argparse.Namespace) -> int:
    customer = parse_customer(args.customer)
    assert customer is not None
    audit, _ = audit_context(args)
    from ferry.errors import FerryError

    token = None
    rows: list[dict[str, Any]] = []
    try:
        while True:
            page = audit.events(
                customer,
                since=parse_time(args.since, "--since"),
                until=parse_time(args.until, "--until"),
                detail_type=args.type,
                limit=500,
                next_token=token,
            )
            rows.extend(page["events"])
            token = page["next_token"]
            if token is None or len(rows) >= args.limit:
                break
    except FerryError as error:
        raise cli_error(error.message, error.field) from None
    rows = rows[: args.limit]
    if args.json:
        sys.stdout.write(json.dumps({"events": rows, "count": len(rows)}, indent=2) + "\n")
        return 0
    table = Table()
    for column in ("occurred_at", "detail-type", "stream_id", "version", "hash"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["occurred_at"][:26],
            row["detail-type"],
            row["stream_id"],
            str(row["version"]),
            (row.get("hash") or "")[:16],
        )
    out.print(table)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    audit = sub.add_parser("audit", help="verify the event store's hash chains (auditor)")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_sub.add_parser(
        "verify", parents=[common], help="walk every chain and checkpoint; exit 1 if broken"
    )
    verify.add_argument("--customer", help="one customer (default: every customer)")
    verify.add_argument("--since", help="only streams changed since (ISO 8601 with zone)")
    verify.add_argument("--stream", help="one stream id (with --customer)")
    verify.add_argument(
        "--export",
        metavar="DIR|s3://bucket/prefix",
        help="verify an export offline instead (files, counts, order, hashes, links)",
    )
    verify.set_defaults(func=cmd_audit_verify)
    checkpoint = audit_sub.add_parser(
        "checkpoint", parents=[common], help="write an AuditCheckpoint now"
    )
    checkpoint.add_argument("--customer", help="one customer (default: every customer)")
    checkpoint.set_defaults(func=cmd_audit_checkpoint)
    events = audit_sub.add_parser(
        "events", parents=[common], help="a customer's events across streams, in time order"
    )
    events.add_argument("--customer", required=True, help="the customer whose events to list")
    events.add_argument("--since", help="from this instant (ISO 8601 with zone)")
    events.add_argument("--until", help="up to this instant (ISO 8601 with zone)")
    events.add_argument("--type", help="a detail-type, e.g. JobSucceeded")
    events.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    events.set_defaults(func=cmd_audit_events)
    from ferry import cli_audit_access, cli_audit_export, cli_audit_exports

    cli_audit_export.register(audit_sub, common)  # ferry audit export
    cli_audit_access.register(audit_sub, common)  # ferry audit access
    cli_audit_exports.register(audit_sub, common)  # ferry audit exports (through the API)
