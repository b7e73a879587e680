"""The notifications service's AWS adapters: the subscriptions table (subscriptions and their
deliveries), signing secrets in Secrets Manager, the delivery queue (SQS), the jobs read model
(for route/endpoint filters on job events) and SES. The only boto3 in the service."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from events.dynamodb_values import deserialize, serialize, to_attribute
from ferry.secret_regions import ReplicatedSecrets, delete_everywhere
from services.notifications.ports import Outcome

logger = Logger(service="ferry-notifications", child=True)

Item = dict[str, Any]


def _client(service: str, client: Any) -> Any:
    if client is not None:
        return client
    import boto3

    from ferry.names import deployment_region

    session: Any = boto3.session.Session()
    # this region's (in the two-region simulation too, where AWS_DEFAULT_REGION is shared)
    return session.client(service, region_name=deployment_region())


def create_subscriptions_table(ddb: Any, name: str) -> None:
    try:
        ddb.create_table(
            TableName=name,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise


def _sub_key(customer_id: str, subscription_id: str) -> dict[str, Any]:
    return serialize({"pk": f"C#{customer_id}", "sk": f"S#{subscription_id}"})


def _delivery_key(subscription_id: str, key: str) -> dict[str, Any]:
    return serialize({"pk": f"D#{subscription_id}", "sk": key})


def _strip(item: Item) -> Item:
    return {k: v for k, v in item.items() if k not in ("pk", "sk")}


class DynamoSubscriptionStore:
    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self._ddb = _client("dynamodb", client)

    def put(self, item: Item) -> None:
        row = {"pk": f"C#{item['customer_id']}", "sk": f"S#{item['subscription_id']}", **item}
        self._ddb.put_item(
            TableName=self.table,
            Item=serialize({k: v for k, v in row.items() if v is not None}),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get(self, customer_id: str, subscription_id: str) -> Item | None:
        found = self._ddb.get_item(
            TableName=self.table, Key=_sub_key(customer_id, subscription_id), ConsistentRead=True
        ).get("Item")
        return _strip(deserialize(found)) if found else None

    def of_customer(self, customer_id: str) -> list[Item]:
        return self._query(f"C#{customer_id}", "S#", 10_000)

    def _query(self, pk: str, prefix: str | None, limit: int) -> list[Item]:
        items: list[Item] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk" + (" AND begins_with(sk, :p)" if prefix else ""),
            "ExpressionAttributeValues": serialize(
                {":pk": pk, **({":p": prefix} if prefix else {})}
            ),
            "ConsistentRead": True,
        }
        while len(items) < limit:
            page = self._ddb.query(**kwargs)
            items += [_strip(deserialize(i)) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return items[:limit]

    def set_status(
        self, customer_id: str, subscription_id: str, status: str, at: str
    ) -> Item | None:
        try:
            found = self._ddb.update_item(
                TableName=self.table,
                Key=_sub_key(customer_id, subscription_id),
                UpdateExpression="SET #s = :s, updated_at = :at",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=serialize({":s": status, ":at": at}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _conditional(error):
                return None
            raise
        return _strip(deserialize(found["Attributes"]))

    def delete(self, customer_id: str, subscription_id: str) -> Item | None:
        found = self._ddb.delete_item(
            TableName=self.table, Key=_sub_key(customer_id, subscription_id), ReturnValues="ALL_OLD"
        ).get("Attributes")
        return _strip(deserialize(found)) if found else None

    def deliveries(self, subscription_id: str, limit: int) -> list[Item]:
        return self._query(f"D#{subscription_id}", None, limit)

    def delivery(self, subscription_id: str, key: str) -> Item | None:
        found = self._ddb.get_item(
            TableName=self.table, Key=_delivery_key(subscription_id, key), ConsistentRead=True
        ).get("Item")
        return _strip(deserialize(found)) if found else None

    def claim_attempt(
        self,
        subscription_id: str,
        key: str,
        attempt: int,
        fields: Item,
        now: str,
        stale_before: str,
    ) -> bool:
        """Attempt n is claimed when attempt n-1 was (n = 1: when nothing was), or when attempt n
        was claimed before ``stale_before`` and its result never recorded; never once final."""
        values: Item = {
            ":n": attempt,
            ":now": now,
            ":stale": stale_before,
            ":empty": [],
            ":pending": "pending",
            ":retrying": "retrying",
            **{f":{k}": v for k, v in fields.items() if v is not None},
        }
        if attempt == 1:
            first = "attribute_not_exists(claimed)"
        else:
            first, values[":prev"] = "claimed = :prev", attempt - 1
        sets = "".join(
            f", {k} = if_not_exists({k}, :{k})" for k, v in fields.items() if v is not None
        )
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key=_delivery_key(subscription_id, key),
                UpdateExpression=(
                    "SET claimed = :n, claimed_at = :now, created_at = if_not_exists(created_at, :now), "
                    "attempts = if_not_exists(attempts, :empty), #s = if_not_exists(#s, :pending)"
                    + sets
                ),
                ConditionExpression=(
                    f"(attribute_not_exists(#s) OR #s IN (:pending, :retrying)) AND ({first} OR "
                    "(claimed = :n AND claimed_at < :stale AND size(attempts) < :n))"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={k: to_attribute(v) for k, v in values.items()},
            )
        except ClientError as error:
            if _conditional(error):
                return False
            raise
        return True

    def record_attempt(
        self,
        subscription_id: str,
        key: str,
        attempt: int,
        record: Item,
        status: str,
        next_attempt_at: str | None,
    ) -> None:
        self._ddb.update_item(
            TableName=self.table,
            Key=_delivery_key(subscription_id, key),
            UpdateExpression="SET attempts = list_append(attempts, :r), #s = :s, next_attempt_at = :next",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":r": to_attribute([record]),
                ":s": to_attribute(status),
                ":next": to_attribute(next_attempt_at),
            },
        )


def _conditional(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class SecretsManagerSigningSecrets(ReplicatedSecrets):
    """Webhook signing secrets in Secrets Manager. ``replica_regions`` (active-active): created
    with a replica in each, read from this region's replica first and deleted in the primary's
    region, replicas first (ferry/secret_regions.py), so the notifier of either region signs a
    subscription's deliveries without the region that created it."""

    def __init__(self, client: Any = None, **kwargs: Any) -> None:
        super().__init__(_client("secretsmanager", client), **kwargs)

    def create(self, name: str, value: str, *, tags: dict[str, str]) -> str:
        arn, failed = self._create(name, value, "Ferry webhook signing secret", tags)
        for region, reason in failed:  # the notifier there uses the primary
            logger.warning(
                "signing secret not replicated", extra={"region": region, "reason": reason}
            )
        return arn

    def read(self, arn: str) -> str:
        (region, first), *rest = self._clients.candidates(arn)
        try:
            found = self._clients.for_region(region).get_secret_value(SecretId=first)
        except ClientError as error:
            if not rest or error.response.get("Error", {}).get("Code") != (
                "ResourceNotFoundException"
            ):
                raise
            found = self._clients.for_region(rest[0][0]).get_secret_value(SecretId=arn)
        return str(found["SecretString"])

    def delete(self, arn: str) -> None:
        if self._replicas:
            delete_everywhere(self._clients, arn)
        else:  # one region: no replicas to remove (and no DescribeSecret grant)
            self._client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


class SqsDeliveryQueue:
    def __init__(self, queue_url: str, client: Any = None) -> None:
        self.queue_url = queue_url
        self._sqs = _client("sqs", client)
        self._dlq_url: str | None = None

    def send(self, messages: list[Item], delay_seconds: int = 0) -> None:
        if not self.queue_url:
            raise RuntimeError("FERRY_NOTIFICATIONS_DELIVER_QUEUE_URL is not set")
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            result = self._sqs.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "MessageBody": json.dumps(m), "DelaySeconds": delay_seconds}
                    for i, m in enumerate(chunk)
                ],
            )
            if result.get("Failed"):
                raise RuntimeError(f"SQS refused {len(result['Failed'])} delivery message(s)")

    def dead_letter(self, message: Item) -> None:
        if self._dlq_url is None:
            attrs = self._sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"]
            )["Attributes"]
            arn = json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"]
            name, account = arn.rsplit(":", 1)[1], arn.split(":")[4]
            self._dlq_url = self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]
        self._sqs.send_message(QueueUrl=self._dlq_url, MessageBody=json.dumps(message))


class DynamoJobLookup:
    """The jobs read model (owned by projections), read for its route and endpoints only."""

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self._ddb = _client("dynamodb", client)

    def job(self, job_id: str) -> Item | None:
        found = self._ddb.get_item(
            TableName=self.table,
            Key=serialize({"job_id": job_id}),
            ConsistentRead=True,
            ProjectionExpression="job_id, route_id, #src, target, customer_id",
            ExpressionAttributeNames={"#src": "source"},
        ).get("Item")
        return deserialize(found) if found else None


class SesEmailSender:
    """E-mail in AWS: SES v2 SendEmail from the deployment's verified sender identity."""

    def __init__(self, sender: str, client: Any = None, configuration_set: str | None = None):
        self.sender = sender
        self._ses = _client("sesv2", client)
        self.configuration_set = configuration_set

    def send(self, address: str, subject: str, text: str) -> Outcome:
        import time

        started = time.monotonic()
        kwargs: dict[str, Any] = {
            "FromEmailAddress": self.sender,
            "Destination": {"ToAddresses": [address]},
            "Content": {"Simple": {"Subject": {"Data": subject}, "Body": {"Text": {"Data": text}}}},
        }
        if self.configuration_set:
            kwargs["ConfigurationSetName"] = self.configuration_set
        try:
            self._ses.send_email(**kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "error")
            return Outcome(False, None, int((time.monotonic() - started) * 1000), f"ses: {code}")
        return Outcome(True, 200, int((time.monotonic() - started) * 1000))
