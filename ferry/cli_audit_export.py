"""``ferry audit export`` and ``ferry audit verify --export`` (registered by ferry/cli_audit.py).

    ferry audit export --since 2026-03-01T00:00:00Z --until 2026-03-31T23:59:59Z \\
        [--customer acme] --to s3://bucket/prefix | --to DIR
    ferry audit verify --export DIR | s3://bucket/prefix

``export`` reads the event store's customer-and-time index with the stack's credentials (like
``ferry audit verify``: an operator's or auditor's tool) and writes one JSON Lines file per UTC
day and ``manifest.json`` (docs/audit.md, "Export"). Without ``--customer`` every customer is
exported, each into ``<to>/<customer>/``. ``verify --export`` reads nothing but the export:
exit 0 when it verifies, 1 with the first problem (file, line, stream, version), 2 on bad
arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ferry.cli_audit_common import (
    audit_context,
    cli_error,
    customers_of,
    err,
    out,
    parse_customer,
    parse_time,
    stack_client,
)


def _target(value: str, option: str) -> tuple[str, str] | Path:
    """(bucket, prefix) of an s3:// URL, or a directory; a CLI error naming ``option``."""
    if value.startswith("s3://"):
        from ferry.errors import Invalid
        from services.projections.audit_export_adapters import parse_s3_url

        try:
            return parse_s3_url(value, option)
        except Invalid as error:
            raise cli_error(error.message, option) from None
    if "://" in value:
        raise cli_error(f"{option}: a directory or an s3://bucket/prefix URL", option)
    return Path(value)


def _sink(target: tuple[str, str] | Path, s3: Any) -> Any:
    from services.projections.audit_export import DirectorySink
    from services.projections.audit_export_adapters import S3ExportSink

    if isinstance(target, Path):
        return DirectorySink(target)
    return S3ExportSink(s3, *target)


def cmd_audit_export(args: argparse.Namespace) -> int:
    from rich.progress import Progress, TaskID

    from ferry.errors import FerryError
    from services.projections.audit_export import export_period, export_window

    customer = parse_customer(args.customer)
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    try:
        export_window(since, until)
    except FerryError as error:
        raise cli_error(error.message, f"--{error.field}") from None
    target = _target(args.to, "--to")  # checked before any AWS call
    audit, keys = audit_context(args)
    s3 = stack_client(args, "s3") if not isinstance(target, Path) else None
    names = customers_of(audit, keys, customer)
    results: dict[str, Any] = {}
    with Progress(console=err, transient=True) as progress:
        for name in names:
            task = progress.add_task(f"exporting {name}", total=None)
            where: tuple[str, str] | Path = target
            if not customer:  # every customer: one folder each
                where = (
                    target / name
                    if isinstance(target, Path)
                    else (target[0], f"{target[1]}{name}/")
                )
            sink = _sink(where, s3)

            def advance(n: int, task: TaskID = task) -> None:
                progress.update(task, completed=n)

            try:
                manifest = export_period(audit.index, sink, name, since, until, progress=advance)
            except FerryError as error:
                raise cli_error(f"{name}: {error.message}", f"--{error.field}") from None
            results[name] = {
                "location": manifest["location"],
                "manifest_sha256": manifest["manifest_sha256"],
                "count": manifest["count"],
                "files": [f["name"] for f in manifest["files"]],
            }
    if args.json:
        sys.stdout.write(json.dumps({"exports": results}, indent=2) + "\n")
        return 0
    for name, result in results.items():
        out.print(
            f"{name}: {result['count']} events in {len(result['files'])} files → "
            f"{result['location']} (manifest sha256 {result['manifest_sha256']})"
        )
    return 0


def cmd_verify_export(args: argparse.Namespace) -> int:
    from services.projections.audit_export import verify_export

    target = _target(args.export, "--export")
    if isinstance(target, Path) and not target.is_dir():
        raise cli_error(f"--export: {args.export} is not a directory", "--export")
    source = _sink(target, None if isinstance(target, Path) else stack_client(args, "s3"))
    problems = verify_export(source)
    if args.json:
        document = {
            "ok": not problems,
            "first_problem": problems[0].as_dict() if problems else None,
            "problems": [p.as_dict() for p in problems],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return 0 if not problems else 1
    if not problems:
        out.print(f"ok: {args.export} verifies (sha256, counts, order, hashes, links)")
        return 0
    err.print(f"BROKEN: {problems[0]}")
    if len(problems) > 1:
        err.print(f"({len(problems) - 1} more problem(s); --json lists them all)")
    return 1


def register(audit_sub: Any, common: argparse.ArgumentParser) -> None:
    export = audit_sub.add_parser(
        "export",
        parents=[common],
        help="a period's events as JSON Lines per day + manifest (to a directory or S3)",
        description=(
            "Export a period's events, as EventBridge delivers them plus each event's chain "
            "attributes, one JSON Lines file per UTC day and a manifest (count, first/last event, "
            "sha256 of each file, stream heads). Check it offline with `ferry audit verify "
            "--export`. Events must be sealed (`ferry audit verify` seals older ones)."
        ),
        epilog=(
            "examples:\n"
            "  ferry audit export --customer acme --since 2026-03-01T00:00:00Z \\\n"
            "      --until 2026-03-31T23:59:59Z --to ./audit-2026-03\n"
            "  ferry audit export --since 2026-03-01T00:00:00Z --until 2026-03-02T00:00:00Z \\\n"
            "      --to s3://acme-audit/ferry/2026-03-01   # one folder per customer\n"
            "  ferry audit verify --export ./audit-2026-03"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("--since", required=True, help="from this instant (ISO 8601 with zone)")
    export.add_argument("--until", required=True, help="up to this instant (ISO 8601 with zone)")
    export.add_argument(
        "--customer", help="one customer (default: every customer, one folder each)"
    )
    export.add_argument("--to", required=True, help="a directory or s3://bucket/prefix")
    export.set_defaults(func=cmd_audit_export)
