"""CloudWatch alarms -> an SNS topic, and the Ferry dashboard.

Application metrics (namespace ``Ferry`` = POWERTOOLS_METRICS_NAMESPACE, dimension ``service`` =
POWERTOOLS_SERVICE_NAME, as Powertools Metrics emits them by EMF) are listed in
:data:`APP_METRICS` and in infra/README.md; the services must emit exactly these names.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

import ferry.names as n
from infra.constructs.functions import METRICS_NAMESPACE

JOB_STATUS_METRICS = (
    n.METRIC_JOB_QUEUED,  # jobs API, POST /transfers (count)
    n.METRIC_JOB_STARTED,  # jobs process manager (count)
    n.METRIC_JOB_RETRY_SCHEDULED,  # jobs process manager (count)
    n.METRIC_JOB_SUCCEEDED,  # jobs process manager (count)
    n.METRIC_JOB_FAILED,  # jobs process manager (count)
    n.METRIC_JOB_CANCELLED,  # jobs API (count)
)
BYTES_METRIC = n.METRIC_BYTES_TRANSFERRED  # executor, per finished attempt (Bytes)
DURATION_METRIC = n.METRIC_JOB_DURATION_SECONDS  # executor, per verified transfer (Seconds)
APP_METRICS: dict[str, str] = n.APP_METRICS
"""metric name -> the ``service`` dimension (POWERTOOLS_SERVICE_NAME) that emits it."""

FAILURE_RATE_THRESHOLD_PERCENT = 20
ONE_MINUTE = Duration.minutes(1)
EXECUTOR_OLDEST_MESSAGE_SECONDS = 13 * 3600  # retries wait up to 12 h invisible in the queue
LAMBDA_QUEUE_OLDEST_MESSAGE_SECONDS = 15 * 60
PUBLISHER_ITERATOR_AGE_MS = 60_000


def app_metric(name: str, statistic: str = "Sum", period: Duration = ONE_MINUTE) -> cw.Metric:
    return cw.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": APP_METRICS[name]},
        statistic=statistic,
        period=period,
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        dashboard_name: str,
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Alarms", master_key=key, enforce_ssl=True)
        if alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(alarm_email))
        for principal in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
            key.add_to_resource_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    principals=[iam.ServicePrincipal(principal)],
                    resources=["*"],
                )
            )
        self.action = cw_actions.SnsAction(self.topic)
        self.alarms: list[cw.Alarm] = []
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)

    def _alarm(self, cid: str, metric: cw.IMetric, threshold: float, description: str) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            cid,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(self.action)
        self.alarms.append(alarm)
        return alarm

    def dlq(self, cid: str, queue: sqs.IQueue) -> None:
        self._alarm(
            f"{cid}DlqDepth",
            queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            0,
            f"Messages in the dead-letter queue {cid}: inspect, fix, redrive",
        )

    def oldest_message(self, cid: str, queue: sqs.IQueue, seconds: int) -> None:
        self._alarm(
            f"{cid}OldestMessage",
            queue.metric_approximate_age_of_oldest_message(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            seconds,
            f"The oldest message in {cid} is older than {seconds} s: its consumer is stuck",
        )

    def function(self, cid: str, fn: lambda_.IFunction) -> None:
        self._alarm(
            f"{cid}Errors", fn.metric_errors(period=Duration.minutes(5)), 0, f"{cid} errors"
        )
        self._alarm(
            f"{cid}Throttles",
            fn.metric_throttles(period=Duration.minutes(5)),
            0,
            f"{cid} throttled",
        )

    def publisher_lag(self, fn: lambda_.IFunction) -> None:
        self._alarm(
            "PublisherIteratorAge",
            fn.metric("IteratorAge", statistic="Maximum", period=Duration.minutes(1)),
            PUBLISHER_ITERATOR_AGE_MS,
            "The publisher lags the event store stream by more than a minute",
        )

    def job_failure_rate(self) -> None:
        rate = cw.MathExpression(
            expression="IF((s + f) > 0, 100 * f / (s + f), 0)",
            using_metrics={
                "s": app_metric(n.METRIC_JOB_SUCCEEDED, period=Duration.minutes(15)),
                "f": app_metric(n.METRIC_JOB_FAILED, period=Duration.minutes(15)),
            },
            label="job failure rate (%)",
            period=Duration.minutes(15),
        )
        self._alarm(
            "JobFailureRate",
            rate,
            FAILURE_RATE_THRESHOLD_PERCENT,
            f"More than {FAILURE_RATE_THRESHOLD_PERCENT}% of finished jobs failed in 15 minutes",
        )

    def access_log_failures(self) -> None:
        self._alarm(
            "AccessLogWriteFailed",
            app_metric(n.METRIC_ACCESS_LOG_WRITE_FAILED, period=Duration.minutes(5)),
            0,
            "An API read was answered but not recorded in the access log (the entry is in the "
            "function's log as 'access log write failed': reconcile it)",
        )

    def fargate_task_failures(self, cluster: ecs.ICluster) -> None:
        rule = events.Rule(
            self,
            "ExecutorTaskFailed",
            description="An executor task stopped abnormally",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Task State Change"],
                detail={
                    "clusterArn": [cluster.cluster_arn],
                    "lastStatus": ["STOPPED"],
                    "stopCode": ["TaskFailedToStart", "EssentialContainerExited"],
                },
            ),
            targets=[targets.SnsTopic(self.topic)],
        )
        self._alarm(
            "ExecutorTaskFailures",
            cw.Metric(
                namespace="AWS/Events",
                metric_name="TriggeredRules",
                dimensions_map={"RuleName": rule.rule_name},
                statistic="Sum",
                period=Duration.minutes(5),
            ),
            0,
            "Executor Fargate tasks failed to start or exited",
        )

    def widgets(
        self, *, queues: dict[str, sqs.IQueue], executor_backlog: cw.IMetric | None
    ) -> None:
        bytes_per_second = cw.MathExpression(
            expression="b / PERIOD(b)",
            using_metrics={"b": app_metric(BYTES_METRIC)},
            label="bytes/s",
            period=Duration.minutes(1),
        )
        depth: list[cw.IMetric] = [
            q.metric_approximate_number_of_messages_visible(label=name, period=Duration.minutes(1))
            for name, q in queues.items()
        ]
        if executor_backlog is not None:
            depth.append(executor_backlog)
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Jobs per minute by status",
                left=[app_metric(m) for m in JOB_STATUS_METRICS],
                width=12,
            ),
            cw.GraphWidget(title="Bytes per second", left=[bytes_per_second], width=12),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Queue depth", left=depth, width=12),
            cw.GraphWidget(
                title="Job duration p95 (s)",
                left=[app_metric(DURATION_METRIC, statistic="p95", period=Duration.minutes(5))],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24)
        )
