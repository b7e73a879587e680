"""EventBridge bus (+ archive, consumer-account policy, schema registry), the rules and queues.

Rule names, patterns and target queues come from ``ferry.names.RULES`` - the same table the
local stack builds its rules from.

Downstream consumer accounts get *nothing* on the Ferry bus: its resource policy denies them
every EventBridge action (no PutRule, no PutTargets, no PutEvents), so no account can write a
rule that matches another tenant's events. Delivery is by Ferry-managed rules instead
(``ferry consumers add``, ``ferry/consumers.py``): one rule per consumer, its pattern always
``detail.customer_id = [that customer]``, its target the consumer's own bus, put there with
``ConsumerDeliveryRole`` (``events:PutEvents`` on the consumer accounts' buses only). The
consumer's bus must allow ``events:PutEvents`` from this account (its resource policy; see the
README).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, NestedStack, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_eventschemas as schemas
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import Construct

from ferry.names import ALL_SOURCES, RULES, ResourceNames, rule_pattern

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "events" / "schemas"
QUEUE_RETENTION = Duration.days(4)  # > the longest retry delay (12 h) many times over
#: What consumer accounts may do on the Ferry bus: nothing (an explicit deny of every action).
CONSUMER_DENIED_ACTIONS = ["events:*"]


class FerryQueue(Construct):
    """An SQS queue with its DLQ (``<name>-dlq``), KMS encryption and TLS-only access."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        key: kms.IKey,
        visibility_timeout: Duration,
        max_receive_count: int,
        retention: Duration = QUEUE_RETENTION,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dlq = sqs.Queue(
            self,
            "Dlq",
            queue_name=ResourceNames.dlq(name),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=name,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            data_key_reuse=Duration.hours(1),
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            retention_period=retention,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dlq, max_receive_count=max_receive_count
            ),
        )


def _draft4(schema: Any) -> Any:
    """pydantic's JSON Schema (2020-12) -> draft-04, which EventBridge's registry accepts."""
    if isinstance(schema, dict):
        out = {}
        for k, v in schema.items():
            if k == "$defs":
                out["definitions"] = _draft4(v)
            elif k == "const":
                out["enum"] = [v]
            elif k == "$ref" and isinstance(v, str):
                out[k] = v.replace("#/$defs/", "#/definitions/")
            else:
                out[k] = _draft4(v)
        return out
    if isinstance(schema, list):
        return [_draft4(v) for v in schema]
    return schema


def event_schemas() -> dict[str, tuple[str, dict[str, Any]]]:
    """detail-type -> (source, JSON Schema of the detail) for every published event.

    From the checked-in ``events/schemas/<DetailType>.json`` when present, else generated from
    ``events.contract.EVENT_TYPES`` (the same models the checked-in files are generated from).
    """
    from events.contract import EVENT_TYPES

    out = {}
    for detail_type, model in sorted(EVENT_TYPES.items()):
        path = SCHEMAS_DIR / f"{detail_type}.json"
        detail = json.loads(path.read_text()) if path.exists() else model.model_json_schema()
        out[detail_type] = (model.SOURCE, detail)
    return out


def eventbridge_schema(source: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The whole EventBridge event as a draft-04 schema (the detail under ``definitions``)."""
    detail = _draft4(detail)
    definitions = detail.pop("definitions", {})
    definitions[detail_type] = detail
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": detail_type,
        "type": "object",
        "required": ["source", "detail-type", "detail"],
        "properties": {
            "source": {"type": "string", "enum": [source]},
            "detail-type": {"type": "string", "enum": [detail_type]},
            "detail": {"$ref": f"#/definitions/{detail_type}"},
        },
        "definitions": definitions,
    }


class Messaging(Construct):
    """The Ferry bus, its archive, schema registry, the four rules and their queues."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        key: kms.IKey,
        archive_retention_days: int,
        consumer_accounts: tuple[str, ...],
        lease_seconds: int,
        lambda_consumer_timeout: Duration,
        active: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.bus = events.EventBus(self, "Bus", event_bus_name=names.bus)
        self.archive = self.bus.archive(
            "Archive",
            archive_name=names.archive,
            description="Every Ferry event, for replay (infra/README.md: replay the archive)",
            event_pattern=events.EventPattern(source=list(ALL_SOURCES)),
            retention=Duration.days(archive_retention_days),
        )
        self.delivery_role: iam.Role | None = None
        if consumer_accounts:
            self.bus.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="ConsumerAccountsNothing",
                    effect=iam.Effect.DENY,
                    principals=[iam.AccountPrincipal(a) for a in consumer_accounts],
                    actions=CONSUMER_DENIED_ACTIONS,
                    resources=[
                        self.bus.event_bus_arn,
                        stack.format_arn(
                            service="events", resource="rule", resource_name=f"{names.bus}/*"
                        ),
                    ],
                )
            )
            self.delivery_role = self._delivery_role(stack, consumer_accounts)

        # Visibility timeouts matched to the consumers: the executor holds a message for at most
        # one lease period between heartbeats (which extend it), so visibility >= lease length;
        # Lambda event sources need >= 6 x the function timeout (AWS guidance).
        lambda_visibility = Duration.seconds(6 * lambda_consumer_timeout.to_seconds())
        executor_visibility = Duration.seconds(max(2 * lease_seconds, 600))
        specs = {
            "executor_queue": (executor_visibility, 10),
            "validator_queue": (Duration.seconds(max(lease_seconds, 300)), 5),
            "endpoint_checks_queue": (lambda_visibility, 5),
            "projections_queue": (lambda_visibility, 5),
            "jobs_queue": (lambda_visibility, 5),
        }
        self.queues: dict[str, FerryQueue] = {}
        self.rules: dict[str, events.Rule] = {}
        for rule_attr, (pattern, queue_attr) in RULES.items():
            visibility, receives = specs[queue_attr]
            q = FerryQueue(
                self,
                _camel(queue_attr),
                name=getattr(names, queue_attr),
                key=key,
                visibility_timeout=visibility,
                max_receive_count=receives,
            )
            self.queues[queue_attr] = q
            # In a passive region (global tables) only the projections keep running.
            enabled = active or queue_attr == "projections_queue"
            rule = events.Rule(
                self,
                _camel(rule_attr),
                rule_name=getattr(names, rule_attr),
                event_bus=self.bus,
                event_pattern=_pattern(pattern),
                enabled=enabled,
                targets=[
                    targets.SqsQueue(q.queue, retry_attempts=185, max_event_age=Duration.hours(24))
                ],
            )
            self.rules[rule_attr] = rule

        # The registry and its ~45 schemas are a nested stack: they reference nothing of the
        # regional stack, and keep it clear of CloudFormation's 500-resource limit.
        self.schema_stack = NestedStack(
            self, "EventSchemas", description="Ferry event schema registry (events/schemas)"
        )
        self.registry = schemas.CfnRegistry(
            self.schema_stack,
            "Registry",
            registry_name=f"{names.bus}-schemas",
            description="One schema per Ferry event (events/schemas, generated from events/contract.py)",
        )
        self.schemas: dict[str, schemas.CfnSchema] = {}
        for detail_type, (source, detail) in event_schemas().items():
            s = schemas.CfnSchema(
                self.schema_stack,
                f"Schema{detail_type}",
                registry_name=self.registry.registry_name,  # type: ignore[arg-type]
                schema_name=f"{source}@{detail_type}",
                type="JSONSchemaDraft4",
                content=json.dumps(eventbridge_schema(source, detail_type, detail)),
                description=f"{source} {detail_type}",
            )
            s.node.add_dependency(self.registry)
            self.schemas[detail_type] = s

    def _delivery_role(self, stack: Stack, consumer_accounts: tuple[str, ...]) -> iam.Role:
        """The role Ferry-managed consumer rules use to put events on consumer buses."""
        role = iam.Role(
            self,
            "ConsumerDeliveryRole",
            description="EventBridge: Ferry-managed consumer rules -> consumer accounts' buses",
            assumed_by=iam.ServicePrincipal(
                "events.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PutEventsOnConsumerBuses",
                actions=["events:PutEvents"],
                resources=[
                    stack.format_arn(
                        service="events",
                        region="*",
                        account=account,
                        resource="event-bus",
                        resource_name="*",
                    )
                    for account in consumer_accounts
                ],
            )
        )
        NagSuppressions.add_resource_suppressions(
            role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=(
                        "Consumer buses are named by the consumer and registered at run time "
                        "(ferry consumers add); PutEvents only, only in the deployment's "
                        "configured consumer accounts."
                    ),
                    applies_to=[
                        RegexAppliesTo(
                            regex=r"/^Resource::arn:(<AWS::Partition>|aws[a-z-]*):events:\*:"
                            r"\d{12}:event-bus\/\*$/"
                        )
                    ],
                )
            ],
            apply_to_children=True,
        )
        CfnOutput(
            stack,
            "ConsumerDeliveryRoleArn",
            value=role.role_arn,
            description="FERRY_CONSUMER_DELIVERY_ROLE_ARN for ferry consumers add",
        )
        return role


def _pattern(pattern: dict[str, Any]) -> events.EventPattern:
    return events.EventPattern(
        source=pattern["source"],
        detail_type=pattern.get("detail-type"),
    )


def _camel(attr: str) -> str:
    return "".join(p.capitalize() for p in attr.split("_"))


__all__ = ["FerryQueue", "Messaging", "event_schemas", "eventbridge_schema", "rule_pattern"]
