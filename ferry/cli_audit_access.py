"""``ferry audit access`` — who read what, when (the chained access log; ``ferry.access_log``),
and the access log's part of ``ferry audit verify`` and ``ferry audit checkpoint`` (wired from
``ferry.cli_audit``).

    ferry audit access --since 2026-03-01T00:00:00Z [--until T] [--customer acme] [--key K] [--json]

Like the other audit commands it reads the stack's tables directly (an operator's or auditor's
tool); a customer reads its own with GET /audit/access.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)


def access_audit(args: argparse.Namespace) -> Any:
    """:class:`Audit` over the access-log table and its checkpoints, on the stack's resources."""
    from ferry.cli_audit_common import stack_client
    from ferry.names import ResourceNames
    from services.projections.access_log import AccessAuditSettings, build_access_audit

    ddb, s3 = stack_client(args, "dynamodb"), stack_client(args, "s3")
    settings = AccessAuditSettings()  # the operator's CLI: the stack's own table by default
    if not settings.access_log_table:
        settings = settings.model_copy(
            update={"access_log_table": ResourceNames().access_log_table}
        )
    return build_access_audit(settings=settings, dynamodb_client=ddb, s3_client=s3)


def verify_access(
    args: argparse.Namespace, reports: dict[str, Any], since: Any, *, stream: str | None = None
) -> None:
    """Add each customer's access-log verification to its ``ferry audit verify`` report: the
    streams, events and problems are counted with the event store's; ``access_log`` says how
    much of it was the access log."""
    if stream is not None:
        return  # one event-store stream (--stream): the access log is not asked for
    from services.projections.access_log import deployed

    audit = access_audit(args)
    if not deployed(audit):
        for report in reports.values():
            report["access_log"] = None  # no access-log table in this deployment
        return
    for name, report in reports.items():
        found = audit.verify_customer(name, since=since).as_dict()
        report["access_log"] = {k: found[k] for k in ("ok", "streams", "events", "checkpoints")}
        report["streams"] = report.get("streams", 0) + found["streams"]
        report["events"] = report.get("events", 0) + found["events"]
        report["problems"] = [*report.get("problems", []), *found["problems"]]
        report["ok"] = bool(report.get("ok", True) and found["ok"])


def checkpoint_access(args: argparse.Namespace, customers: list[str]) -> dict[str, Any]:
    """``ferry audit checkpoint``'s access-log part: {customer: seq or None}."""
    from services.projections.access_log import deployed
    from services.projections.audit_checkpoints import checkpoint_all

    audit = access_audit(args)
    return checkpoint_all(audit, customers) if deployed(audit) else {}


def cmd_audit_access(args: argparse.Namespace) -> int:
    from ferry.cli_audit_common import customers_of, parse_customer, parse_time
    from ferry.cli_common import CliError, cell, emit_json, table
    from ferry.errors import FerryError
    from services.projections.access_log import access_page

    only = parse_customer(args.customer)
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    if args.limit < 1:
        raise CliError("--limit: at least 1", field="--limit")
    audit = access_audit(args)
    from services.projections.access_log import deployed

    if not deployed(audit):
        raise CliError("the access log is not deployed in this stack (no access-log table)")
    if only:
        customers = [only]
    else:
        from ferry.cli_audit_common import audit_context

        _, keys = audit_context(args)
        customers = customers_of(audit, keys, None)
    rows: list[dict[str, Any]] = []
    try:
        for customer in customers:
            token = None
            while len(rows) < args.limit:
                page = access_page(
                    audit.index,
                    customer,
                    since=since,
                    until=until,
                    key=args.key,
                    limit=min(500, args.limit - len(rows)),
                    next_token=token,
                )
                rows.extend(e.model_dump() for e in page.entries)
                token = page.next_token
                if token is None:
                    break
    except FerryError as error:
        raise CliError(error.message, field=error.field) from None
    rows.sort(key=lambda r: (r["at"], r["stream_id"], r["version"]))
    if args.json:
        emit_json({"entries": rows, "count": len(rows)})
        return 0
    shown = table("at", "customer", "key", "method", "route", "ids / query", "status", "hash")
    for row in rows:
        key = row["key_id"][:8] + (f" ({row['key_name']})" if row["key_name"] else "")
        what = {**row["resource_ids"], **row["query"]}
        shown.add_row(
            cell(row["at"][:23]),
            cell(row["customer_id"]),
            cell(key),
            cell(row["method"]),
            cell(row["route"]),
            cell(what or None),
            cell(row["status"], "red" if row["status"] >= 400 else None),
            cell(row["hash"][:16]),
        )
    out.print(shown)
    out.print(f"{len(rows)} recorded call(s)")
    return 0


def register(audit_sub: Any, common: argparse.ArgumentParser) -> None:
    access = audit_sub.add_parser(
        "access", parents=[common], help="who read what, when: the chained access log"
    )
    access.add_argument("--since", required=True, help="from this instant (ISO 8601 with zone)")
    access.add_argument("--until", help="up to this instant (ISO 8601 with zone)")
    access.add_argument("--customer", help="one customer (default: every customer)")
    access.add_argument("--key", help="one API key, by id or name")
    access.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    access.set_defaults(func=cmd_audit_access)
