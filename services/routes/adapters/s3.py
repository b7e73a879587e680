"""S3: the object inspector push matching uses, and a route's S3 source (listing, exists, and
the post-actions through ``services.executor.post_actions``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from services.executor import post_actions
from services.routes.adapters._boto import client_or_default as _client
from services.routes.ports import (
    EndpointInfo,
    ListedFile,
    ListingFailed,
    ObjectInfo,
    ObjectInspector,
    SourceSession,
    safe_reason,
)


def endpoint_view(endpoint: EndpointInfo) -> Any:
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
            self._s3_access().client_for(endpoint_view(endpoint))
        except AccessDenied as denied:
            return denied.message
        return None

    def head(
        self, bucket: str, key: str, endpoint: EndpointInfo | None = None
    ) -> ObjectInfo | None:
        client = self._client
        if endpoint is not None and self._given is None:
            client = self._s3_access().client_for(endpoint_view(endpoint))
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
