"""``ferry subscriptions add|list|show|remove|pause|resume|test|deliveries`` and ``ferry mail`` —
wired into ferry/cli.py with ``register(subparsers, ApiClient.from_args)``.

    ferry subscriptions add --name ops --event JobFailed --webhook https://hooks.example.com/ferry
    ferry subscriptions add --name oncall --event JobFailed --event RouteFileLate \\
        --route ROUTE_ID --email oncall@example.com
    ferry subscriptions deliveries SUB_ID     # every attempt: status code, latency, error
    ferry mail                                # the local stack's caught mail (newest last)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from rich.table import Table
from rich.text import Text

from ferry.cli_common import (
    CliError,
    cell,
    emit_json,
    err,
    kv_table,
    out,
    resolve_id,
    short_id,
    status_cell,
    table,
)

ClientFactory = Callable[[argparse.Namespace], Any]
_emit_json = emit_json


def _error(message: str, field: str | None = None) -> Exception:
    return CliError(message, field=field)


def body_from(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /subscriptions body from the flags (the API validates it)."""
    if bool(args.webhook) == bool(args.email):
        raise _error("give exactly one of --webhook URL or --email ADDRESS", "target")
    target: dict[str, Any]
    if args.webhook:
        target = {"type": "webhook", "url": args.webhook}
        if args.secret_env:
            secret = os.environ.get(args.secret_env)
            if not secret:
                raise _error(f"--secret-env: ${args.secret_env} is not set", "secret")
            target["secret"] = secret
    else:
        target = {"type": "email", "address": args.email}
    wanted = {"route_id": args.route, "endpoint_id": args.endpoint, "job_id": args.job}
    body: dict[str, Any] = {
        "name": args.name,
        "events": args.event,
        "filter": {k: v for k, v in wanted.items() if v},
        "target": target,
    }
    if args.include_replays:
        body["include_replays"] = True
    return body


def _target(item: dict[str, Any]) -> str:
    target = item.get("target") or {}
    return str(target.get("url") or target.get("address") or "-")


def _subs_table(payload: dict[str, Any]) -> Table:
    made = table("id", "name", "status", "events", "target", "filter")
    for item in payload.get("items", []):
        made.add_row(
            cell(short_id(item.get("subscription_id"))),
            cell(item.get("name")),
            status_cell(item.get("status")),
            cell(", ".join(item.get("events") or [])),
            cell(_target(item)),
            cell(item.get("filter") or None),
        )
    return made


def _show(item: dict[str, Any]) -> Table:
    keys = ("subscription_id", "name", "status", "events", "filter", "target",
            "include_replays", "created_at", "updated_at")  # fmt: skip
    return kv_table({key: item.get(key) for key in keys})


def _created(item: dict[str, Any]) -> Any:
    secret = item.get("secret")
    if secret:
        err.print(
            Text("signing secret (shown once, store it now): ", style="bold") + Text(str(secret)),
            soft_wrap=True,
        )
    return _show(item)


def _deliveries_table(payload: dict[str, Any]) -> Table:
    made = table("event", "type", "status", "attempts", "last", "next attempt")
    for item in payload.get("items", []):
        attempts = item.get("attempts") or []
        last = attempts[-1] if attempts else {}
        last_text = (
            f"{last.get('status_code') or '-'} {last.get('error') or ''} {last.get('latency_ms')} ms"
            if last else "-"
        )  # fmt: skip
        made.add_row(
            cell(short_id(item.get("event_id"))),
            cell(item.get("detail_type")),
            status_cell(item.get("status")),
            cell(str(len(attempts))),
            cell(last_text.strip()),
            cell(item.get("next_attempt_at")),
        )
    return made


def _mail_table(found: list[dict[str, Any]]) -> Table:
    made = table("received", "to", "subject")
    for item in found:
        made.add_row(cell(item["received_at"]), cell(item["to"]), cell(item["subject"]))
    return made


def register(subparsers: Any, client_factory: ClientFactory) -> None:
    """Add ``ferry subscriptions …`` and ``ferry mail`` to the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", default=None, help="local stack state (default ./.ferry or FERRY_DATA_DIR)"
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")

    subs = subparsers.add_parser("subscriptions", help="get told: webhooks and e-mail on events")
    sub = subs.add_subparsers(dest="subscriptions_command", required=True, metavar="ACTION")

    def run(fn: Callable[[Any, argparse.Namespace], Any], render: Callable[[Any], Any]) -> Any:
        def command(args: argparse.Namespace) -> int:
            result = fn(client_factory(args), args)
            if args.json:
                _emit_json(result)
            else:
                out.print(render(result))
            return 0

        return command

    add = sub.add_parser("add", parents=[common], help="subscribe to events")
    add.add_argument("--name", required=True, help="a name for it (unique per customer)")
    add.add_argument("--event", action="append", required=True, help="e.g. JobFailed (repeat)")
    add.add_argument("--webhook", metavar="URL", help="POST each event here, signed")
    add.add_argument("--secret-env", metavar="VAR", help="the signing secret from $VAR")
    add.add_argument("--email", metavar="ADDRESS", help="send each event to this address")
    add.add_argument("--route", metavar="ROUTE_ID", help="only this route's events")
    add.add_argument("--endpoint", metavar="ENDPOINT_ID", help="only this endpoint's events")
    add.add_argument("--job", metavar="JOB_ID", help="only this job's events")
    add.add_argument(
        "--include-replays", action="store_true", help="also send replayed events again"
    )
    add.set_defaults(
        func=run(lambda c, a: c.request("POST", "/subscriptions", body_from(a)), _created)
    )

    ls = sub.add_parser("list", parents=[common], help="this customer's subscriptions")
    ls.set_defaults(func=run(lambda c, a: c.request("GET", "/subscriptions"), _subs_table))

    def by_id(method: str, suffix: str = "") -> Callable[[Any, argparse.Namespace], Any]:
        def call(client: Any, args: argparse.Namespace) -> Any:
            found = resolve_id(client, "subscription", args.subscription_id)
            return client.request(method, f"/subscriptions/{found}{suffix}")

        return call

    for name, method, suffix, text, render in (
        ("show", "GET", "", "one subscription", _show),
        ("remove", "DELETE", "", "delete a subscription (nothing is sent after)", _show),
        ("pause", "POST", "/pause", "stop sending until resumed", _show),
        ("resume", "POST", "/resume", "send again", _show),
        ("test", "POST", "/test", "send a SubscriptionTest event now", lambda r: r),
        ("deliveries", "GET", "/deliveries", "every attempt: status, latency", _deliveries_table),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("subscription_id", help="its id (or a unique prefix of 6+ characters)")
        p.set_defaults(func=run(by_id(method, suffix), render))

    mail = subparsers.add_parser(
        "mail", parents=[common], help="mail the local stack's catcher received"
    )
    mail.add_argument("--show", type=int, metavar="N", help="print message N (1 = oldest)")
    mail.set_defaults(func=_mail)


def _mail(args: argparse.Namespace) -> int:
    from ferry.cli_common import data_dir_of
    from ferry.local.mail import messages

    found = messages(data_dir_of(args) / "mail")
    if args.show is not None:
        if not 1 <= args.show <= len(found):
            raise _error(f"--show: there are {len(found)} message(s)", "show")
        chosen = found[args.show - 1]
        if args.json:
            _emit_json(chosen)
        else:
            out.print(
                f"From: {chosen['from']}\nTo: {chosen['to']}\nSubject: {chosen['subject']}\n",
                markup=False,
            )
            out.print(chosen["body"], markup=False)
        return 0
    if args.json:
        _emit_json(found)
    else:
        out.print(_mail_table(found))
    return 0
