"""The Ferry CDK app: one FerryStack per region of the ``regions`` context, checked by cdk-nag."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import FerryConfig
from infra.constructs.multi_region import ApiDomainStack
from infra.stack import FerryStack

# Feature flags the app relies on (also in infra/cdk.json for the CLI).
FEATURE_FLAGS: dict[str, Any] = {
    # access-log delivery by bucket policy, not the legacy LogDeliveryWrite ACL
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    # the regions are concrete: write their partition (aws-us-gov) instead of AWS::Partition
    "@aws-cdk/core:enablePartitionLiterals": True,
    # active-active: the API-domain stacks reference their region's API by plain exports
    "@aws-cdk/core:defaultCrossStackReferences": "strong",
}


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> cdk.App:
    """The app with every regional stack. ``context`` adds/overrides CDK context values."""
    # outdir None -> $CDK_OUTDIR (set by the CDK CLI or the caller) or ./cdk.out
    app = cdk.App(context={**FEATURE_FLAGS, **(context or {})}, outdir=outdir)
    cfg = FerryConfig.from_context(app.node.try_get_context)
    for region in cfg.regions:
        stack = FerryStack(app, cfg, region)
        if cfg.active_active and not cfg.api_domain_name:
            cdk.Annotations.of(stack).add_warning_v2(
                "ferry:NoApiFailoverRecords",
                "multi_region=active_active without api_domain_name/api_hosted_zone_id: no custom "
                "domain, health checks or Route 53 records; clients must pick a region's API URL",
            )
        if cfg.active_active and cfg.api_domain_name and cfg.api_hosted_zone_id:
            ApiDomainStack(
                app,
                prefix=cfg.prefix,
                account=cfg.account,
                region=region,
                api=stack.api.api,
                domain_name=cfg.api_domain_name,
                hosted_zone_id=cfg.api_hosted_zone_id,
            ).add_stack_dependency(stack)
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app


def main(context: dict[str, Any] | None = None) -> None:
    build_app(context).synth()
