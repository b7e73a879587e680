"""Create every AWS resource of one Ferry deployment on moto server (idempotent).

The same names as infra/ (``ferry.names.ResourceNames``) and the same table definitions as the
services' own creators, so the local stack cannot drift from what is deployed:

- the event table (``events.dynamodb.create_events_table``, stream NEW_IMAGE),
- the read-model tables (``services.projections.tables.create_read_model_tables``),
- the idempotency table (``services.jobs.adapters.create_idempotency_table``),
- the leases table (``services.executor.adapters.create_leases_table``),
- the API keys table (``ferry.api.DynamoKeyStore.create_table``),
- the EventBridge bus, an archive of every Ferry event (for replay) and the rules of
  ``ferry.names.RULES``, each targeting its SQS queue (with a DLQ, maxReceiveCount 5, and a queue
  policy allowing events.amazonaws.com),
- the staging bucket.

- the routes tables (``services.routes.adapters.create_tables``), the routes queues, the push
  rule on the account's DEFAULT bus (S3 "Object Created") and the routes read-model rule
  (``ferry.names.ROUTES_RULES``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from ferry import names as n
from ferry.api import DynamoKeyStore

log = logging.getLogger("ferry.local.bootstrap")

DLQ_MAX_RECEIVE_COUNT = 5
QUEUE_VISIBILITY_TIMEOUT = 60
QUEUE_NAMES = (
    "executor_queue",
    "validator_queue",
    "endpoint_checks_queue",
    "projections_queue",
    "jobs_queue",
    "routes_queue",
    "routes_projections_queue",
    "routes_tick_queue",
    "notifications_queue",
    "notifications_deliver_queue",
    "audit_exports_queue",
)


@dataclass
class Resources:
    """What ``create_resources`` made (or found): what the services' environment needs."""

    names: n.ResourceNames
    endpoint_url: str
    region: str
    queue_urls: dict[str, str] = field(default_factory=dict)  # queue attribute -> URL
    bus_arn: str = ""
    #: the names of the bus, archive, rules and queues (a region's own in the two-region
    #: simulation, ferry/local/regions.py); None: ``names``, as for one region
    messaging: n.ResourceNames | None = None

    def environment(self) -> dict[str, str]:
        """Environment variables every service process reads (names from ``ferry.names``)."""
        env = service_environment(self.names, self.endpoint_url, self.region, self.queue_urls)
        if self.messaging is not None:
            env[n.ENV_BUS_NAME] = self.messaging.bus
        return env


def aws_client(service: str, endpoint_url: str, region: str) -> Any:
    session: Any = boto3.session.Session()
    return session.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
    )


def aws_environment(endpoint_url: str, region: str) -> dict[str, str]:
    """Send boto3 (and the AWS CLI) to moto server with fake credentials."""
    return {
        n.ENV_AWS_ENDPOINT_URL: endpoint_url,
        n.ENV_REGION: region,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


#: The local stack's SFTP egress allow-list (its demo server and the tests' sshd listen on
#: 127.0.0.1); ``ferry up`` / ``ferry demo`` append the operator's own FERRY_EGRESS_ALLOW, if set.
LOCAL_EGRESS_ALLOW = "127.0.0.0/8"


def service_environment(
    names: n.ResourceNames, endpoint_url: str, region: str, queue_urls: dict[str, str]
) -> dict[str, str]:
    env = aws_environment(endpoint_url, region)
    env.update(
        {
            n.ENV_PERSISTENCE_MODULE: "events.dynamodb",
            "CREATE_TABLE": "no",  # bootstrap made them; services never create tables
            n.ENV_EVENTS_TABLE: names.events_table,
            n.ENV_ENDPOINTS_TABLE: names.endpoints_table,
            n.ENV_JOBS_TABLE: names.jobs_table,
            n.ENV_JOB_STATS_TABLE: names.job_stats_table,
            n.ENV_IDEMPOTENCY_TABLE: names.idempotency_table,
            n.ENV_LEASES_TABLE: names.leases_table,
            n.ENV_API_KEYS_TABLE: names.api_keys_table,
            n.ENV_ACCESS_LOG_TABLE: names.access_log_table,
            n.ENV_AUDIT_EXPORTS_TABLE: names.audit_exports_table,
            n.ENV_ROUTES_TABLE: names.routes_table,
            n.ENV_ROUTE_SCAN_TABLE: names.route_scan_table,
            n.ENV_SUBSCRIPTIONS_TABLE: names.subscriptions_table,
            n.ENV_BUS_NAME: names.bus,
            n.ENV_STAGING_BUCKET: names.staging_bucket,
            n.ENV_AUDIT_BUCKET: names.audit_bucket,
            n.ENV_SECRETS_PREFIX: names.secrets_prefix,
            n.ENV_DEPLOYMENT_REGION: region,
            # SFTP egress (services/executor/egress.py): the demo SFTP server is on loopback.
            "FERRY_EGRESS_ALLOW": LOCAL_EGRESS_ALLOW,
        }
    )
    env_of_queue = {
        "executor_queue": n.ENV_EXECUTOR_QUEUE_URL,
        "validator_queue": n.ENV_VALIDATOR_QUEUE_URL,
        "projections_queue": n.ENV_PROJECTIONS_QUEUE_URL,
        "jobs_queue": n.ENV_JOBS_QUEUE_URL,
        "routes_queue": n.ENV_ROUTES_QUEUE_URL,
        "routes_projections_queue": n.ENV_ROUTES_PROJECTIONS_QUEUE_URL,
        "routes_tick_queue": n.ENV_ROUTES_TICK_QUEUE_URL,
        "notifications_queue": n.ENV_NOTIFICATIONS_QUEUE_URL,
        "notifications_deliver_queue": n.ENV_NOTIFICATIONS_DELIVER_QUEUE_URL,
        "audit_exports_queue": n.ENV_AUDIT_EXPORTS_QUEUE_URL,
    }
    for attr, url in queue_urls.items():
        if attr in env_of_queue:
            env[env_of_queue[attr]] = url
    return env


def create_resources(
    names: n.ResourceNames,
    endpoint_url: str,
    region: str = "us-east-1",
    *,
    messaging: n.ResourceNames | None = None,
    publications: bool = False,
) -> Resources:
    """Create (or find) every resource; safe to call again on the same server.

    ``messaging``: other names for the bus, archive, rules and queues than ``names`` (one
    region's own, beside tables and buckets shared by the regions: ferry/local/regions.py);
    ``publications``: also the publish-once claims table (active-active)."""
    out = Resources(names=names, endpoint_url=endpoint_url, region=region, messaging=messaging)
    ddb = aws_client("dynamodb", endpoint_url, region)
    _create_tables(ddb, names)
    if publications:
        from events.publications import create_publications_table

        create_publications_table(ddb, names.publications_table)
    _create_messaging(messaging or names, endpoint_url, region, out)
    _create_bucket(aws_client("s3", endpoint_url, region), names.staging_bucket, region)
    _create_bucket(aws_client("s3", endpoint_url, region), names.audit_bucket, region)
    return out


# --------------------------------------------------------------------------------- DynamoDB


def _create_tables(ddb: Any, names: n.ResourceNames) -> None:
    from events.dynamodb import create_events_table
    from services.executor.adapters import create_leases_table
    from services.jobs.adapters import create_idempotency_table
    from services.projections.tables import create_read_model_tables
    from services.routes.adapters import create_tables as create_routes_tables

    create_events_table(ddb, names.events_table)
    create_events_table(ddb, names.access_log_table, stream_view_type=None)  # reads (issue 11)
    DynamoKeyStore.create_table(ddb, names.api_keys_table)
    create_read_model_tables(ddb, names)
    create_idempotency_table(ddb, names.idempotency_table)
    create_leases_table(ddb, names.leases_table)
    create_routes_tables(ddb, names.routes_table, names.route_scan_table)
    from services.notifications.adapters import create_subscriptions_table

    create_subscriptions_table(ddb, names.subscriptions_table)
    from services.projections.audit_exports_adapters import create_audit_exports_table

    create_audit_exports_table(ddb, names.audit_exports_table)  # exports as jobs (issue 11)


# ------------------------------------------------------------------------- EventBridge/SQS


def _create_messaging(
    names: n.ResourceNames, endpoint_url: str, region: str, out: Resources
) -> None:
    events = aws_client("events", endpoint_url, region)
    sqs = aws_client("sqs", endpoint_url, region)
    try:
        out.bus_arn = events.create_event_bus(Name=names.bus)["EventBusArn"]
    except events.exceptions.ResourceAlreadyExistsException:
        out.bus_arn = events.describe_event_bus(Name=names.bus)["Arn"]
    try:
        events.create_archive(
            ArchiveName=names.archive,
            EventSourceArn=out.bus_arn,
            Description="Every Ferry event, for replay",
            EventPattern=json.dumps(n.rule_pattern(n.ALL_SOURCES, None)),
            RetentionDays=0,
        )
    except events.exceptions.ResourceAlreadyExistsException:
        pass

    for attr in QUEUE_NAMES:
        out.queue_urls[attr] = _create_queue(sqs, getattr(names, attr))

    rules = [(names.bus, rule, pattern, queue) for rule, (pattern, queue) in n.RULES.items()]
    rules += [
        (n.DEFAULT_BUS if bus == n.DEFAULT_BUS else names.bus, rule, pattern, queue)
        for rule, (bus, pattern, queue) in n.ROUTES_RULES.items()
    ]
    rules += [(names.bus, r, p, q) for r, (p, q) in n.NOTIFICATIONS_RULES.items()]
    for bus, rule_attr, pattern, queue_attr in rules:
        rule_name = getattr(names, rule_attr)
        rule_arn = events.put_rule(
            Name=rule_name,
            EventBusName=bus,
            EventPattern=json.dumps(pattern),
            State="ENABLED",
        )["RuleArn"]
        queue_url = out.queue_urls[queue_attr]
        queue_arn = _queue_arn(sqs, queue_url)
        sqs.set_queue_attributes(
            QueueUrl=queue_url,
            Attributes={"Policy": json.dumps(_queue_policy(queue_arn, rule_arn))},
        )
        events.put_targets(
            Rule=rule_name,
            EventBusName=bus,
            Targets=[{"Id": queue_attr, "Arn": queue_arn}],
        )


def _create_queue(sqs: Any, name: str) -> str:
    dlq_url = sqs.create_queue(QueueName=n.ResourceNames.dlq(name))["QueueUrl"]
    redrive = {"deadLetterTargetArn": _queue_arn(sqs, dlq_url), "maxReceiveCount": "5"}
    url: str = sqs.create_queue(
        QueueName=name,
        Attributes={"VisibilityTimeout": str(QUEUE_VISIBILITY_TIMEOUT)},
    )["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(redrive)})
    return url


def _queue_arn(sqs: Any, url: str) -> str:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return str(attrs["QueueArn"])


def _queue_policy(queue_arn: str, rule_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowFerryBusRule",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }


# ------------------------------------------------------------------------------------- S3


def _create_bucket(s3: Any, bucket: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in (
            "BucketAlreadyOwnedByYou",
            "BucketAlreadyExists",
        ):
            raise
