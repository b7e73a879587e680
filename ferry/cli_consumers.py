"""``ferry consumers add|list|remove`` — an operator's command (AWS credentials, not an API
key): Ferry-managed EventBridge rules delivering one customer's events to a downstream
consumer (``ferry/consumers.py``). Wired into ferry/cli.py with ``register(subparsers)``.

    ferry consumers add --customer acme --name audit \\
        --target-bus-arn arn:aws:events:eu-west-1:111122223333:event-bus/ferry-acme
    ferry consumers add --customer acme --name failures --queue-url URL \\
        --detail-type JobFailed --detail-type EndpointValidationFailed     # local stack: SQS
    ferry consumers list [--customer acme]
    ferry consumers remove --customer acme --name audit

Against the local stack (``ferry up``) it talks to its moto server (``aws_endpoint`` in
``.ferry/config.json``, or AWS_ENDPOINT_URL); otherwise to AWS with the default credential
chain. Settings: FERRY_PREFIX (the deployment prefix), FERRY_CONSUMER_ACCOUNTS (comma-separated
account ids a target bus may belong to; the stack's ``consumer_accounts``),
FERRY_CONSUMER_DELIVERY_ROLE_ARN (the stack output ``ConsumerDeliveryRoleArn``: the role
EventBridge assumes to put events on a consumer's bus).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ferry.errors import FerryError

out = Console(highlight=False, soft_wrap=True)

CONSUMER_HELP = """\
A consumer receives exactly one customer's Ferry events: Ferry creates a rule on its own bus
whose pattern always filters on detail.customer_id, targeting the consumer's event bus (or, on
the local stack, an SQS queue). Consumer accounts get no permission on the Ferry bus itself.

The consumer's bus must accept events from Ferry's account; its resource policy:
  {"Version": "2012-10-17", "Statement": [{"Sid": "FromFerry", "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::FERRY_ACCOUNT:root"}, "Action": "events:PutEvents",
    "Resource": "arn:aws:events:REGION:CONSUMER_ACCOUNT:event-bus/BUS"}]}
"""


class ConsumerCliSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    prefix: str = Field(default="ferry", validation_alias="FERRY_PREFIX")
    consumer_accounts: str = Field(default="", validation_alias="FERRY_CONSUMER_ACCOUNTS")
    delivery_role_arn: str | None = Field(
        default=None, validation_alias="FERRY_CONSUMER_DELIVERY_ROLE_ARN"
    )

    def accounts(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.consumer_accounts.split(",") if a.strip())


class ConsumerCliError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _cli_error(message: str, field: str | None = None) -> Exception:
    return ConsumerCliError(message, field)


def _report(args: argparse.Namespace, error: ConsumerCliError) -> int:
    """The CLI's error output (as ferry.cli.main prints it), exit code 2. Printed here rather
    than raised as ferry.cli.CliError, which is another class under ``python -m ferry.cli``."""
    if getattr(args, "json", False):
        payload: dict[str, Any] = {"error": {"message": error.message}}
        if error.field:
            payload["error"]["field"] = error.field
        sys.stderr.write(json.dumps(payload) + "\n")
    else:
        where = f" [field: {error.field}]" if error.field else ""
        Console(stderr=True, highlight=False).print(
            f"[red]error:[/] {escape(error.message + where)}"
        )
    return 2


def _handled(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = command(args)
            return code
        except ConsumerCliError as error:
            return _report(args, error)

    return run


def _emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def build_registry(args: argparse.Namespace) -> Any:
    """The registry on the local stack's moto server or on AWS."""
    import boto3

    from ferry.api import DynamoKeyStore
    from ferry.cli_common import load_config
    from ferry.consumers import ConsumerRegistry
    from ferry.names import ResourceNames

    settings = ConsumerCliSettings()
    config = load_config(args)
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or config.get("aws_endpoint")
    region = os.environ.get("AWS_DEFAULT_REGION") or config.get("region") or None
    if endpoint:
        from ferry.local import bootstrap

        def client(service: str) -> Any:
            return bootstrap.aws_client(service, str(endpoint), str(region or "us-east-1"))
    else:
        session: Any = boto3.session.Session(region_name=region)

        def client(service: str) -> Any:
            return session.client(service)

    names = ResourceNames(settings.prefix)
    keys = DynamoKeyStore(names.api_keys_table, client=client("dynamodb"))
    return ConsumerRegistry(
        names,
        client("events"),
        client("sqs"),
        customer_exists=lambda customer: bool(keys.list_keys(customer)),
        allowed_accounts=settings.accounts(),
        delivery_role_arn=settings.delivery_role_arn,
    )


def _run(args: argparse.Namespace, action: Any) -> Any:
    try:
        return action(args.registry_factory(args))
    except FerryError as error:
        raise _cli_error(error.message, error.field) from None
    except Exception as error:  # AWS unreachable, no credentials, access denied...
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        raise _cli_error(f"EventBridge call failed: {code or type(error).__name__}") from None


def cmd_add(args: argparse.Namespace) -> int:
    from ferry.consumers import parse_spec

    try:
        spec = parse_spec(
            customer_id=args.customer or "",
            name=args.name or "",
            target_bus_arn=args.target_bus_arn,
            queue_url=args.queue_url,
            detail_types=tuple(args.detail_type or ()),
        )
    except FerryError as error:
        raise _cli_error(error.message, error.field) from None
    consumer = _run(args, lambda registry: registry.add(spec))
    if args.json:
        _emit_json(consumer.as_dict())
    else:
        out.print(
            f"consumer {consumer.name} of customer {consumer.customer_id}: rule "
            f"{consumer.rule_name} → {consumer.target_arn}"
        )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    consumers = _run(args, lambda registry: registry.list(args.customer))
    if args.json:
        _emit_json({"consumers": [c.as_dict() for c in consumers]})
        return 0
    table = Table(show_header=True, header_style="bold")
    for column in ("customer", "name", "detail-types", "target", "state", "scoped"):
        table.add_column(column)
    for c in consumers:
        table.add_row(
            c.customer_id,
            c.name,
            ",".join(c.detail_types) or "all",
            c.target_arn or "-",
            c.state,
            "yes" if c.pattern_ok else "NO: the rule was changed outside Ferry",
        )
    out.print(table)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    consumer = _run(args, lambda registry: registry.remove(args.customer or "", args.name or ""))
    if args.json:
        _emit_json(consumer.as_dict())
    else:
        out.print(f"consumer {consumer.name} of customer {consumer.customer_id} removed")
    return 0


def register(sub: Any, registry_factory: Any = build_registry) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", default=None, help="local stack state (default ./.ferry or FERRY_DATA_DIR)"
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")

    consumers = sub.add_parser(
        "consumers",
        help="event delivery to downstream consumers (operator)",
        description=CONSUMER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = consumers.add_subparsers(dest="consumers_command", required=True, metavar="ACTION")

    add = actions.add_parser(
        "add",
        parents=[common],
        help="deliver one customer's events to a consumer",
        description=CONSUMER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("--customer", help="the one customer whose events it receives (required)")
    add.add_argument("--name", help="the consumer's name (1-32: a-z 0-9 - _)")
    target = add.add_mutually_exclusive_group()
    target.add_argument("--target-bus-arn", help="the consumer account's event bus")
    target.add_argument("--queue-url", help="an SQS queue (the local stack)")
    add.add_argument(
        "--detail-type",
        action="append",
        metavar="TYPE",
        help="only these events (repeatable; default: all of the customer's)",
    )
    add.set_defaults(func=_handled(cmd_add), registry_factory=registry_factory)

    ls = actions.add_parser("list", parents=[common], help="the managed consumer rules")
    ls.add_argument("--customer", help="only this customer's")
    ls.set_defaults(func=_handled(cmd_list), registry_factory=registry_factory)

    rm = actions.add_parser("remove", parents=[common], help="delete a consumer's rule")
    rm.add_argument("--customer", help="the consumer's customer (required)")
    rm.add_argument("--name", help="the consumer's name (required)")
    rm.set_defaults(func=_handled(cmd_remove), registry_factory=registry_factory)
