"""One Lambda invoked on an EventBridge Scheduler schedule (the audit checkpoint, the JobSlow
check): a role only the scheduler of this account may assume, allowed to invoke that one function
(its unqualified ARN: no versions, aliases or wildcard), and the schedule itself."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct


@dataclass(frozen=True)
class Retry:
    """What the scheduler does with a run it could not deliver."""

    max_age_seconds: int
    attempts: int


def lambda_schedule(
    scope: Construct,
    schedule_id: str,
    *,
    function: lambda_.IFunction,
    name: str,
    expression: str,
    description: str,
    role_description: str,
    sid: str,
    active: bool,
    retry: Retry,
) -> tuple[iam.Role, scheduler.CfnSchedule]:
    role = iam.Role(
        scope,
        "SchedulerRole",
        assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com",
            conditions={"StringEquals": {"aws:SourceAccount": Stack.of(scope).account}},
        ),
        description=role_description,
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid=sid, actions=["lambda:InvokeFunction"], resources=[function.function_arn]
        )
    )
    schedule = scheduler.CfnSchedule(
        scope,
        schedule_id,
        name=name,
        description=description,
        schedule_expression=expression,
        flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
        state="ENABLED" if active else "DISABLED",
        target=scheduler.CfnSchedule.TargetProperty(
            arn=function.function_arn,
            role_arn=role.role_arn,
            input='{"source": "scheduler"}',
            retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                maximum_event_age_in_seconds=retry.max_age_seconds,
                maximum_retry_attempts=retry.attempts,
            ),
        ),
    )
    return role, schedule
