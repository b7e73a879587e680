"""Active-active pieces (``multi_region=active_active``, docs/multi-region.md).

- the runtime settings the publisher needs: ``FERRY_PUBLICATIONS_TABLE`` (the MRSC publication
  claims) and ``FERRY_PEER_BUS_ARNS`` (comma-separated ARNs of the other regions' buses; the region
  is ``FERRY_REGION``);
- :func:`staging_replication`: S3 Cross-Region Replication of this region's staging bucket to the
  other region's (versioned buckets, SSE-KMS with each region's data key, delete markers too);
- :class:`ApiDomainStack`: one small stack per region (same region as the regional stack, so its
  references to the API are plain CloudFormation exports) holding the API's custom domain, its
  certificate, a Route 53 health check of the region's API and the region's latency record. It is
  its own stack so that the regional stack stays clear of CloudFormation's 500-resources limit.
"""

from __future__ import annotations

from aws_cdk import Duration, Environment, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_s3 as s3
from constructs import Construct

from ferry import names as n
from ferry.names import ResourceNames

ENV_PUBLICATIONS_TABLE = n.ENV_PUBLICATIONS_TABLE
"""The publication-claims table (MRSC): the publisher claims each event before putting it."""
ENV_PEER_BUS_ARNS = n.ENV_PEER_BUS_ARNS
"""Comma-separated ARNs of the other regions' Ferry buses (the claim winner puts to all)."""

PUBLICATION_ITEM_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
"""All the publisher may do on the publications table."""

HEALTH_CHECK_PATH = "/v1/openapi.json"
"""The API's public GET (no key, no data): 200 while the region's API and its Lambda answer."""


def peer_bus_arn(stack: Stack, names: ResourceNames, region: str) -> str:
    return stack.format_arn(
        service="events", region=region, resource="event-bus", resource_name=names.bus
    )


def peer_bucket_name(names: ResourceNames, stack: Stack, region: str) -> str:
    """A region's staging bucket (``infra.constructs.storage.staging_bucket_name``)."""
    return f"{names.staging_bucket}-{stack.account}-{region}"


def staging_replication(
    scope: Construct,
    *,
    names: ResourceNames,
    bucket: s3.Bucket,
    key: kms.IKey,
    peer_region: str,
    key_alias: str,
) -> iam.Role:
    """Replicate every staging object (and delete marker) to the peer region's staging bucket,
    re-encrypted there with the peer's data key (same alias). The role may read this bucket's
    object versions, decrypt with this region's key through S3 only, replicate into the peer
    bucket only and encrypt with the peer's data key through S3 only."""
    stack = Stack.of(scope)
    # the bucket's ARN by name: its replication configuration names this role (no cycle)
    own_bucket_arn = f"arn:{stack.partition}:s3:::{peer_bucket_name(names, stack, stack.region)}"
    peer_bucket = peer_bucket_name(names, stack, peer_region)
    peer_bucket_arn = f"arn:{stack.partition}:s3:::{peer_bucket}"
    peer_key_alias_arn = stack.format_arn(
        service="kms", region=peer_region, resource="alias", resource_name=key_alias
    )
    role = iam.Role(
        scope,
        "StagingReplicationRole",
        assumed_by=iam.ServicePrincipal("s3.amazonaws.com"),
        description=f"S3 CRR of the staging bucket to {peer_bucket}",
        inline_policies={
            "Replicate": iam.PolicyDocument(
                statements=[
                    iam.PolicyStatement(
                        sid="ReadReplicationConfiguration",
                        actions=["s3:GetReplicationConfiguration", "s3:ListBucket"],
                        resources=[own_bucket_arn],
                    ),
                    iam.PolicyStatement(
                        sid="ReadSourceVersions",
                        actions=[
                            "s3:GetObjectVersionForReplication",
                            "s3:GetObjectVersionAcl",
                            "s3:GetObjectVersionTagging",
                        ],
                        resources=[f"{own_bucket_arn}/*"],
                    ),
                    iam.PolicyStatement(
                        sid="ReplicateIntoPeerBucket",
                        actions=["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
                        resources=[f"{peer_bucket_arn}/*"],
                    ),
                    iam.PolicyStatement(
                        sid="DecryptSourceViaS3",
                        actions=["kms:Decrypt"],
                        resources=[key.key_arn],
                        conditions={
                            "StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}
                        },
                    ),
                    iam.PolicyStatement(
                        sid="EncryptWithPeerDataKeyViaS3",
                        actions=["kms:Encrypt", "kms:GenerateDataKey"],
                        # the peer's key id is only known in the peer's stack: any key there,
                        # but only the one behind Ferry's alias, and only through S3
                        resources=[
                            stack.format_arn(
                                service="kms", region=peer_region, resource="key", resource_name="*"
                            )
                        ],
                        conditions={
                            "StringEquals": {"kms:ViaService": f"s3.{peer_region}.amazonaws.com"},
                            "ForAnyValue:StringEquals": {
                                "kms:ResourceAliases": f"alias/{key_alias}"
                            },
                        },
                    ),
                ]
            )
        },
    )
    cfn = bucket.node.default_child
    assert isinstance(cfn, s3.CfnBucket)
    cfn.replication_configuration = s3.CfnBucket.ReplicationConfigurationProperty(
        role=role.role_arn,
        rules=[
            s3.CfnBucket.ReplicationRuleProperty(
                id="staging-to-peer",
                status="Enabled",
                priority=1,
                filter=s3.CfnBucket.ReplicationRuleFilterProperty(prefix=""),
                delete_marker_replication=s3.CfnBucket.DeleteMarkerReplicationProperty(
                    status="Enabled"
                ),
                source_selection_criteria=s3.CfnBucket.SourceSelectionCriteriaProperty(
                    sse_kms_encrypted_objects=s3.CfnBucket.SseKmsEncryptedObjectsProperty(
                        status="Enabled"
                    )
                ),
                destination=s3.CfnBucket.ReplicationDestinationProperty(
                    bucket=peer_bucket_arn,
                    encryption_configuration=s3.CfnBucket.EncryptionConfigurationProperty(
                        replica_kms_key_id=peer_key_alias_arn
                    ),
                ),
            )
        ],
    )
    return role


def api_domain_stack_name(prefix: str, region: str) -> str:
    return f"{prefix.capitalize()}-{region}-api-domain"


class ApiDomainStack(Stack):
    """The API's custom domain in one region + Route 53 latency routing with a health check.

    Both regions hold the same domain name (regional endpoint, own ACM certificate, DNS-validated
    in the hosted zone); each region's latency alias record carries a health check of that
    region's API (``GET /v1/openapi.json`` on its execute-api host), so Route 53 answers with the
    nearest *healthy* region and stops answering with a region whose API fails."""

    def __init__(
        self,
        scope: Construct,
        *,
        prefix: str,
        account: str | None,
        region: str,
        api: apigw.RestApi,
        domain_name: str,
        hosted_zone_id: str,
    ) -> None:
        super().__init__(
            scope,
            api_domain_stack_name(prefix, region),
            env=Environment(account=account, region=region),
            description=f"Ferry API domain {domain_name} in {region} (latency record + health check)",
        )
        zone = route53.HostedZone.from_hosted_zone_id(self, "Zone", hosted_zone_id)
        self.certificate = acm.Certificate(
            self,
            "Certificate",
            domain_name=domain_name,
            validation=acm.CertificateValidation.from_dns(zone),
        )
        self.domain = apigw.DomainName(
            self,
            "Domain",
            domain_name=domain_name,
            certificate=self.certificate,
            endpoint_type=apigw.EndpointType.REGIONAL,
            security_policy=apigw.SecurityPolicy.TLS_1_2,
        )
        self.domain.add_base_path_mapping(api, stage=api.deployment_stage)
        self.health_check = route53.CfnHealthCheck(
            self,
            "HealthCheck",
            health_check_config=route53.CfnHealthCheck.HealthCheckConfigProperty(
                type="HTTPS",
                fully_qualified_domain_name=f"{api.rest_api_id}.execute-api.{region}.{self.url_suffix}",
                resource_path=HEALTH_CHECK_PATH,
                port=443,
                enable_sni=True,
                request_interval=int(Duration.seconds(30).to_seconds()),
                failure_threshold=3,
            ),
            health_check_tags=[
                route53.CfnHealthCheck.HealthCheckTagProperty(
                    key="Name", value=f"{prefix}-api-{region}"
                )
            ],
        )
        self.record = route53.CfnRecordSet(
            self,
            "LatencyRecord",
            hosted_zone_id=hosted_zone_id,
            name=domain_name,
            type="A",
            set_identifier=region,
            region=region,
            health_check_id=self.health_check.attr_health_check_id,
            alias_target=route53.CfnRecordSet.AliasTargetProperty(
                dns_name=self.domain.domain_name_alias_domain_name,
                hosted_zone_id=self.domain.domain_name_alias_hosted_zone_id,
                evaluate_target_health=True,
            ),
        )
