"""A Ferry Lambda function: Powertools environment, X-Ray, JSON logs, the shared code + layer."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from ferry.names import METRICS_NAMESPACE  # POWERTOOLS_METRICS_NAMESPACE of every service
from infra.constructs.code import ARCHITECTURE, PYTHON_RUNTIME, function_code

__all__ = ["METRICS_NAMESPACE", "FerryFunction", "powertools_environment"]

LOG_LEVEL = "INFO"
API_TIMEOUT = Duration.seconds(29)  # API Gateway integration limit


def handler_string(path: str) -> str:
    """``services/jobs/handlers.py:handler`` -> ``services.jobs.handlers.handler``."""
    module, _, attr = path.partition(":")
    return module.removesuffix(".py").replace("/", ".") + "." + attr


def powertools_environment(service: str) -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_LOG_LEVEL": LOG_LEVEL,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    }


class FerryFunction(lambda_.Function):
    """One Lambda entry point of a Ferry service."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        entry: str,
        service: str,
        environment: dict[str, str],
        layer: lambda_.ILayerVersion,
        key: kms.IKey,
        timeout: Duration = API_TIMEOUT,
        memory_size: int = 512,
        reserved_concurrency: int | None = None,
    ) -> None:
        self.entry = entry
        log_group = logs.LogGroup(
            scope,
            f"{construct_id}Logs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        super().__init__(
            scope,
            construct_id,
            runtime=PYTHON_RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler_string(entry),
            code=function_code(),
            layers=[layer],
            environment={**environment, **powertools_environment(service)},
            environment_encryption=key,
            tracing=lambda_.Tracing.ACTIVE,
            timeout=timeout,
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrency or None,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            description=f"Ferry {service}: {entry}",
        )
