"""``ferry replay`` — re-publish historic events from the event store to a new consumer (wired
into ferry/cli.py with ``register(subparsers, common)``).

    ferry replay --since 2025-01-01T00:00:00Z --until 2026-03-31T23:59:59Z --customer acme \\
        --detail-type JobSucceeded --to-queue https://sqs.eu-west-1.amazonaws.com/1111/acme-new
    ferry replay --since … --until … --to-bus acme-audit [--rate 50] [--restart] [--state FILE]

Reads the customer-and-time index with the stack's credentials (like ``ferry audit``: an
operator's tool), every customer unless ``--customer``; each event is sent once per replay with
``detail.replayed = true`` (docs/events.md, "Replay"). The state file (default
``<data-dir>/replays/<replay key>.json``) lets a rerun of the same command resume where an
interrupted one stopped; ``--restart`` starts over. Exit 0 when done, 1 when publishing failed
(rerun to resume), 2 on bad arguments (Ferry's own bus or queues are refused).
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

from ferry.cli_audit_common import (
    audit_context,
    cli_error,
    customers_of,
    err,
    out,
    parse_customer,
    parse_time,
)


def _client(args: argparse.Namespace, service: str) -> Any:
    from ferry.cli_common import load_config

    config = load_config(args)
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or config.get("aws_endpoint")
    region = str(config.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    if endpoint:
        from ferry.local import bootstrap

        return bootstrap.aws_client(service, str(endpoint), region)
    import boto3

    make: Any = boto3.client  # the service name is a variable (no literal overload)
    return make(service, region_name=region)


def _deployments() -> list[Any]:
    from ferry import names as n

    prefix = os.environ.get(n.ENV_RESOURCE_PREFIX) or "ferry"
    return [n.ResourceNames(prefix), n.ResourceNames()]


def _rate(value: str) -> float:
    from services.projections.replay import MAX_RATE

    try:
        rate = float(value)
    except ValueError:
        rate = 0.0
    if not 0 < rate <= MAX_RATE:
        raise cli_error(
            f"--rate: events per second, more than 0 and at most {MAX_RATE:g}", "--rate"
        )
    return rate


def cmd_replay(args: argparse.Namespace) -> int:
    from ferry.cli_common import data_dir_of
    from ferry.errors import FerryError
    from services.projections.replay import Target, plan, remaining, replay, start_state
    from services.projections.replay_adapters import (
        EventBridgePublisher,
        JsonFileStateStore,
        SqsPublisher,
    )

    def option(field: str | None) -> str | None:
        return field if not field or field.startswith("--") else f"--{field}"

    customer = parse_customer(args.customer)
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    rate = _rate(args.rate)
    target = Target("queue", args.to_queue) if args.to_queue else Target("bus", args.to_bus)
    detail_types = [t for value in args.detail_type or [] for t in value.split(",") if t]
    try:  # every argument is checked before any AWS call
        plan(since, until, [customer or "-"], detail_types, target, _deployments())
    except FerryError as error:
        raise cli_error(error.message, option(error.field)) from None
    from botocore.exceptions import BotoCoreError, ClientError

    from ferry.cli_common import CliError

    try:
        audit, keys = audit_context(args)
        customers = customers_of(audit, keys, customer)
    except (BotoCoreError, ClientError) as error:
        raise CliError(f"cannot list the customers: {error}", status=1) from None
    scope = None if customer else "*"
    replay_plan = plan(since, until, customers, detail_types, target, _deployments(), scope=scope)
    path = Path(args.state) if args.state else data_dir_of(args) / "replays" / (
        replay_plan.key[:16] + ".json"
    )  # fmt: skip
    store = JsonFileStateStore(path)
    try:
        state = start_state(replay_plan, store, restart=args.restart)
    except FerryError as error:
        raise cli_error(error.message, option(error.field)) from None
    if state.done:
        message = f"already complete: {state.total_sent} events sent (--restart to send again)"
        _report(args, {"done": True, "sent": 0, "total": state.total_sent, "state": str(path)})
        if not args.json:
            err.print(message)
        return 0
    if target.kind == "queue":
        publisher: Any = SqsPublisher(_client(args, "sqs"), target.value)
    else:
        publisher = EventBridgePublisher(_client(args, "events"), target.value)

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    try:
        todo = remaining(audit.index, replay_plan, state)
    except (BotoCoreError, ClientError) as error:
        raise CliError(f"cannot read the event store's index: {error}", status=1) from None
    started = time.monotonic()

    def shown(p: Any) -> None:
        measured = p.sent / max(time.monotonic() - started, 1e-6)
        bar.update(task, completed=p.sent, rate=f"{measured:.0f}")

    columns = (
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} ev/s"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=err, transient=True, disable=args.json) as bar:
            task = bar.add_task("replay", total=todo, rate="-")
            report = replay(
                audit.index,
                publisher,
                store,
                replay_plan,
                state,
                rate=rate,
                progress=shown,
            )
    except FerryError as error:
        raise cli_error(error.message, option(error.field)) from None
    except Exception as error:  # a publish that failed: the state keeps what was confirmed
        err.print(
            f"[red]error:[/] replay stopped after {state.total_sent} events: {escape(str(error))}; "
            "rerun the same command to resume"
        )
        if args.json:
            sys.stderr.write(json.dumps({"error": {"message": str(error)}}) + "\n")
        return 1
    summary = {"done": True, **report.as_dict(), "customers": customers, "state": str(path)}
    _report(args, summary)
    if not args.json:
        out.print(
            f"replayed {report.sent} events ({report.total} in this replay, "
            f"{report.skipped} already sent before) to {target.value} "
            f"in {report.seconds:.1f} s"
        )
        if report.out_of_order:
            err.print(
                f"[yellow]warning:[/] {report.out_of_order} events came after a later version "
                "of their stream (index time out of version order)"
            )
    return 0


def _report(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from services.projections.replay import DEFAULT_RATE

    parser = sub.add_parser(
        "replay",
        parents=[common],
        help="re-publish stored events to a new queue or bus",
        description=(
            "Re-publish a period's events from the event store (not the EventBridge archive) "
            "to a new consumer's SQS queue or event bus, each once, marked detail.replayed."
        ),
    )
    parser.add_argument("--since", required=True, help="from this instant (ISO 8601 with zone)")
    parser.add_argument("--until", required=True, help="up to this instant (ISO 8601 with zone)")
    parser.add_argument("--customer", help="one customer (default: every customer)")
    parser.add_argument(
        "--detail-type",
        action="append",
        metavar="TYPE",
        help="only this detail-type (repeat, or comma-separated; default: all)",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-queue", metavar="URL", help="an SQS queue URL (not Ferry's)")
    target.add_argument("--to-bus", metavar="NAME", help="an event bus name or ARN (not Ferry's)")
    parser.add_argument(
        "--rate",
        default=str(DEFAULT_RATE),
        help=f"events per second (default {DEFAULT_RATE:g})",
    )
    parser.add_argument("--state", help="the resume state file (default under --data-dir)")
    parser.add_argument("--restart", action="store_true", help="forget the state: start over")
    parser.set_defaults(func=cmd_replay)
