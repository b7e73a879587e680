"""The notifications service (issue 12): the subscriptions table, the notifier's two queues (each
with its DLQ), the bus rule, three Lambdas and their least-privilege grants, the SES
configuration set.

- ``NotificationsApi`` (services/notifications/handlers.py): the /subscriptions REST routes.
  Writes the subscriptions table and *creates/deletes* webhook signing secrets under
  ``<prefix>/subscriptions/`` (never reads them); sends ``test`` messages to the delivery queue.
- ``NotificationsFanout`` (services/notifications/consumer.py): the notifications rule (the
  notifiable detail-types of ``ferry.names.NOTIFICATIONS_DETAIL_TYPES``) -> the notifications
  queue -> one message per matching subscription on the delivery queue. Reads the subscriptions
  table and the jobs read model (route/endpoint filters on job events).
- ``NotificationsDeliver`` (services/notifications/deliver.py): the delivery queue -> one attempt
  per message: reads signing secrets (only those), records attempts in the subscriptions table,
  sends the next attempt to its own queue and a given-up delivery to the DLQ, sends e-mail with
  SES from the configured identity. Webhooks leave from Lambda's own network (not the VPC: no
  private address is reachable), and still pass the egress policy in code.

No notifications function can read endpoint secrets or write the event store or read models.
E-mail is SES (docs/notifications.md says why not SNS): verify the sender identity
(``email_from``) in SES once per deployment and request production access.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ses as ses
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import Construct

import ferry.names as n
from infra.constructs.messaging import FerryQueue
from infra.constructs.services import (
    CONSUMER_TIMEOUT,
    SECRET_REPLICA_ACTIONS,
    _Common,
    _sqs_source,
    deny_secret_reads,
    deny_writes,
    peer_data_key_via_secrets,
    region_sid,
    secrets_arn,
)
from infra.constructs.tables import Tables, data_key_alias

NOTIFICATIONS_API_HANDLER = "services/notifications/handlers.py:handler"
FANOUT_HANDLER = "services/notifications/consumer.py:handler"
DELIVER_HANDLER = "services/notifications/deliver.py:handler"
DEFAULT_EMAIL_FROM = "ferry-notifications@example.com"


class NotificationsService(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        common: _Common,
        tables: Tables,
        ferry_bus: events.IEventBus,
        reserved_concurrency: int,
        active: bool,
        email_from: str = DEFAULT_EMAIL_FROM,
        peer_regions: Sequence[str] = (),
    ) -> None:
        """``peer_regions`` (active-active): signing secrets replicated there, read from the
        local replica (the peer's primary while it is missing), deleted in the primary's
        region; the subscriptions table is the MRSC one of ``tables``."""
        super().__init__(scope, cid)
        names, key, t = common.names, common.key, tables
        stack = Stack.of(self)
        # active-active: the MRSC table of Tables (both regions deliver, a claim decides)
        self.table: ddb.ITableV2 = t.subscriptions or ddb.TableV2(
            self,
            "Subscriptions",
            table_name=names.subscriptions_table,
            partition_key=ddb.Attribute(name="pk", type=ddb.AttributeType.STRING),
            sort_key=ddb.Attribute(name="sk", type=ddb.AttributeType.STRING),
            billing=ddb.Billing.on_demand(),
            encryption=ddb.TableEncryptionV2.customer_managed_key(key),
            point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        visibility = Duration.seconds(6 * CONSUMER_TIMEOUT.to_seconds())
        self.queues: dict[str, FerryQueue] = {
            attr: FerryQueue(
                self,
                "".join(p.capitalize() for p in attr.split("_")),
                name=getattr(names, attr),
                key=key,
                visibility_timeout=visibility,
                max_receive_count=5,
            )
            for attr in ("notifications_queue", "notifications_deliver_queue")
        }
        deliver_queue = self.queues["notifications_deliver_queue"]
        for rule_attr, (pattern, queue_attr) in n.NOTIFICATIONS_RULES.items():
            events.Rule(
                self,
                "".join(p.capitalize() for p in rule_attr.split("_")),
                rule_name=getattr(names, rule_attr),
                event_bus=ferry_bus,
                event_pattern=events.EventPattern(
                    source=pattern["source"], detail_type=pattern.get("detail-type")
                ),
                enabled=active,
                targets=[
                    targets.SqsQueue(
                        self.queues[queue_attr].queue,
                        retry_attempts=185,
                        max_event_age=Duration.hours(24),
                    )
                ],
            )
        self.configuration_set = ses.ConfigurationSet(
            self,
            "Email",
            configuration_set_name=f"{names.prefix}-notifications",
            reputation_metrics=True,
            suppression_reasons=ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
        )
        env = {
            n.ENV_RESOURCE_PREFIX: names.prefix,
            n.ENV_SUBSCRIPTIONS_TABLE: names.subscriptions_table,
            n.ENV_NOTIFICATIONS_DELIVER_QUEUE_URL: deliver_queue.queue.queue_url,
            "FERRY_NOTIFICATIONS_SECRETS_KMS_KEY_ID": key.key_arn,
            "FERRY_EMAIL_FROM": email_from,
            "FERRY_SES_CONFIGURATION_SET": self.configuration_set.configuration_set_name,
        }

        self.api_function = common.function(self, "Api", NOTIFICATIONS_API_HANDLER, "notifications")
        self.fanout = common.function(
            self, "Fanout", FANOUT_HANDLER, "notifications",
            timeout=CONSUMER_TIMEOUT, reserved_concurrency=reserved_concurrency,
        )  # fmt: skip
        self.deliver = common.function(
            self, "Deliver", DELIVER_HANDLER, "notifications",
            timeout=CONSUMER_TIMEOUT, reserved_concurrency=reserved_concurrency,
        )  # fmt: skip
        endpoint_secrets = secrets_arn(self, names)
        signing_secrets, *peer_secrets = (
            stack.format_arn(
                service="secretsmanager",
                region=region,
                resource="secret",
                resource_name=f"{names.subscription_secrets_prefix}*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            for region in (None, *peer_regions)
        )
        if peer_regions:
            env[n.ENV_SECRETS_REPLICA_REGIONS] = ",".join(peer_regions)
            env[n.ENV_SECRETS_REPLICA_KMS_KEY_ID] = data_key_alias(names)
        never_write = [t.events, t.endpoints, t.jobs, t.routes]
        for fn in (self.api_function, self.fanout, self.deliver):
            for k, v in env.items():
                fn.add_environment(k, v)
            deny_secret_reads(fn.role, endpoint_secrets)
            deny_writes(fn.role, never_write, "NeverWriteEventsOrReadModels")

        # API: subscriptions read/write, signing secrets created and deleted (never read)
        self.table.grant_read_write_data(self.api_function)
        t.api_keys.grant_read_data(self.api_function)
        key.grant_encrypt(self.api_function)
        deliver_queue.queue.grant_send_messages(self.api_function)
        replicas = (
            [*SECRET_REPLICA_ACTIONS, "secretsmanager:DescribeSecret"] if peer_regions else []
        )
        self._allow(self.api_function, "WriteSigningSecrets", [
            "secretsmanager:CreateSecret", "secretsmanager:DeleteSecret",
            "secretsmanager:TagResource", *replicas,
        ], [signing_secrets, *peer_secrets])  # fmt: skip
        assert self.api_function.role is not None
        self.api_function.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="NeverReadSigningSecrets",
                effect=iam.Effect.DENY,
                actions=["secretsmanager:GetSecretValue"],
                resources=[signing_secrets, *peer_secrets],
            )
        )

        # fan-out: read subscriptions and the jobs read model, queue deliveries
        self.table.grant_read_data(self.fanout)
        t.jobs.grant_read_data(self.fanout)
        deliver_queue.queue.grant_send_messages(self.fanout)
        deny_writes(self.fanout.role, [self.table], "FanoutNeverWritesSubscriptions")
        self.fanout.add_event_source(
            _sqs_source(self.queues["notifications_queue"].queue, reserved_concurrency)
        )

        # delivery: attempts, signing secrets (read), its queue and DLQ, SES
        self.table.grant_read_write_data(self.deliver)
        self._allow(self.deliver, "ReadSigningSecrets", ["secretsmanager:GetSecretValue"],
                    [signing_secrets, *peer_secrets])  # fmt: skip
        key.grant_decrypt(self.deliver)
        for peer in peer_regions:  # replicas encrypted with the peer's data key (same alias)
            self.api_function.add_to_role_policy(
                peer_data_key_via_secrets(self, names, peer, ["kms:Encrypt", "kms:GenerateDataKey"],
                                          f"EncryptSigningSecrets{region_sid(peer)}")
            )  # fmt: skip
            self.deliver.add_to_role_policy(
                peer_data_key_via_secrets(self, names, peer, ["kms:Decrypt"],
                                          f"DecryptPeerSigningSecrets{region_sid(peer)}")
            )  # fmt: skip
        deliver_queue.queue.grant_send_messages(self.deliver)
        deliver_queue.dlq.grant_send_messages(self.deliver)
        self._allow(self.deliver, "FindItsDlq", ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                    [deliver_queue.queue.queue_arn, deliver_queue.dlq.queue_arn])  # fmt: skip
        self._allow(self.deliver, "SendEmail", ["ses:SendEmail"], [
            stack.format_arn(service="ses", resource="identity", resource_name="*"),
            stack.format_arn(service="ses", resource="configuration-set",
                             resource_name=self.configuration_set.configuration_set_name),
        ])  # fmt: skip
        self.deliver.add_event_source(_sqs_source(deliver_queue.queue, reserved_concurrency))

        for fn, sid in ((self.api_function, "WriteSigningSecrets"),
                        (self.deliver, "ReadSigningSecrets")):  # fmt: skip
            assert fn.role is not None
            NagSuppressions.add_resource_suppressions(
                fn.role,
                [
                    NagPackSuppression(
                        id="AwsSolutions-IAM5",
                        reason=f"{sid}: one secret per webhook subscription, created at run "
                        "time under <prefix>/subscriptions/; SES: any verified identity of the "
                        "account (the sender is configuration, FERRY_EMAIL_FROM).",
                        applies_to=[
                            RegexAppliesTo(
                                regex=r"/^Resource::arn:.*:secretsmanager:.*subscriptions\/\*$/"
                            ),
                            RegexAppliesTo(regex=r"/^Resource::arn:.*:ses:.*:identity\/\*$/"),
                        ],
                    )
                ],
                apply_to_children=True,
            )

    @staticmethod
    def _allow(fn: object, sid: str, actions: list[str], resources: list[str]) -> None:
        role = getattr(fn, "role", None)
        assert role is not None
        role.add_to_principal_policy(
            iam.PolicyStatement(sid=sid, actions=actions, resources=resources)
        )
