"""``ferry keys create|list|revoke`` — the admin CLI over the API keys table (wired into
ferry/cli.py with ``register(subparsers, common)``).

    ferry keys create acme --name ci --expires-in 90d --scope read
    ferry keys list [--customer acme]     # id, name, customer, scope, created, expires, revoked
    ferry keys revoke key-0123456789ab    # 401 on the very next request that uses it

Like API Gateway keys, these are administered by the operator against the keys table (here the
local stack's DynamoDB table and ``<data-dir>/keys.json``), not through the customer API. The key
itself is printed once by ``create`` and stored nowhere (only its sha256).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from ferry.api import SCOPES, FerryError, issue_key, parse_duration
from ferry.validation import check_name

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _error(message: str, field: str | None = None, status: int | None = None) -> Exception:
    from ferry.cli_common import CliError

    return CliError(message, field=field, status=status)


def _store(args: argparse.Namespace) -> Any:
    """The local stack's keys: its DynamoDB table (what the API reads) and keys.json."""
    from ferry.api import DynamoKeyStore
    from ferry.cli_common import data_dir_of, load_config
    from ferry.local import bootstrap
    from ferry.local.keys import FileBackedKeyStore
    from ferry.names import ResourceNames

    config = load_config(args)
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or config.get("aws_endpoint")
    if not endpoint:
        raise _error("no AWS endpoint: run `ferry up` first (or set AWS_ENDPOINT_URL)")
    region = str(config.get("region") or "us-east-1")
    table = DynamoKeyStore(
        ResourceNames().api_keys_table,
        client=bootstrap.aws_client("dynamodb", str(endpoint), region),
    )
    return FileBackedKeyStore(data_dir_of(args), table)


def _checked(value: str, option: str) -> str:
    try:
        return check_name(value)
    except ValueError as error:
        raise _error(f"{option}: {error}", field=option) from None


def _emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def cmd_keys_create(args: argparse.Namespace) -> int:
    customer = _checked(args.customer, "customer")
    name = _checked(args.name, "--name") if args.name is not None else ""
    expires_in: timedelta | None = None
    if args.expires_in:
        try:
            expires_in = parse_duration(args.expires_in)
        except ValueError as error:
            raise _error(f"--expires-in: {error}", field="--expires-in") from None
    store = _store(args)
    now = datetime.now(UTC)
    try:
        key, principal = issue_key(
            store, customer, name=name, scope=args.scope, expires_in=expires_in, now=now
        )
    except FerryError as error:
        raise _error(error.message, field=error.field) from None
    except Exception as error:
        raise _error(f"cannot write the API key ({type(error).__name__})") from None
    expires = now + expires_in if expires_in is not None else None
    if args.json:
        _emit_json(
            {
                "api_key": key,
                "customer_id": principal.customer_id,
                "key_id": principal.key_id,
                "name": principal.key_name,
                "scope": principal.scope,
                "expires_at": expires.isoformat() if expires else None,
            }
        )
    else:
        print(f"API key: {key}")
        until = f", expires {expires:%Y-%m-%d %H:%M} UTC" if expires else ", never expires"
        err.print(
            f"customer {principal.customer_id}, key id {principal.key_id}, scope "
            f"{principal.scope}{until} (shown once)"
        )
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    customer = _checked(args.customer, "--customer") if args.customer else None
    try:
        keys = _store(args).list_keys(customer)
    except FerryError as error:
        raise _error(error.message, field=error.field) from None
    rows = [k.listing() for k in keys]
    if args.json:
        _emit_json({"keys": rows, "count": len(rows)})
        return 0
    now = datetime.now(UTC)
    table = Table()
    for column in ("key_id", "name", "customer", "scope", "created", "expires", "state"):
        table.add_column(column, overflow="fold", no_wrap=column == "key_id")
    for key, row in zip(keys, rows, strict=True):
        table.add_row(
            row["key_id"],
            row["name"] or "-",
            row["customer_id"],
            row["scope"],
            row["created_at"][:19],
            (row["expires_at"] or "never")[:19],
            (key.refusal(now) or "active").removeprefix("API key "),
        )
    out.print(table)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    key_id = args.key_id.strip()
    if not key_id.startswith("key-") or len(key_id) > 64:
        raise _error("KEY_ID looks like key-0123456789ab (see `ferry keys list`)", field="key_id")
    try:
        revoked = _store(args).revoke(key_id, datetime.now(UTC))
    except FerryError as error:
        raise _error(error.message, field=error.field, status=409) from None
    if revoked is None:
        raise _error(f"no API key {key_id}", field="key_id", status=404)
    if args.json:
        _emit_json(revoked.listing())
    else:
        err.print(f"revoked {key_id} ({revoked.principal.customer_id}); it is refused from now on")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    keys = sub.add_parser("keys", help="API keys of the local stack (admin)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    kc = keys_sub.add_parser("create", parents=[common], help="a new API key for a customer")
    kc.add_argument("customer", help="the customer id the key authenticates as (e.g. acme)")
    kc.add_argument("--name", help="a label for the key (shown in events' actor)")
    kc.add_argument("--expires-in", help="e.g. 90d, 12h, 30m, 2w (default: never)")
    kc.add_argument("--scope", choices=SCOPES, default="write", help="read: GET only")
    kc.set_defaults(func=cmd_keys_create)
    kl = keys_sub.add_parser("list", parents=[common], help="keys (no secrets)")
    kl.add_argument("--customer", help="only this customer's keys")
    kl.set_defaults(func=cmd_keys_list)
    kr = keys_sub.add_parser("revoke", parents=[common], help="revoke a key at once")
    kr.add_argument("key_id", metavar="KEY_ID", help="the key's id, as `ferry keys list` shows")
    kr.set_defaults(func=cmd_keys_revoke)
