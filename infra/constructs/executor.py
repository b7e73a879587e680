"""The executor on ECS Fargate: private subnets, NAT egress through static Elastic IPs.

The task runs ``python -m services.executor`` (the executor and the endpoint validator workers)
from services/executor/Dockerfile. Synthesis only stages the build context (no Docker); ``cdk
deploy`` builds and pushes the image. Where no Docker is available at deploy, pass
``-c executor_image=ecr:<repository>:<tag>`` to run a pre-built image instead.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Fn, RemovalPolicy
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import ECR_IMAGE_PREFIX
from infra.constructs.code import DOCKER_CONTEXT_EXCLUDE, REPO_ROOT
from infra.constructs.functions import powertools_environment

DOCKERFILE = "services/executor/Dockerfile"
COMMAND = ["python", "-m", "services.executor"]
AZS = 2
STOP_TIMEOUT = Duration.seconds(120)  # SIGTERM -> finish/abandon the chunk, release the lease


class Network(Construct):
    """VPC: public subnets (NAT only), private subnets with egress via NAT with static EIPs."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.eips = [ec2.CfnEIP(self, f"NatEip{i}", domain="vpc", tags=[]) for i in range(AZS)]
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=AZS,
            nat_gateways=AZS,
            nat_gateway_provider=ec2.NatProvider.gateway(
                eip_allocation_ids=[e.attr_allocation_id for e in self.eips]
            ),
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
                ),
            ],
            gateway_endpoints={
                "DynamoDb": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                )
            },
        )
        flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.vpc.add_flow_log(
            "FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs)
        )
        CfnOutput(
            self,
            "NatEgressIps",
            value=Fn.join(",", [e.attr_public_ip for e in self.eips]),
            description="Static egress IPs of the executor: partners allowlist these",
        )


class Executor(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        environment: dict[str, str],
        image: str,
        cpu: int,
        memory_mib: int,
        max_tasks: int,
        queues: list[sqs.IQueue],
        stop_timeout: Duration = STOP_TIMEOUT,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=cpu,
            memory_limit_mib=memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.container = self.task_definition.add_container(
            "executor",
            image=container_image(self, image),
            command=COMMAND,
            environment={**environment, **powertools_environment("executor")},
            logging=ecs.LogDrivers.aws_logs(stream_prefix="executor", log_group=self.log_group),
            stop_timeout=stop_timeout,  # SIGTERM: finish/abandon the chunk, release the lease
            readonly_root_filesystem=False,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "EgressOnly",
            vpc=vpc,
            allow_all_outbound=True,
            description="Ferry executor: egress only to partners SFTP and S3, no inbound rule",
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=0,
            assign_public_ip=False,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
        )
        # Scale on the work waiting or in flight in the executor's queues (visible + in flight:
        # a running transfer keeps its task), to zero when both are empty.
        backlog = cw.MathExpression(
            expression=" + ".join(f"v{i} + f{i}" for i in range(len(queues))),
            using_metrics={
                **{
                    f"v{i}": q.metric_approximate_number_of_messages_visible(
                        period=Duration.minutes(1), statistic="Maximum"
                    )
                    for i, q in enumerate(queues)
                },
                **{
                    f"f{i}": q.metric_approximate_number_of_messages_not_visible(
                        period=Duration.minutes(1), statistic="Maximum"
                    )
                    for i, q in enumerate(queues)
                },
            },
            label="executor backlog",
            period=Duration.minutes(1),
        )
        self.backlog = backlog
        self.scaling = self.service.auto_scale_task_count(min_capacity=0, max_capacity=max_tasks)
        self.scaling.scale_on_metric(
            "Backlog",
            metric=backlog,
            adjustment_type=appscaling.AdjustmentType.EXACT_CAPACITY,
            scaling_steps=[
                # CDK splits these at 9.5 into a scale-in alarm (<= 9.5) and a scale-out alarm
                # (>= 9.5); a half-integer keeps an integer backlog from triggering both.
                appscaling.ScalingInterval(upper=0.5, change=0),
                appscaling.ScalingInterval(lower=0.5, upper=9.5, change=1),
                appscaling.ScalingInterval(lower=9.5, upper=49.5, change=max(2, max_tasks // 3)),
                appscaling.ScalingInterval(lower=49.5, change=max_tasks),
            ],
            cooldown=Duration.minutes(2),
            evaluation_periods=1,
        )


def executor_settings_environment(prefix: str, lease_seconds: int) -> dict[str, str]:
    """The executor's own settings, by the names its settings model reads (no drift)."""
    from services.executor.settings import ExecutorSettings

    env_prefix = ExecutorSettings.model_config.get("env_prefix", "")
    prefix_alias = ExecutorSettings.model_fields["prefix"].validation_alias
    return {
        str(prefix_alias): prefix,
        f"{env_prefix}LEASE_SECONDS".upper(): str(lease_seconds),
        f"{env_prefix}RUN_VALIDATOR".upper(): "true",  # the validator queue's consumer
    }


def container_image(scope: Construct, image: str) -> ecs.ContainerImage:
    """``asset`` -> services/executor/Dockerfile (repo root context); ``ecr:<repo>:<tag>``."""
    if image.startswith(ECR_IMAGE_PREFIX):
        _, repository, tag = image.split(":")
        repo = ecr.Repository.from_repository_name(scope, "ImageRepository", repository)
        return ecs.ContainerImage.from_ecr_repository(repo, tag)
    dockerfile = REPO_ROOT / DOCKERFILE
    if not dockerfile.exists():
        raise FileNotFoundError(
            f"{DOCKERFILE} is missing: add it, or synthesize with -c executor_image=ecr:<repo>:<tag>"
        )
    return ecs.ContainerImage.from_asset(
        str(REPO_ROOT), file=DOCKERFILE, exclude=DOCKER_CONTEXT_EXCLUDE
    )
