"""Tenant-scoped event delivery: Ferry-managed rules that forward one customer's events to a
downstream consumer.

A consumer account never creates rules on the Ferry bus (its resource policy grants them
nothing: ``infra/constructs/messaging.py``). Instead the operator registers a *consumer* for
exactly one customer; Ferry creates an EventBridge rule on its own bus whose pattern always
filters on that customer::

    {"source": ["ferry.endpoints", "ferry.jobs", "ferry.executor", "ferry.routes"],
     "detail": {"customer_id": ["<customer>"]},
     "detail-type": [...]}                      # only when the consumer asked for some

and whose one target is the consumer's event bus in its own account (in AWS) or an SQS queue
(the local stack: moto delivers to SQS targets). ``detail.customer_id`` is the field every
published event carries (``events/publisher.py`` publishes the contract models; docs/events.md).

The registry lives in the rules themselves: each managed rule is named
``<bus>-c-<sha256(customer)[:10]>-<name>`` and tagged ``ferry:managed=consumer``,
``ferry:customer=<customer>`` and ``ferry:consumer=<name>``, so ``list`` and ``remove`` need no
table. ``list`` re-derives the pattern a rule must have from its customer tag and reports any
drift (``pattern_ok``): a rule edited by hand to match more than its customer shows up.

Pure parts (spec validation, names, the pattern) are unit-tested; :class:`ConsumerRegistry`
is the adapter over boto3 (EventBridge + SQS), tested against moto server.

Why one module over 400 lines: one feature end to end, its pure parts and its one adapter; the
rules are the registry, so the pattern derivation and the drift check must stay next to the
adapter that lists the rules.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ferry.errors import Conflict, Invalid, NotFound
from ferry.names import ALL_SOURCES, ResourceNames

__all__ = [
    "Consumer",
    "ConsumerExists",
    "ConsumerNotFound",
    "ConsumerRegistry",
    "ConsumerSpec",
    "InvalidConsumer",
    "UnknownCustomer",
    "consumer_pattern",
    "consumer_rule_name",
    "parse_spec",
]

MANAGED_TAG = "ferry:managed"
MANAGED_VALUE = "consumer"
CUSTOMER_TAG = "ferry:customer"
CONSUMER_TAG = "ferry:consumer"
TARGET_ID = "consumer"
MAX_RULE_NAME = 64  # EventBridge

# Customer ids are tag values and pattern values: letters, digits and _ . : / = + - @ (what
# EventBridge tags accept), no spaces or control characters.
CUSTOMER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/=+@-]{0,127}$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
BUS_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:events:(?P<region>[a-z]{2}(-[a-z]+)+-\d):(?P<account>\d{12}):"
    r"event-bus/(?P<bus>[A-Za-z0-9._-]{1,256})$"
)
QUEUE_URL_RE = re.compile(
    r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?/(?P<account>\d{12})/[A-Za-z0-9_-]{1,80}(\.fifo)?$"
)


class InvalidConsumer(Invalid):
    code = "invalid_consumer"


class UnknownCustomer(NotFound):
    code = "customer_not_found"


class ConsumerExists(Conflict):
    code = "consumer_exists"


class ConsumerNotFound(NotFound):
    code = "consumer_not_found"


def _detail_types() -> frozenset[str]:
    from events.contract import EVENT_TYPES

    return frozenset(EVENT_TYPES)


class ConsumerSpec(BaseModel):
    """What ``ferry consumers add`` asks for. Exactly one target."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customer_id: str = Field(description="the one customer whose events the consumer receives")
    name: str = Field(description="lower-case letters, digits, - and _ (1-32)")
    target_bus_arn: str | None = None
    queue_url: str | None = None
    detail_types: tuple[str, ...] = ()

    @field_validator("customer_id")
    @classmethod
    def _customer(cls, value: str) -> str:
        if not CUSTOMER_RE.fullmatch(value):
            raise ValueError(
                "a customer id: 1-128 letters, digits or _ . : / = + - @, starting with a "
                "letter or digit"
            )
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value):
            raise ValueError(
                "1-32 lower-case letters, digits, - or _, starting with a letter/digit"
            )
        return value

    @field_validator("target_bus_arn")
    @classmethod
    def _bus(cls, value: str | None) -> str | None:
        if value is not None and not BUS_ARN_RE.fullmatch(value):
            raise ValueError("an event bus ARN: arn:aws:events:REGION:ACCOUNT:event-bus/NAME")
        return value

    @field_validator("queue_url")
    @classmethod
    def _queue(cls, value: str | None) -> str | None:
        if value is not None and not QUEUE_URL_RE.fullmatch(value):
            raise ValueError("an SQS queue URL: https://sqs.REGION.amazonaws.com/ACCOUNT/NAME")
        return value

    @field_validator("detail_types")
    @classmethod
    def _types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = _detail_types()
        unknown = [t for t in value if t not in known]
        if unknown:
            raise ValueError(f"unknown detail-type {unknown[0]!r} (see docs/events.md)")
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _one_target(self) -> ConsumerSpec:
        if (self.target_bus_arn is None) == (self.queue_url is None):
            raise ValueError("exactly one of target_bus_arn and queue_url")
        return self


_FIELD_OF = {
    "customer_id": "customer",
    "name": "name",
    "target_bus_arn": "target-bus-arn",
    "queue_url": "queue-url",
    "detail_types": "detail-type",
}


def parse_spec(**values: Any) -> ConsumerSpec:
    """A validated spec, or :class:`InvalidConsumer` naming the (CLI) field."""
    if not values.get("customer_id"):
        raise InvalidConsumer("a consumer registers for exactly one customer", field="customer")
    try:
        return ConsumerSpec.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        loc = [str(p) for p in first.get("loc", ())]
        field = _FIELD_OF.get(loc[0], loc[0]) if loc else "target"
        if not loc:  # the model validator: the target choice
            field = "target"
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise InvalidConsumer(message, field=field) from None


def consumer_rule_name(names: ResourceNames, customer_id: str, name: str) -> str:
    digest = hashlib.sha256(customer_id.encode()).hexdigest()[:10]
    rule = f"{names.bus}-c-{digest}-{name}"
    if len(rule) > MAX_RULE_NAME:
        raise InvalidConsumer(
            f"the rule name {rule!r} is longer than {MAX_RULE_NAME}: choose a shorter name",
            field="name",
        )
    return rule


def consumer_rule_prefix(names: ResourceNames) -> str:
    return f"{names.bus}-c-"


def consumer_pattern(customer_id: str, detail_types: Iterable[str] = ()) -> dict[str, Any]:
    """The one pattern a managed rule has: Ferry's sources, this customer only."""
    pattern: dict[str, Any] = {"source": list(ALL_SOURCES)}
    types = sorted(set(detail_types))
    if types:
        pattern["detail-type"] = types
    pattern["detail"] = {"customer_id": [customer_id]}
    return pattern


def _pattern_is_scoped(pattern: Any, customer_id: str) -> bool:
    """True when ``pattern`` can only match ``customer_id``'s Ferry events."""
    if not isinstance(pattern, dict):
        return False
    detail = pattern.get("detail")
    if not isinstance(detail, dict) or detail.get("customer_id") != [customer_id]:
        return False
    sources = pattern.get("source")
    if not isinstance(sources, list) or not set(sources) <= set(ALL_SOURCES) or not sources:
        return False
    return set(pattern) <= {"source", "detail-type", "detail"} and set(detail) == {"customer_id"}


@dataclass(frozen=True)
class Consumer:
    customer_id: str
    name: str
    rule_name: str
    rule_arn: str
    target_arn: str | None
    detail_types: tuple[str, ...]
    state: str
    pattern_ok: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "name": self.name,
            "rule_name": self.rule_name,
            "rule_arn": self.rule_arn,
            "target_arn": self.target_arn,
            "detail_types": list(self.detail_types),
            "state": self.state,
            "pattern_ok": self.pattern_ok,
        }


class ConsumerRegistry:
    """Managed consumer rules on the Ferry bus (boto3 EventBridge + SQS clients).

    ``customer_exists``: the customer must be known (e.g. have an API key); ``allowed_accounts``:
    if not empty, a target bus must be in one of these accounts (the deployment's consumer
    accounts); ``delivery_role_arn``: the role EventBridge assumes to put events on a consumer's
    bus (infra output ``ConsumerDeliveryRoleArn``)."""

    def __init__(
        self,
        names: ResourceNames,
        events_client: Any,
        sqs_client: Any = None,
        *,
        customer_exists: Callable[[str], bool] | None = None,
        allowed_accounts: Iterable[str] = (),
        delivery_role_arn: str | None = None,
    ) -> None:
        self.names = names
        self.events = events_client
        self.sqs = sqs_client
        self.customer_exists = customer_exists
        self.allowed_accounts = tuple(allowed_accounts)
        self.delivery_role_arn = delivery_role_arn

    # --- commands ---------------------------------------------------------------------------
    def add(self, spec: ConsumerSpec) -> Consumer:
        if self.customer_exists is not None and not self.customer_exists(spec.customer_id):
            raise UnknownCustomer(
                f"customer {spec.customer_id!r} has no API key: create the customer first",
                field="customer",
            )
        rule = consumer_rule_name(self.names, spec.customer_id, spec.name)
        if self._describe(rule) is not None:
            raise ConsumerExists(
                f"consumer {spec.name!r} of customer {spec.customer_id!r} exists", field="name"
            )
        target_arn = self._target_arn(spec)
        pattern = consumer_pattern(spec.customer_id, spec.detail_types)
        created = self.events.put_rule(
            Name=rule,
            EventBusName=self.names.bus,
            EventPattern=json.dumps(pattern),
            State="ENABLED",
            Description=f"Ferry consumer {spec.name}: events of customer {spec.customer_id}",
            Tags=[
                {"Key": MANAGED_TAG, "Value": MANAGED_VALUE},
                {"Key": CUSTOMER_TAG, "Value": spec.customer_id},
                {"Key": CONSUMER_TAG, "Value": spec.name},
            ],
        )
        target: dict[str, Any] = {"Id": TARGET_ID, "Arn": target_arn}
        if spec.target_bus_arn and self.delivery_role_arn:
            target["RoleArn"] = self.delivery_role_arn
        result = self.events.put_targets(Rule=rule, EventBusName=self.names.bus, Targets=[target])
        if result.get("FailedEntryCount"):
            self._delete(rule)
            entry = (result.get("FailedEntries") or [{}])[0]
            raise InvalidConsumer(
                f"EventBridge refused the target ({entry.get('ErrorCode', 'unknown')})",
                field="target",
            )
        return Consumer(
            customer_id=spec.customer_id,
            name=spec.name,
            rule_name=rule,
            rule_arn=str(created["RuleArn"]),
            target_arn=target_arn,
            detail_types=spec.detail_types,
            state="ENABLED",
            pattern_ok=True,
        )

    def remove(self, customer_id: str, name: str) -> Consumer:
        if not customer_id:
            raise InvalidConsumer("--customer is required", field="customer")
        if not CUSTOMER_RE.fullmatch(customer_id) or not NAME_RE.fullmatch(name or ""):
            raise ConsumerNotFound(
                f"customer {customer_id!r} has no consumer {name!r}", field="name"
            )
        rule = consumer_rule_name(self.names, customer_id, name)
        found = self._consumer(rule)
        if found is None or found.customer_id != customer_id:
            raise ConsumerNotFound(
                f"customer {customer_id!r} has no consumer {name!r}", field="name"
            )
        self._delete(rule)
        return found

    # --- queries ----------------------------------------------------------------------------
    def list(self, customer_id: str | None = None) -> list[Consumer]:
        out: list[Consumer] = []
        kwargs: dict[str, Any] = {
            "EventBusName": self.names.bus,
            "NamePrefix": consumer_rule_prefix(self.names),
        }
        while True:
            page = self.events.list_rules(**kwargs)
            for rule in page.get("Rules", []):
                consumer = self._consumer(str(rule["Name"]), rule)
                if consumer is None:
                    continue
                if customer_id is None or consumer.customer_id == customer_id:
                    out.append(consumer)
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
        return sorted(out, key=lambda c: (c.customer_id, c.name))

    # --- internals --------------------------------------------------------------------------
    def _target_arn(self, spec: ConsumerSpec) -> str:
        if spec.target_bus_arn:
            match = BUS_ARN_RE.fullmatch(spec.target_bus_arn)
            assert match is not None  # validated by the spec
            if match["bus"] == self.names.bus:
                raise InvalidConsumer(
                    "the target cannot be the Ferry bus itself", field="target-bus-arn"
                )
            if self.allowed_accounts and match["account"] not in self.allowed_accounts:
                raise InvalidConsumer(
                    f"account {match['account']} is not one of the deployment's consumer accounts",
                    field="target-bus-arn",
                )
            return spec.target_bus_arn
        if self.sqs is None:
            raise InvalidConsumer("queue targets need an SQS client", field="queue-url")
        try:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=spec.queue_url, AttributeNames=["QueueArn"]
            )
        except Exception as error:
            code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
            raise InvalidConsumer(
                f"queue {spec.queue_url} not found{f' ({code})' if code else ''}",
                field="queue-url",
            ) from None
        return str(attributes["Attributes"]["QueueArn"])

    def _describe(self, rule: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.events.describe_rule(
                Name=rule, EventBusName=self.names.bus
            )
        except Exception as error:
            code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                return None
            raise
        return found

    def _consumer(self, rule: str, described: dict[str, Any] | None = None) -> Consumer | None:
        info = described or self._describe(rule)
        if info is None:
            return None
        arn = str(info.get("Arn") or "")
        tags = {
            t["Key"]: t["Value"]
            for t in self.events.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
        }
        if tags.get(MANAGED_TAG) != MANAGED_VALUE or CUSTOMER_TAG not in tags:
            return None
        customer = tags[CUSTOMER_TAG]
        try:
            pattern = json.loads(info.get("EventPattern") or "null")
        except ValueError:
            pattern = None
        targets = self.events.list_targets_by_rule(Rule=rule, EventBusName=self.names.bus).get(
            "Targets", []
        )
        types = pattern.get("detail-type", []) if isinstance(pattern, dict) else []
        return Consumer(
            customer_id=customer,
            name=tags.get(CONSUMER_TAG, ""),
            rule_name=rule,
            rule_arn=arn,
            target_arn=str(targets[0]["Arn"]) if targets else None,
            detail_types=tuple(types) if isinstance(types, list) else (),
            state=str(info.get("State") or ""),
            pattern_ok=_pattern_is_scoped(pattern, customer) and len(targets) == 1,
        )

    def _delete(self, rule: str) -> None:
        targets = self.events.list_targets_by_rule(Rule=rule, EventBusName=self.names.bus).get(
            "Targets", []
        )
        if targets:
            self.events.remove_targets(
                Rule=rule, EventBusName=self.names.bus, Ids=[t["Id"] for t in targets]
            )
        self.events.delete_rule(Name=rule, EventBusName=self.names.bus)
