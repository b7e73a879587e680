"""Resource names and environment variable names, shared by infra/, the local stack and the tests.

One place, so that what `ferry up` creates on moto server and what the CDK app deploys to AWS
cannot drift. Every name is derived from a *prefix* (the stack/deployment name, default "ferry")
so that several deployments (or test runs) can share one account or one moto server.

Over 400 lines because it is the one registry of names: every resource name, env var, rule
pattern and API route lives here once, for infra, the services and the local stack alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# --- environment variable names read by the services' settings models --------------------
ENV_PREFIX = "FERRY_"
ENV_RESOURCE_PREFIX = "FERRY_PREFIX"  # the deployment prefix of ResourceNames (default "ferry")
ENV_AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"  # boto3 honours it natively (moto server locally)
ENV_REGION = "AWS_DEFAULT_REGION"
ENV_PERSISTENCE_MODULE = "PERSISTENCE_MODULE"  # eventsourcing's own mechanism
ENV_EVENTS_TABLE = "FERRY_EVENTS_TABLE"
ENV_ENDPOINTS_TABLE = "FERRY_ENDPOINTS_TABLE"
ENV_JOBS_TABLE = "FERRY_JOBS_TABLE"
ENV_JOB_STATS_TABLE = "FERRY_JOB_STATS_TABLE"  # jobs per hour (the projector's aggregate)
ENV_IDEMPOTENCY_TABLE = "FERRY_IDEMPOTENCY_TABLE"
ENV_LEASES_TABLE = "FERRY_LEASES_TABLE"
ENV_API_KEYS_TABLE = "FERRY_API_KEYS_TABLE"
ENV_ROUTES_TABLE = "FERRY_ROUTES_TABLE"
ENV_BUS_NAME = "FERRY_BUS_NAME"
ENV_EXECUTOR_QUEUE_URL = "FERRY_EXECUTOR_QUEUE_URL"
ENV_PROJECTIONS_QUEUE_URL = "FERRY_PROJECTIONS_QUEUE_URL"
ENV_JOBS_QUEUE_URL = "FERRY_JOBS_QUEUE_URL"
ENV_VALIDATOR_QUEUE_URL = "FERRY_VALIDATOR_QUEUE_URL"
ENV_STAGING_BUCKET = "FERRY_STAGING_BUCKET"
ENV_SECRETS_PREFIX = "FERRY_SECRETS_PREFIX"
ENV_DEPLOYMENT_REGION = "FERRY_REGION"
# S3 tenancy (services/endpoints/settings.py TenancySettings)
ENV_BUCKET_GRANTS = "FERRY_BUCKET_GRANTS"  # JSON {"customer_id": ["bucket", ...]}
ENV_OPERATOR_CUSTOMER = "FERRY_OPERATOR_CUSTOMER"  # may use untagged same-account buckets
ENV_RESERVED_BUCKETS = "FERRY_RESERVED_BUCKETS"  # comma-separated, besides owned_buckets
ENV_AUDIT_BUCKET = "FERRY_AUDIT_BUCKET"  # audit checkpoints (issue 11; Object Lock in AWS)
ENV_ACCESS_LOG_TABLE = "FERRY_ACCESS_LOG_TABLE"  # the chained log of API reads (issue 11)
ENV_ACCESS_LOG_ENABLED = "FERRY_ACCESS_LOG"  # "false": record no reads (tests only)
ENV_AUDIT_EXPORTS_TABLE = "FERRY_AUDIT_EXPORTS_TABLE"  # audit exports as jobs (issue 11)
ENV_AUDIT_EXPORTS_QUEUE_URL = "FERRY_AUDIT_EXPORTS_QUEUE_URL"  # → the audit exporter
# Active-active regions (issue 15, docs/multi-region-runtime.md): publish-once claims, peer buses
ENV_PUBLICATIONS_TABLE = "FERRY_PUBLICATIONS_TABLE"  # unset: one region, no claims
ENV_PEER_BUS_ARNS = "FERRY_PEER_BUS_ARNS"  # comma-separated ARNs of the other regions' buses
# Endpoint secrets' replicas (services/endpoints/settings.py; ferry/secret_regions.py)
ENV_SECRETS_REPLICA_REGIONS = "FERRY_SECRETS_REPLICA_REGIONS"  # comma-separated peer regions
ENV_SECRETS_REPLICA_KMS_KEY_ID = "FERRY_SECRETS_REPLICA_KMS_KEY_ID"  # e.g. alias/<prefix>-data


def deployment_region() -> str:
    """The region this process runs for: FERRY_REGION, else AWS_REGION, AWS_DEFAULT_REGION."""
    return (
        os.environ.get(ENV_DEPLOYMENT_REGION)
        or os.environ.get("AWS_REGION")
        or os.environ.get(ENV_REGION)
        or "us-east-1"
    )


@dataclass(frozen=True)
class ResourceNames:
    """Every named AWS resource of one Ferry deployment."""

    prefix: str = "ferry"

    # DynamoDB
    @property
    def events_table(self) -> str:
        """The event store: pk stream_id (S), sk version (N); stream NEW_IMAGE."""
        return f"{self.prefix}-events"

    @property
    def endpoints_table(self) -> str:
        """Read model: endpoints (pk endpoint_id; GSI by customer_id)."""
        return f"{self.prefix}-endpoints"

    @property
    def jobs_table(self) -> str:
        """Read model: job status (pk job_id; GSI by customer_id + created_at; failures)."""
        return f"{self.prefix}-jobs"

    @property
    def job_stats_table(self) -> str:
        """Read model: jobs per hour by status and bytes moved (pk customer_id, sk hour_shard
        "YYYY-MM-DDTHH#shard"; services/projections/stats.py)."""
        return f"{self.prefix}-job-stats"

    @property
    def routes_table(self) -> str:
        return f"{self.prefix}-routes"

    @property
    def idempotency_table(self) -> str:
        return f"{self.prefix}-idempotency"

    @property
    def leases_table(self) -> str:
        """Endpoint concurrency semaphore slots (leases with TTL)."""
        return f"{self.prefix}-leases"

    @property
    def api_keys_table(self) -> str:
        return f"{self.prefix}-api-keys"

    @property
    def access_log_table(self) -> str:
        """The access log (who read what, when): the event store's item format and hash chain
        (pk stream_id, sk version, GSI by-customer-time), no stream (ferry/access_log.py)."""
        return f"{self.prefix}-access-log"

    @property
    def audit_exports_table(self) -> str:
        """Audit exports started through the API (pk customer_id, sk ``export#<id>`` /
        ``key#<idempotency key hash>``; services/projections/audit_exports_adapters.py)."""
        return f"{self.prefix}-audit-exports"

    @property
    def publications_table(self) -> str:
        """Publish-once claims of the active-active publishers (pk ``<stream_id>#<version>``,
        TTL ``expires_at``; events/publications.py). Multi-region only."""
        return f"{self.prefix}-publications"

    @property
    def audit_exports_queue(self) -> str:
        """POST /audit/exports → the audit exporter (one message per export)."""
        return f"{self.prefix}-audit-exports"

    # EventBridge
    @property
    def bus(self) -> str:
        return f"{self.prefix}-bus"

    @property
    def archive(self) -> str:
        return f"{self.prefix}-archive"

    @property
    def executor_rule(self) -> str:
        return f"{self.prefix}-to-executor"

    @property
    def validator_rule(self) -> str:
        return f"{self.prefix}-to-validator"

    @property
    def projections_rule(self) -> str:
        return f"{self.prefix}-to-projections"

    @property
    def jobs_rule(self) -> str:
        return f"{self.prefix}-to-jobs"

    # SQS (each has a DLQ named <queue>-dlq)
    @property
    def executor_queue(self) -> str:
        return f"{self.prefix}-executor"

    @property
    def validator_queue(self) -> str:
        return f"{self.prefix}-validator"

    @property
    def endpoint_checks_queue(self) -> str:
        """The validator's verdicts (EndpointCheckCompleted) → the endpoints service."""
        return f"{self.prefix}-endpoint-checks"

    @property
    def endpoint_checks_rule(self) -> str:
        return f"{self.prefix}-to-endpoint-checks"

    @property
    def projections_queue(self) -> str:
        return f"{self.prefix}-projections"

    @property
    def jobs_queue(self) -> str:
        """The jobs process manager's queue (executor events)."""
        return f"{self.prefix}-jobs-pm"

    # Routes (issue 5)
    @property
    def route_scan_table(self) -> str:
        """The pull scanner's working state (stable-file detection, pending post-actions):
        pk ``route_id`` (S), sk ``key`` (S)."""
        return f"{self.prefix}-route-scan"

    @property
    def routes_queue(self) -> str:
        """S3 "Object Created" events (default bus) → the push consumer."""
        return f"{self.prefix}-routes-push"

    @property
    def routes_rule(self) -> str:
        """Rule on the account's DEFAULT bus: source aws.s3, detail-type Object Created."""
        return f"{self.prefix}-s3-to-routes"

    @property
    def routes_projections_queue(self) -> str:
        """ferry.routes events → the routes read-model consumer."""
        return f"{self.prefix}-routes-projections"

    @property
    def routes_projections_rule(self) -> str:
        return f"{self.prefix}-to-routes-projections"

    @property
    def routes_tick_queue(self) -> str:
        """Scanner ticks (AWS: an EventBridge Scheduler schedule; locally: services.routes.ticker)."""
        return f"{self.prefix}-routes-tick"

    @property
    def routes_tick_schedule(self) -> str:
        return f"{self.prefix}-routes-tick"

    @property
    def jobs_slow_check_schedule(self) -> str:
        """EventBridge Scheduler: the JobSlow check (issue 12), every minute."""
        return f"{self.prefix}-jobs-slow-check"

    @property
    def expiry_sweep_schedule(self) -> str:
        """EventBridge Scheduler (active-active): the expired-item sweep (events/expiry.py)."""
        return f"{self.prefix}-expiry-sweep"

    # Notifications (issue 12): subscriptions, the notifier's two queues and its bus rule
    @property
    def subscriptions_table(self) -> str:
        """Subscriptions (pk ``C#<customer>``, sk ``S#<id>``) and their deliveries
        (pk ``D#<subscription>``, sk the delivery key)."""
        return f"{self.prefix}-subscriptions"

    @property
    def notifications_queue(self) -> str:
        """Notifiable events (bus rule) → the notifier's fan-out (one message per match)."""
        return f"{self.prefix}-notifications"

    @property
    def notifications_deliver_queue(self) -> str:
        """One message per (subscription, event, attempt) → the notifier's delivery."""
        return f"{self.prefix}-notifications-deliver"

    @property
    def notifications_rule(self) -> str:
        return f"{self.prefix}-to-notifications"

    @property
    def subscription_secrets_prefix(self) -> str:
        """Webhook signing secrets: <prefix>/subscriptions/<customer_id>/<subscription_id>."""
        return f"{self.prefix}/subscriptions/"

    @staticmethod
    def dlq(queue_name: str) -> str:
        return f"{queue_name}-dlq"

    # S3
    @property
    def staging_bucket(self) -> str:
        return f"{self.prefix}-staging"

    @property
    def audit_bucket(self) -> str:
        """Audit checkpoints (``checkpoints/<customer>/<seq>.json``); Object Lock in compliance
        mode in AWS (deployed as ``<name>-<account>-<region>``)."""
        return f"{self.prefix}-audit"

    @property
    def audit_checkpoint_schedule(self) -> str:
        return f"{self.prefix}-audit-checkpoint"

    @property
    def access_logs_bucket(self) -> str:
        """The staging bucket's server access logs (deployed as ``<name>-<account>-<region>``)."""
        return f"{self.prefix}-access-logs"

    @property
    def owned_buckets(self) -> tuple[str, ...]:
        """Every bucket the deployment owns: refused for every customer endpoint (deployed
        with ``-<account>-<region>`` appended: S3 names are global)."""
        return (self.staging_bucket, self.access_logs_bucket, self.audit_bucket)

    # Secrets Manager
    @property
    def secrets_prefix(self) -> str:
        """Endpoint credentials live under <secrets_prefix><customer_id>/<endpoint_id>."""
        return f"{self.prefix}/endpoints/"

    def endpoint_secret_name(self, customer_id: str, endpoint_id: str) -> str:
        return f"{self.secrets_prefix}{customer_id}/{endpoint_id}"


# EventBridge event sources, one per bounded context.
SOURCE_ENDPOINTS = "ferry.endpoints"
SOURCE_JOBS = "ferry.jobs"
SOURCE_EXECUTOR = "ferry.executor"
SOURCE_ROUTES = "ferry.routes"
ALL_SOURCES = (SOURCE_ENDPOINTS, SOURCE_JOBS, SOURCE_EXECUTOR, SOURCE_ROUTES)

# Which detail-types each queue receives (EventBridge rule patterns are built from these in
# both infra/ and the local stack).
EXECUTOR_DETAIL_TYPES = ("JobQueued", "JobRetryScheduled")
VALIDATOR_DETAIL_TYPES = ("EndpointRegistered", "EndpointUpdated", "EndpointValidationRequested")
ENDPOINT_CHECKS_DETAIL_TYPES = ("EndpointCheckCompleted",)  # validator → endpoints service
JOBS_PM_DETAIL_TYPES = (
    "LeaseAcquired",
    "TransferStarted",
    "TransferVerified",
    "TransferAttemptFailed",
    "LeaseReleased",
)


def rule_pattern(sources: tuple[str, ...], detail_types: tuple[str, ...] | None) -> dict:
    """The EventBridge event pattern for a rule on the Ferry bus."""
    pattern: dict = {"source": list(sources)}
    if detail_types:
        pattern["detail-type"] = list(detail_types)
    return pattern


RULES: dict[str, tuple[dict, str]] = {}
"""rule attribute on ResourceNames -> (event pattern, queue attribute on ResourceNames)."""
RULES = {
    "executor_rule": (rule_pattern((SOURCE_JOBS,), EXECUTOR_DETAIL_TYPES), "executor_queue"),
    "validator_rule": (
        rule_pattern((SOURCE_ENDPOINTS,), VALIDATOR_DETAIL_TYPES),
        "validator_queue",
    ),
    "endpoint_checks_rule": (
        rule_pattern((SOURCE_EXECUTOR,), ENDPOINT_CHECKS_DETAIL_TYPES),
        "endpoint_checks_queue",
    ),
    "projections_rule": (rule_pattern(ALL_SOURCES, None), "projections_queue"),
    "jobs_rule": (rule_pattern((SOURCE_EXECUTOR,), JOBS_PM_DETAIL_TYPES), "jobs_queue"),
}


# --- routes (issue 5): appended by the routes engineer ------------------------------------------
ENV_ROUTE_SCAN_TABLE = "FERRY_ROUTE_SCAN_TABLE"
ENV_ROUTES_QUEUE_URL = "FERRY_ROUTES_QUEUE_URL"
ENV_ROUTES_PROJECTIONS_QUEUE_URL = "FERRY_ROUTES_PROJECTIONS_QUEUE_URL"
ENV_ROUTES_TICK_QUEUE_URL = "FERRY_ROUTES_TICK_QUEUE_URL"


DEFAULT_BUS = "default"
S3_OBJECT_CREATED_PATTERN: dict = {"source": ["aws.s3"], "detail-type": ["Object Created"]}
ROUTES_PROJECTIONS_PATTERN: dict = rule_pattern((SOURCE_ROUTES,), None)
ROUTES_RULES: dict[str, tuple[str, dict, str]] = {
    "routes_rule": (DEFAULT_BUS, S3_OBJECT_CREATED_PATTERN, "routes_queue"),
    "routes_projections_rule": ("ferry", ROUTES_PROJECTIONS_PATTERN, "routes_projections_queue"),
}
"""rule attribute on ResourceNames -> (bus: "default" = the account's default bus, "ferry" =
<prefix>-bus; event pattern; queue attribute on ResourceNames)."""

# --- notifications (issue 12) --------------------------------------------------------------------
ENV_SUBSCRIPTIONS_TABLE = "FERRY_SUBSCRIPTIONS_TABLE"
ENV_NOTIFICATIONS_QUEUE_URL = "FERRY_NOTIFICATIONS_QUEUE_URL"
ENV_NOTIFICATIONS_DELIVER_QUEUE_URL = "FERRY_NOTIFICATIONS_DELIVER_QUEUE_URL"
#: The events a subscription may ask for (the notifications rule's detail-types). Names of
#: events another part of issue 12 adds are listed already: a pattern may name a type not yet sent.
NOTIFICATIONS_DETAIL_TYPES = (
    "JobFailed",
    "JobSucceeded",
    "JobCancelled",
    "JobRetryScheduled",
    "JobSlow",
    "EndpointValidated",
    "EndpointValidationFailed",
    "EndpointDisabled",
    "RouteScanFailed",
    "RouteScanRecovered",
    "RouteFailing",
    "RouteFileLate",
    "RouteFileArrived",
    "FileDelivered",
    "FileDeliveryFailed",
)
NOTIFICATIONS_PATTERN: dict = rule_pattern(ALL_SOURCES, NOTIFICATIONS_DETAIL_TYPES)
NOTIFICATIONS_RULES: dict[str, tuple[dict, str]] = {
    "notifications_rule": (NOTIFICATIONS_PATTERN, "notifications_queue"),
}
"""rule attribute on ResourceNames -> (pattern on <prefix>-bus, queue attribute)."""

# S3 object metadata key on every object Ferry writes (targets, staging, archive copies):
# routes never trigger on such objects, so a route whose target is its own source cannot loop.
OBJECT_MARKER = "ferry-job-id"


# --- application metrics (Powertools Metrics, EMF): appended by the infra engineer ---------------
# Namespace = POWERTOOLS_METRICS_NAMESPACE, dimension "service" = POWERTOOLS_SERVICE_NAME of the
# emitter. The alarms and the dashboard (infra/constructs/monitoring.py) use exactly these.
METRICS_NAMESPACE = "Ferry"
METRIC_JOB_QUEUED = "JobQueued"  # jobs API: POST /transfers created a job (Count)
METRIC_JOB_CANCELLED = "JobCancelled"  # jobs API: a job was cancelled (Count)
METRIC_JOB_STARTED = "JobStarted"  # jobs process manager: JobStarted recorded (Count)
METRIC_JOB_RETRY_SCHEDULED = "JobRetryScheduled"  # jobs process manager (Count)
METRIC_JOB_SUCCEEDED = "JobSucceeded"  # jobs process manager (Count)
METRIC_JOB_FAILED = "JobFailed"  # jobs process manager (Count)
METRIC_BYTES_TRANSFERRED = "BytesTransferred"  # executor: bytes moved by an attempt (Bytes)
METRIC_JOB_DURATION_SECONDS = "JobDurationSeconds"  # executor: start → verified (Seconds)
METRICS_SERVICE_JOBS = "jobs"
METRICS_SERVICE_EXECUTOR = "executor"
METRIC_ACCESS_LOG_WRITE_FAILED = "AccessLogWriteFailed"  # ferry/access_log.py (service "api")
APP_METRICS: dict[str, str] = {
    METRIC_JOB_QUEUED: METRICS_SERVICE_JOBS,
    METRIC_JOB_CANCELLED: METRICS_SERVICE_JOBS,
    METRIC_JOB_STARTED: METRICS_SERVICE_JOBS,
    METRIC_JOB_RETRY_SCHEDULED: METRICS_SERVICE_JOBS,
    METRIC_JOB_SUCCEEDED: METRICS_SERVICE_JOBS,
    METRIC_JOB_FAILED: METRICS_SERVICE_JOBS,
    METRIC_BYTES_TRANSFERRED: METRICS_SERVICE_EXECUTOR,
    METRIC_JOB_DURATION_SECONDS: METRICS_SERVICE_EXECUTOR,
    METRIC_ACCESS_LOG_WRITE_FAILED: "api",
}
"""metric name -> the ``service`` dimension (POWERTOOLS_SERVICE_NAME) of the service emitting it."""

# --- the REST API: one route table for API Gateway (infra/) and the local API server -------
API_HANDLERS: dict[str, str] = {
    "endpoints": "services.endpoints.handlers",
    "jobs": "services.jobs.handlers",
    "queries": "services.projections.handlers",
    "routes": "services.routes.handlers",
    "notifications": "services.notifications.handlers",
}
"""API Lambda function -> the module whose ``handler`` it runs."""

API_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", "/endpoints", "endpoints"),
    ("PATCH", "/endpoints/{endpoint_id}", "endpoints"),
    ("POST", "/endpoints/{endpoint_id}/disable", "endpoints"),
    ("POST", "/endpoints/{endpoint_id}/enable", "endpoints"),
    ("POST", "/endpoints/{endpoint_id}/validate", "endpoints"),
    ("DELETE", "/endpoints/{endpoint_id}", "endpoints"),
    ("POST", "/transfers", "jobs"),
    ("POST", "/jobs/{job_id}/cancel", "jobs"),
    ("POST", "/jobs/{job_id}/redrive", "jobs"),
    ("GET", "/endpoints", "queries"),
    ("GET", "/endpoints/{endpoint_id}", "queries"),
    ("GET", "/endpoints/{endpoint_id}/events", "queries"),
    ("GET", "/jobs", "queries"),
    ("GET", "/jobs/{job_id}", "queries"),
    ("GET", "/jobs/{job_id}/events", "queries"),
    ("GET", "/openapi.json", "queries"),
    ("GET", "/me", "queries"),
    ("GET", "/stats/hourly", "queries"),
    ("POST", "/routes", "routes"),
    ("GET", "/routes", "routes"),
    ("GET", "/routes/{route_id}", "routes"),
    ("PATCH", "/routes/{route_id}", "routes"),
    ("POST", "/routes/{route_id}/disable", "routes"),
    ("POST", "/routes/{route_id}/enable", "routes"),
    ("GET", "/routes/{route_id}/events", "routes"),
    ("GET", "/routes/{route_id}/files", "routes"),
    ("POST", "/routes/{route_id}/files/retry", "routes"),
    ("GET", "/endpoints/{endpoint_id}/unrouted", "routes"),
    ("GET", "/audit/verify", "queries"),
    ("GET", "/audit/events", "queries"),
    ("GET", "/audit/access", "queries"),
    ("POST", "/audit/checkpoint", "queries"),
    ("POST", "/audit/exports", "queries"),
    ("GET", "/audit/exports", "queries"),
    ("GET", "/audit/exports/{export_id}", "queries"),
    ("POST", "/subscriptions", "notifications"),
    ("GET", "/subscriptions", "notifications"),
    ("GET", "/subscriptions/{subscription_id}", "notifications"),
    ("DELETE", "/subscriptions/{subscription_id}", "notifications"),
    ("POST", "/subscriptions/{subscription_id}/pause", "notifications"),
    ("POST", "/subscriptions/{subscription_id}/resume", "notifications"),
    ("POST", "/subscriptions/{subscription_id}/test", "notifications"),
    ("GET", "/subscriptions/{subscription_id}/deliveries", "notifications"),
)
"""(method, resource path, API function) for every route of the one REST API."""

API_PAGE_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/", "queries"),
    ("GET", "/console", "queries"),
    ("GET", "/console/{asset_name}", "queries"),
    ("GET", "/docs", "queries"),
    ("GET", "/docs/{asset_name}", "queries"),
    ("GET", "/swagger", "queries"),
)
"""Static pages (the operator console, the API docs; ``ferry.console``): public, served by the
queries function, not API operations (so not in API_ROUTES nor the OpenAPI document)."""

API_PUBLIC_ROUTES = frozenset({("GET", "/openapi.json")} | {(m, p) for m, p, _ in API_PAGE_ROUTES})
"""Routes that need no API key (ferry.api.PUBLIC_PATHS / PUBLIC_RESOURCES)."""
