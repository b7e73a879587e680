"""cdk-nag AwsSolutions suppressions: each one justified, and IAM ones scoped to the finding."""

from __future__ import annotations

from aws_cdk import Stack
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo

from ferry.names import ResourceNames

# rule id -> reason, for findings that hold for the whole stack by design
STACK_SUPPRESSIONS: dict[str, str] = {
    "AwsSolutions-L1": (
        "Python 3.11 on purpose: pyproject requires-python, the dependencies layer and the "
        "executor image are built for 3.11; moving runtime is a project decision, not infra's."
    ),
    "AwsSolutions-APIG3": (
        "WAF is deployment-specific (GovCloud managed rule availability, partner IP ranges): "
        "associate a web ACL per deployment; API keys + usage-plan throttling/quota protect "
        "the API in the meantime."
    ),
    "AwsSolutions-APIG4": (
        "Authentication is the x-api-key header: API Gateway requires a key of the usage plan and "
        "the handler maps the key's hash to a customer (ferry/api.py, api-keys table). "
        "GET /openapi.json is public by design (the API description, no data), and so are the "
        "console and docs pages (GET /, /console, /docs: static files, no data; their API calls "
        "carry the user's key)."
    ),
    "AwsSolutions-COG4": (
        "Ferry customers are machines authenticated by API keys (see APIG4), not Cognito users."
    ),
    "AwsSolutions-ECS2": (
        "The environment holds resource names and queue URLs only (ferry/names.py); endpoint "
        "credentials are read from Secrets Manager at run time, per job."
    ),
    "AwsSolutions-SQS3": (
        "Flagged queues are themselves dead-letter queues (<queue>-dlq, the publisher's "
        "on-failure destination): a DLQ of a DLQ would hide failures; each has a depth alarm."
    ),
}


def iam_suppressions(names: ResourceNames) -> dict[str, list[tuple[str, str]]]:
    """rule id -> [(finding regex, reason)]: each IAM4/IAM5 finding the app produces, explained."""
    secrets = names.secrets_prefix.replace("/", r"\/")
    partition = r"(<AWS::Partition>|aws[a-z-]*)"  # a literal with enablePartitionLiterals
    return {
        "AwsSolutions-IAM4": [
            (
                rf"^Policy::arn:{partition}:iam::aws:policy/service-role/"
                r"(AWSLambdaBasicExecutionRole|AmazonAPIGatewayPushToCloudWatchLogs)$",
                "AWS-maintained log-delivery policies only (Lambda logs, API Gateway account "
                "logging); every data permission is a scoped inline policy.",
            )
        ],
        "AwsSolutions-IAM5": [
            (
                r"^Action::kms:(GenerateDataKey|ReEncrypt)\*$",
                "CDK's grant on the deployment's one data key (the resource is that key ARN).",
            ),
            (
                r"^Action::s3:(Abort|DeleteObject|GetBucket|GetObject|List)\*$",
                "CDK's read/write/delete grant on the staging bucket only (resource-scoped).",
            ),
            (
                r"^Resource::<Tables(Endpoints|Jobs|Routes|Events)[0-9A-F]+\.Arn>/index/\*$",
                "Queries on the read models' GSIs (customer-index, customer-created-index, "
                "customer-status-index) and the event store's by-customer-time (issue 11) of "
                "the named table.",
            ),
            (
                r"^Resource::<AuditAccessLog[0-9A-F]+\.Arn>/index/\*$",
                "Queries on the access log's by-customer-time index (GET /audit/access, "
                "verification and checkpoints of the access log: issue 11).",
            ),
            (
                r"^Resource::<StorageStaging[0-9A-F]+\.Arn>/\*$",
                "Objects of the staging bucket (the SFTP->SFTP legs' intermediate files).",
            ),
            (
                r"^Resource::<AuditCheckpoints[0-9A-F]+\.Arn>/\*$",
                "Checkpoint objects of the audit bucket (Object Lock compliance; delete and "
                "retention changes explicitly denied to Ferry's roles).",
            ),
            (
                r"^Resource::<AuditCheckpoints[0-9A-F]+\.Arn>/exports/\*$",
                "Audit exports (POST /audit/exports): the exporter may only put objects under "
                "exports/ of the audit bucket (one folder per customer and export, named at run "
                "time); delete and retention changes explicitly denied.",
            ),
            (
                rf"^Resource::arn:{partition}:dynamodb:[a-z0-9-]+:<AWS::AccountId>:"
                rf"table/({names.events_table}|{names.endpoints_table})/index/\*$",
                "The event store's by-customer-time GSI (issue 11) and, active-active, the "
                "endpoints registry's customer-index on the imported global-table replicas "
                "(their ARNs are known by name only).",
            ),
            (
                rf"^Resource::arn:{partition}:secretsmanager:[a-z0-9-]+:<AWS::AccountId>:"
                rf"secret:{secrets}\*$",
                "One secret per customer endpoint, created at run time under the deployment's "
                "prefix: the endpoints Lambda writes (never reads), the executor reads.",
            ),
            (
                rf"^Resource::arn:{partition}:iam::\*:role/\*$",
                "Customers' roles for their S3 endpoints, unknown until registered: sts:AssumeRole "
                "only, only with a Ferry external id (condition sts:ExternalId ferry-*); each "
                "customer's trust policy names this role and its endpoint's external id.",
            ),
            (
                rf"^Resource::arn:{partition}:s3:::{names.staging_bucket}-"
                r"(<AWS::AccountId>|[0-9]{12})-[a-z0-9-]+/\*$",
                "Active-active staging CRR: the replication role may replicate objects into the "
                "other region's staging bucket only (s3:Replicate* on its objects).",
            ),
            (
                rf"^Resource::arn:{partition}:kms:[a-z0-9-]+:(<AWS::AccountId>|[0-9]{{12}}):key/\*$",
                "Active-active staging CRR: the other region's data key, whose id only that "
                "region's stack knows; limited to the key behind Ferry's alias "
                "(kms:ResourceAliases) and to use through S3 in that region (kms:ViaService).",
            ),
            (
                r"^Resource::\*$",
                "Actions without resource-level permissions (X-Ray PutTraceSegments/"
                "PutTelemetryRecords, ecr:GetAuthorizationToken) and KMS for customers' S3 "
                "buckets restricted by kms:ViaService=s3.<region>.",
            ),
        ],
    }


def suppress(stack: Stack, names: ResourceNames) -> None:
    suppressions = [
        NagPackSuppression(id=rule, reason=reason) for rule, reason in STACK_SUPPRESSIONS.items()
    ]
    for rule, findings in iam_suppressions(names).items():
        for regex, reason in findings:
            suppressions.append(
                NagPackSuppression(
                    id=rule, reason=reason, applies_to=[RegexAppliesTo(regex=f"/{regex}/")]
                )
            )
    NagSuppressions.add_stack_suppressions(stack, suppressions)
