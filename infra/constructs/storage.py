"""The S3 staging bucket (SFTP->SFTP transfers go through it) and its access-log bucket.

Lifecycle: incomplete multipart uploads are aborted after ``resume_window_days + 1`` days - strictly
longer than any transfer stays resumable, so a resume never finds its upload id gone because of the
lifecycle - and staging objects expire after ``staging_expiry_days`` (> the abort age), so a leg-1
object outlives every resumable leg 2. The executor deletes the staging object after success; the
expiry only sweeps what a final failure or a cancelled job left behind.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from ferry.names import ResourceNames


def staging_bucket_name(names: ResourceNames, stack: Stack) -> str:
    """S3 names are global: ``<names.staging_bucket>-<account>-<region>`` (env FERRY_STAGING_BUCKET)."""
    return f"{names.staging_bucket}-{stack.account}-{stack.region}"


class Storage(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        key: kms.IKey,
        multipart_abort_days: int,
        staging_expiry_days: int,
        versioned: bool = False,
    ) -> None:
        """``versioned``: active-active (S3 Cross-Region Replication needs versioning on both
        buckets); noncurrent versions then expire after a day."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            # a known name, so the endpoints service can refuse it (ResourceNames.owned_buckets)
            bucket_name=f"{names.access_logs_bucket}-{stack.account}-{stack.region}",
            encryption=s3.BucketEncryption.S3_MANAGED,  # server access logs cannot use SSE-KMS
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=Duration.days(365))],
        )
        self.staging = s3.Bucket(
            self,
            "Staging",
            bucket_name=staging_bucket_name(names, stack),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=versioned,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="staging/",
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-multipart",
                    abort_incomplete_multipart_upload_after=Duration.days(multipart_abort_days),
                ),
                s3.LifecycleRule(
                    id="expire-staging-objects", expiration=Duration.days(staging_expiry_days)
                ),
                *(
                    [
                        s3.LifecycleRule(
                            id="expire-noncurrent-versions",
                            noncurrent_version_expiration=Duration.days(1),
                        ),
                        s3.LifecycleRule(
                            id="remove-expired-delete-markers", expired_object_delete_marker=True
                        ),
                    ]
                    if versioned
                    else []
                ),
            ],
        )
