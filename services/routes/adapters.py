"""Adapters of the routes service's ports: DynamoDB (read models, scan state), S3, SFTP and the
jobs service's application. The only boto3 in services/routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from events.contract import EndpointType
from events.dynamodb_values import deserialize, serialize
from services.executor import post_actions
from services.routes.application import DispatchRefused
from services.routes.ports import (
    EndpointInfo,
    IndexedRoute,
    JobState,
    JobStatusReader,
    JobSubmitter,
    ListedFile,
    ListingFailed,
    ObjectInfo,
    ObjectInspector,
    PendingDelivery,
    RouteDirectory,
    RouteIndex,
    ScanState,
    ScanStateStore,
    SourceOpener,
    SourceSession,
    safe_reason,
)
from services.routes.readmodel import (
    FILE_SK,
    ROUTE_SK,
    Item,
    RoutesReadModel,
    VersionConflict,
    path_key,
)

CUSTOMER_INDEX = "customer-index"


def _client(client: Any, service: str = "dynamodb") -> Any:
    if client is not None:
        return client
    import boto3

    return boto3.client(service)  # type: ignore[call-overload]


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def create_tables(client: Any, routes_table: str, scan_table: str) -> None:
    """The routes read model (pk route_id, sk sk; GSI customer-index) and the scan state table
    (pk route_id, sk key). Idempotent."""
    definitions = [
        {
            "TableName": routes_table,
            "KeySchema": [
                {"AttributeName": "route_id", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "route_id", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "customer_id", "AttributeType": "S"},
                {"AttributeName": "created_at", "AttributeType": "S"},
            ],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": CUSTOMER_INDEX,
                    "KeySchema": [
                        {"AttributeName": "customer_id", "KeyType": "HASH"},
                        {"AttributeName": "created_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
        {
            "TableName": scan_table,
            "KeySchema": [
                {"AttributeName": "route_id", "KeyType": "HASH"},
                {"AttributeName": "key", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "route_id", "AttributeType": "S"},
                {"AttributeName": "key", "AttributeType": "S"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
    ]
    for definition in definitions:
        try:
            client.create_table(**definition)
        except client.exceptions.ResourceInUseException:
            continue


# ---------------------------------------------------------------------------------------------
# Read models
# ---------------------------------------------------------------------------------------------


class DynamoRoutesReadModel(RoutesReadModel, RouteDirectory):
    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = _client(client)

    def get(self, route_id: str, sk: str) -> Item | None:
        found = self._client.get_item(
            TableName=self._table,
            Key={"route_id": {"S": route_id}, "sk": {"S": sk}},
            ConsistentRead=True,
        ).get("Item")
        return deserialize(found) if found else None

    def put(self, item: Item, expected_version: int | None) -> None:
        condition: dict[str, Any]
        if expected_version is None:
            condition = {"ConditionExpression": "attribute_not_exists(route_id)"}
        else:
            condition = {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": {"N": str(expected_version)}},
            }
        try:
            self._client.put_item(TableName=self._table, Item=serialize(item), **condition)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise VersionConflict(item["sk"]) from None
            raise

    def _query(self, **kwargs: Any) -> Iterator[Item]:
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(TableName=self._table, **kwargs):
            for raw in page.get("Items", []):
                yield deserialize(raw)

    def routes_of(self, customer_id: str) -> list[Item]:
        return list(
            self._query(
                IndexName=CUSTOMER_INDEX,
                KeyConditionExpression="customer_id = :c",
                ExpressionAttributeValues={":c": {"S": customer_id}},
            )
        )

    def enabled(self, trigger: str) -> list[Item]:
        out: list[Item] = []
        paginator = self._client.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self._table,
            FilterExpression="sk = :r AND enabled = :t AND trigger_type = :g",
            ExpressionAttributeValues={
                ":r": {"S": ROUTE_SK},
                ":t": {"BOOL": True},
                ":g": {"S": trigger},
            },
        ):
            out.extend(deserialize(raw) for raw in page.get("Items", []))
        return out

    def enabled_routes(self, trigger: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [(i["route_id"], i["customer_id"], i["definition"]) for i in self.enabled(trigger)]

    def settling_routes(self) -> list[str]:
        out: list[str] = []
        paginator = self._client.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self._table,
            FilterExpression="sk = :r",
            ExpressionAttributeValues={":r": {"S": ROUTE_SK}},
            ProjectionExpression="route_id",
        ):
            out.extend(str(deserialize(raw)["route_id"]) for raw in page.get("Items", []))
        return out

    def files(self, route_id: str, name: str | None, limit: int) -> list[Item]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "route_id = :r AND begins_with(sk, :f)",
            "ExpressionAttributeValues": {":r": {"S": route_id}, ":f": {"S": FILE_SK}},
        }
        if name:
            kwargs["FilterExpression"] = "#p = :n OR #n = :n OR contains(#p, :n)"
            kwargs["ExpressionAttributeNames"] = {"#p": "path", "#n": "name"}
            kwargs["ExpressionAttributeValues"][":n"] = {"S": name}
        out: list[Item] = []
        for item in self._query(**kwargs):
            out.append(item)
            if len(out) >= limit:
                break
        return out


class DynamoJobStatusReader(JobStatusReader):
    """Reads the jobs read model (``<prefix>-jobs``, pk job_id)."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = _client(client)

    def get(self, job_id: str) -> JobState | None:
        raw = self._client.get_item(
            TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        if not raw:
            return None
        item = deserialize(raw)
        return JobState(
            str(item.get("status")),
            item.get("error_code"),
            item.get("error_message"),
            item.get("redriven_to"),
        )


# ---------------------------------------------------------------------------------------------
# Scan state
# ---------------------------------------------------------------------------------------------


class DynamoScanStateStore(ScanStateStore):
    """``<prefix>-route-scan``: pk route_id; sk ``f#<path>`` (file state), ``p#<path>#<version>``
    (pending delivery), ``tick`` (last tick)."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = _client(client)

    def get_many(self, route_id: str, paths: list[str]) -> dict[str, ScanState]:
        out: dict[str, ScanState] = {}
        unique = list(dict.fromkeys(paths))
        for start in range(0, len(unique), 100):
            keys = [
                {"route_id": {"S": route_id}, "key": {"S": "f#" + path_key(p)}}
                for p in unique[start : start + 100]
            ]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self._client.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self._table, []):
                    item = deserialize(raw)
                    out[item["path"]] = ScanState(
                        path=item["path"],
                        size=int(item["size"]),
                        mtime=float(item["mtime"]),
                        checks=int(item["checks"]),
                        first_seen=float(item["first_seen"]),
                        decided=str(item.get("decided") or ""),
                    )
                request = response.get("UnprocessedKeys") or {}
        return out

    def put_many(self, route_id: str, states: list[ScanState]) -> None:
        for start in range(0, len(states), 25):
            writes = [
                {
                    "PutRequest": {
                        "Item": serialize(
                            {
                                "route_id": route_id,
                                "key": "f#" + path_key(s.path),
                                "path": s.path,
                                "size": s.size,
                                "mtime": s.mtime,
                                "checks": s.checks,
                                "first_seen": s.first_seen,
                                "decided": s.decided,
                            }
                        )
                    }
                }
                for s in states[start : start + 25]
            ]
            request: dict[str, Any] = {self._table: writes}
            while request:
                response = self._client.batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems") or {}

    def pending(self, route_id: str, limit: int) -> list[PendingDelivery]:
        response = self._client.query(
            TableName=self._table,
            KeyConditionExpression="route_id = :r AND begins_with(#k, :p)",
            ExpressionAttributeNames={"#k": "key"},
            ExpressionAttributeValues={":r": {"S": route_id}, ":p": {"S": "p#"}},
            Limit=limit,
            ConsistentRead=True,
        )
        out = []
        for raw in response.get("Items", []):
            item = deserialize(raw)
            out.append(PendingDelivery(item["path"], item["file_version"], tuple(item["job_ids"])))
        return out

    def _pending_key(self, route_id: str, pending: PendingDelivery) -> dict[str, Any]:
        return {
            "route_id": {"S": route_id},
            "key": {"S": f"p#{path_key(pending.path)}#{pending.file_version}"},
        }

    def add_pending(self, route_id: str, pendings: list[PendingDelivery]) -> None:
        items = [
            {
                "PutRequest": {
                    "Item": {
                        **self._pending_key(route_id, pending),
                        **serialize(
                            {
                                "path": pending.path,
                                "file_version": pending.file_version,
                                "job_ids": list(pending.job_ids),
                            }
                        ),
                    }
                }
            }
            for pending in pendings
        ]
        for start in range(0, len(items), 25):
            request: dict[str, Any] = {self._table: items[start : start + 25]}
            while request:
                response = self._client.batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems") or {}

    def remove_pending(self, route_id: str, pending: PendingDelivery) -> None:
        self._client.delete_item(TableName=self._table, Key=self._pending_key(route_id, pending))

    def _watch_key(self, route_id: str, pending: PendingDelivery) -> dict[str, Any]:
        return {
            "route_id": {"S": route_id},
            "key": {"S": f"x#{path_key(pending.path)}#{pending.file_version}"},
        }

    def watching(
        self, route_id: str, limit: int, after: str | None
    ) -> tuple[list[PendingDelivery], str | None]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "route_id = :r AND begins_with(#k, :p)",
            "ExpressionAttributeNames": {"#k": "key"},
            "ExpressionAttributeValues": {":r": {"S": route_id}, ":p": {"S": "x#"}},
            "Limit": limit,
            "ConsistentRead": True,
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = {"route_id": {"S": route_id}, "key": {"S": after}}
        response = self._client.query(**kwargs)
        out = []
        for raw in response.get("Items", []):
            item = deserialize(raw)
            out.append(PendingDelivery(item["path"], item["file_version"], tuple(item["job_ids"])))
        last = response.get("LastEvaluatedKey")
        return out, (str(last["key"]["S"]) if last else None)

    def watch(self, route_id: str, pending: PendingDelivery) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                **self._watch_key(route_id, pending),
                **serialize(
                    {
                        "path": pending.path,
                        "file_version": pending.file_version,
                        "job_ids": list(pending.job_ids),
                    }
                ),
            },
        )
        self.remove_pending(route_id, pending)

    def unwatch(self, route_id: str, pending: PendingDelivery) -> None:
        self._client.delete_item(TableName=self._table, Key=self._watch_key(route_id, pending))

    def last_tick(self, route_id: str) -> float | None:
        raw = self._client.get_item(
            TableName=self._table,
            Key={"route_id": {"S": route_id}, "key": {"S": "tick"}},
            ConsistentRead=True,
        ).get("Item")
        return float(deserialize(raw)["at"]) if raw else None

    def set_last_tick(self, route_id: str, when: float) -> None:
        self._client.put_item(
            TableName=self._table,
            Item=serialize({"route_id": route_id, "key": "tick", "at": when}),
        )


# ---------------------------------------------------------------------------------------------
# The routes' own index (in the scan table; written before a route command's event is saved)
# ---------------------------------------------------------------------------------------------

#: How long an unrouted S3 object stays answerable ("why wasn't X sent?").
UNROUTED_TTL_SECONDS = 14 * 86400


class DynamoRouteIndex(RouteIndex):
    """Items of ``<prefix>-route-scan`` beside the scanner's state, under partition keys no
    route id can take: ``name#<customer_id>`` / ``<name>`` (the conditional name claim),
    ``bucket#<bucket>`` / ``<route_id>`` (push routes listening on a bucket) and
    ``unrouted#<bucket>`` / ``<key>\x00<version>`` (objects no route took, with a TTL).
    Every read is ConsistentRead: it is the strongly consistent source the push consumer and
    the create command rely on."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = _client(client)

    def claim_name(
        self, customer_id: str, name: str, route_id: str, when: float, *, replace: str | None = None
    ) -> IndexedRoute | None:
        allowed = {":me": {"S": route_id}}
        condition = "attribute_not_exists(holder) OR holder = :me"
        if replace is not None:
            condition = "holder = :old"
            allowed = {":old": {"S": replace}}
        item = serialize(
            {"route_id": f"name#{customer_id}", "key": name, "holder": route_id, "since": when}
        )
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeValues=allowed,
            )
            return None
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        raw = self._client.get_item(
            TableName=self._table,
            Key={"route_id": {"S": f"name#{customer_id}"}, "key": {"S": name}},
            ConsistentRead=True,
        ).get("Item")
        if not raw:  # released meanwhile: try once more
            return self.claim_name(customer_id, name, route_id, when) if replace is None else None
        held = deserialize(raw)
        return IndexedRoute(str(held["holder"]), customer_id, float(held.get("since") or 0))

    def release_name(self, customer_id: str, name: str, route_id: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={"route_id": {"S": f"name#{customer_id}"}, "key": {"S": name}},
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": {"S": route_id}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def add_bucket(self, bucket: str, route_id: str, customer_id: str, when: float) -> None:
        self._put_if_absent(
            {
                "route_id": f"bucket#{bucket}",
                "key": route_id,
                "customer_id": customer_id,
                "since": when,
            }
        )

    def _put_if_absent(self, item: Item) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": "key"},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def routes_on(self, bucket: str) -> list[IndexedRoute]:
        out: list[IndexedRoute] = []
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="route_id = :b",
            ExpressionAttributeValues={":b": {"S": f"bucket#{bucket}"}},
            ConsistentRead=True,
        ):
            for raw in page.get("Items", []):
                item = deserialize(raw)
                out.append(
                    IndexedRoute(
                        str(item["key"]), str(item["customer_id"]), float(item.get("since") or 0)
                    )
                )
        return out

    def record_unrouted(self, bucket: str, entry: dict[str, Any]) -> None:
        import time

        key = f"{path_key(str(entry['key']))}\x00{entry['version']}"
        self._client.put_item(
            TableName=self._table,
            Item=serialize(
                {
                    **entry,
                    "route_id": f"unrouted#{bucket}",
                    "key": key,
                    "object_key": entry["key"],
                    "ttl": int(time.time()) + UNROUTED_TTL_SECONDS,
                }
            ),
        )

    def unrouted(self, bucket: str, prefix: str, limit: int) -> list[dict[str, Any]]:
        import time

        now = time.time()
        out: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "KeyConditionExpression": "route_id = :b",
            "ExpressionAttributeValues": {":b": {"S": f"unrouted#{bucket}"}},
        }
        if prefix:
            query["KeyConditionExpression"] += " AND begins_with(#k, :p)"
            query["ExpressionAttributeNames"] = {"#k": "key"}
            query["ExpressionAttributeValues"][":p"] = {"S": prefix}
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(TableName=self._table, ConsistentRead=True, **query):
            for raw in page.get("Items", []):
                item = deserialize(raw)
                if not str(item["object_key"]).startswith(prefix):
                    continue  # a long key stored by its digest: checked on the real key
                if float(item.get("ttl") or 0) < now:
                    continue  # expired (DynamoDB's TTL deletes it eventually)
                out.append(
                    {
                        "key": item["object_key"],
                        **{k: item.get(k) for k in ("size", "version", "reason", "detail", "at")},
                    }
                )
                if len(out) >= limit:
                    return out
        return out


# ---------------------------------------------------------------------------------------------
# Jobs: through the jobs service's application
# ---------------------------------------------------------------------------------------------


class JobsApplicationSubmitter(JobSubmitter):
    """Creates jobs through the jobs service's published command API (``services.jobs.api``:
    ``submit``; JobRequested records the route_id)."""

    def __init__(self, jobs_app: Any) -> None:
        self._jobs = jobs_app

    def submit(
        self,
        customer_id: str,
        actor: str,
        request: dict[str, Any],
        idempotency_key: str,
        route_id: str,
    ) -> str:
        from pydantic import ValidationError

        from services.jobs.api import JobsError, TransferRequest

        try:
            parsed = TransferRequest.model_validate(request)
        except ValidationError as error:
            # this file's request can never be valid (a bad name, a path too long): permanent
            raise DispatchRefused(
                "invalid_request", _validation_text(error), permanent=True
            ) from None
        try:
            result = self._jobs.submit(
                customer_id, actor, parsed, idempotency_key, route_id=route_id
            )
        except JobsError as error:
            raise DispatchRefused(error.code, error.message) from None
        return str(result.job_id)

    def retry(self, customer_id: str, actor: str, job_id: str) -> str:
        from services.jobs.api import JobsError

        try:
            job = self._jobs.get_job(customer_id, job_id)
            for _ in range(20):
                if job.redriven_to is None:
                    break
                job = self._jobs.get_job(customer_id, job.redriven_to)
            if job.status.value not in ("FAILED", "CANCELLED"):
                return str(job.job_id)
            return str(self._jobs.redrive(customer_id, actor, job.job_id).job_id)
        except JobsError as error:
            raise DispatchRefused(error.code, error.message) from None


def _validation_text(error: Any) -> str:
    """``loc: message`` of each pydantic error, without the input values."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in item.get("loc", ()))
        parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
    return "; ".join(parts)[:500]


# ---------------------------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------------------------


def _endpoint_view(endpoint: EndpointInfo) -> Any:
    """The executor's EndpointView of a routes EndpointInfo (for endpoint_access.S3Access)."""
    from services.executor.endpoint_access import EndpointView

    return EndpointView.from_item(
        {
            "endpoint_id": endpoint.endpoint_id,
            "customer_id": endpoint.customer_id,
            "type": endpoint.type.value,
            "status": endpoint.status.value,
            "direction": endpoint.direction,
            "config": {**endpoint.config, "type": endpoint.type.value},
        }
    )


class S3ObjectInspector(ObjectInspector):
    """HEAD of the object an S3 event names. With ``endpoint`` (the route's source endpoint)
    the call uses that endpoint's client from ``endpoint_access.S3Access`` (its assumed role,
    or Ferry's credentials only for a bucket granted to its customer); :meth:`refusal` says
    whether the endpoint's customer may use the bucket at all (push matching)."""

    def __init__(self, client: Any = None, s3_access: Any = None) -> None:
        self._given = client
        self._client = _client(client, "s3")
        self._access = s3_access

    def _s3_access(self) -> Any:
        if self._access is None:
            from services.executor.endpoint_access import S3Access

            self._access = S3Access()
        return self._access

    def refusal(self, endpoint: EndpointInfo) -> str | None:
        """None when the endpoint's customer may use its bucket, else the reason."""
        from services.executor.endpoint_access import AccessDenied

        try:
            self._s3_access().client_for(_endpoint_view(endpoint))
        except AccessDenied as denied:
            return denied.message
        return None

    def head(
        self, bucket: str, key: str, endpoint: EndpointInfo | None = None
    ) -> ObjectInfo | None:
        client = self._client
        if endpoint is not None and self._given is None:
            client = self._s3_access().client_for(_endpoint_view(endpoint))
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(
            size=int(head["ContentLength"]),
            etag=str(head.get("ETag", "")).strip('"'),
            version_id=head.get("VersionId"),
            last_modified=head["LastModified"].timestamp(),
            metadata={k.lower(): v for k, v in (head.get("Metadata") or {}).items()},
        )


class S3Source(SourceSession):
    def __init__(self, client: Any, endpoint: EndpointInfo) -> None:
        self._client = client
        self._bucket = str(endpoint.bucket)
        self._prefix = endpoint.prefix
        self._kms_key_id = endpoint.config.get("kms_key_id")

    def iter_files(self, directory: str, recursive: bool) -> Iterator[ListedFile]:
        base = self._prefix + (directory.rstrip("/") + "/" if directory else "")
        kwargs: dict[str, Any] = {
            "Bucket": self._bucket,
            "Prefix": base,
            "PaginationConfig": {"PageSize": 1000},
        }
        if not recursive:
            kwargs["Delimiter"] = "/"
        pages = iter(self._client.get_paginator("list_objects_v2").paginate(**kwargs))
        while True:
            try:
                page = next(pages)
            except StopIteration:
                return
            except ClientError as error:
                raise ListingFailed(
                    f"list s3://{self._bucket}/{base}: {safe_reason(error)}"
                ) from None
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                yield ListedFile(
                    path=key[len(self._prefix) :],
                    size=int(obj["Size"]),
                    mtime=obj["LastModified"].timestamp(),
                    etag=str(obj.get("ETag", "")).strip('"'),
                )

    def exists(self, path: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=self._prefix + path)
            return True
        except ClientError:
            return False

    def remove(self, path: str) -> None:
        post_actions.s3_delete(self._client, self._bucket, self._prefix + path)

    def move(self, path: str, to: str, *, marker: str) -> None:
        post_actions.s3_move(
            self._client,
            self._bucket,
            self._prefix + path,
            self._prefix + to,
            marker=marker,
            kms_key_id=self._kms_key_id,
        )


# ---------------------------------------------------------------------------------------------
# SFTP (through the executor's adapter and credentials access)
# ---------------------------------------------------------------------------------------------


class SftpSource(SourceSession):
    def __init__(self, session: Any, base_path: str) -> None:
        self._session = session
        self._base = base_path.rstrip("/") or ""

    def _full(self, path: str) -> str:
        return f"{self._base}/{path}" if path else (self._base or "/")

    def iter_files(self, directory: str, recursive: bool) -> Iterator[ListedFile]:
        top = directory.strip("/")
        stack = [top]
        while stack:
            current = stack.pop()
            try:
                for entry in self._session.iter_dir(self._full(current)):
                    rel = f"{current}/{entry.name}" if current else entry.name
                    if entry.is_dir:
                        if recursive:
                            stack.append(rel)
                        continue
                    yield ListedFile(path=rel, size=int(entry.size), mtime=float(entry.mtime))
            except Exception as error:
                if current == top:
                    raise ListingFailed(f"list {current or '/'}: {safe_reason(error)}") from None
                # one unreadable subdirectory: reported as that entry, the rest is listed
                yield ListedFile(path=current, size=0, mtime=0.0, error=safe_reason(error))

    def exists(self, path: str) -> bool:
        return self._session.stat(self._full(path)) is not None

    def remove(self, path: str) -> None:
        post_actions.sftp_delete(self._session, self._full(path))

    def move(self, path: str, to: str, *, marker: str) -> None:
        post_actions.sftp_move(self._session, self._full(path), self._full(to))

    def close(self) -> None:
        self._session.close()


class EndpointSourceOpener(SourceOpener):
    """Opens an S3 client or an SFTP session for a route's source endpoint."""

    def __init__(
        self,
        endpoints_table: str,
        s3_client: Any = None,
        secrets: Any = None,
        s3_access: Any = None,
    ) -> None:
        self._endpoints_table = endpoints_table
        self._s3 = s3_client
        self._secrets = secrets
        self._access = s3_access

    def open(self, endpoint: EndpointInfo) -> SourceSession:
        if endpoint.type is EndpointType.S3:
            if self._s3 is not None:  # a test's client
                return S3Source(self._s3, endpoint)
            # listing, exists and the post-actions (delete / move) all use the endpoint's own
            # client: its assumed role, or Ferry's credentials only for a granted bucket
            from services.executor.endpoint_access import AccessDenied, S3Access

            if self._access is None:
                self._access = S3Access()
            try:
                client = self._access.client_for(_endpoint_view(endpoint))
            except AccessDenied as denied:
                raise ListingFailed(f"ACCESS_DENIED: {denied.message}") from None
            return S3Source(client, endpoint)
        from services.executor.endpoint_access import DynamoEndpointDirectory as Views
        from services.executor.endpoint_access import SecretsReader, open_sftp

        view = Views(self._endpoints_table).get(endpoint.endpoint_id)
        if view is None:
            raise LookupError(f"endpoint {endpoint.endpoint_id} vanished")
        if self._secrets is None:
            self._secrets = SecretsReader()
        try:
            session = open_sftp(view, self._secrets)
        except Exception as error:
            raise ListingFailed(f"connect: {safe_reason(error)}") from None
        return SftpSource(session, view.config.base_path or "/")
