"""S3 adapters of the audit export's ports (``services.projections.audit_export``): an export
written to, or read back from, ``s3://bucket/prefix/``."""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

from ferry.errors import Invalid

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def parse_s3_url(url: str, field: str = "to") -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → (bucket, ``some/prefix/``); :class:`Invalid` naming
    ``field`` otherwise."""
    if not url.startswith("s3://"):
        raise Invalid(f"{field}: an s3://bucket/prefix URL", field=field)
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket):
        raise Invalid(f"{field}: {bucket!r} is not an S3 bucket name", field=field)
    prefix = prefix.strip("/")
    if ".." in prefix.split("/") or "\x00" in prefix:
        raise Invalid(f"{field}: the prefix may not contain '..' or NUL", field=field)
    return bucket, (prefix + "/") if prefix else ""


class S3ExportSink:
    """``<prefix><name>`` objects of one bucket (also the source an export is verified from)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def put(self, name: str, data: bytes) -> str:
        key = self.prefix + name
        content_type = "application/json" if name.endswith(".json") else "application/x-ndjson"
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return f"s3://{self.bucket}/{key}"

    def get(self, name: str) -> bytes | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
                return None
            raise
        return bytes(body.read())
