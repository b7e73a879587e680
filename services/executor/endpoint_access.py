"""How the data plane reaches a customer's endpoint (shared by the validator and the engine).

- :class:`EndpointView`: what the executor knows about an endpoint (no secret values);
  built from the endpoints read model (:class:`DynamoEndpointDirectory`, for transfers) or from
  the Endpoint aggregate (:meth:`EndpointView.from_aggregate`, for the validator, which must not
  read a read model that may lag).
- :class:`SecretsReader`: credentials from Secrets Manager, with a small TTL cache.
- :func:`open_sftp`, :func:`s3_client_for`: sessions/clients for an endpoint.
- :func:`resolve_path`: a job's relative path → the remote path / S3 key, refusing escapes.
"""

from __future__ import annotations

import json
import posixpath
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from events.contract import Direction, EndpointConfig, EndpointStatus, EndpointType
from services.executor.errors import InvalidConfiguration, TransferError
from services.executor.sftp import SftpCredentials, SftpSession, SftpTarget, connect

if TYPE_CHECKING:
    from services.endpoints.domain import Endpoint

__all__ = [
    "CredentialsUnavailable",
    "DynamoEndpointDirectory",
    "EndpointDirectory",
    "EndpointView",
    "InMemoryEndpointDirectory",
    "InvalidPath",
    "SecretsReader",
    "open_sftp",
    "resolve_path",
    "s3_client_for",
]


class InvalidPath(InvalidConfiguration):
    """A job path that escapes the endpoint's base_path / prefix (or is malformed)."""

    code = "INVALID_PATH"


class CredentialsUnavailable(TransferError):
    """The endpoint's secret is missing, unreadable or incomplete."""

    code = "CREDENTIALS_UNAVAILABLE"
    transient = False


@dataclass(frozen=True)
class EndpointView:
    """An endpoint as the data plane sees it (never a credential value)."""

    endpoint_id: str
    customer_id: str
    name: str
    type: EndpointType
    status: EndpointStatus
    direction: Direction
    max_concurrency: int
    config: EndpointConfig
    secret_arn: str | None
    version: int = 0

    @classmethod
    def from_aggregate(cls, endpoint: Endpoint) -> EndpointView:
        return cls(
            endpoint_id=str(endpoint.id),
            customer_id=endpoint.customer_id,
            name=endpoint.name,
            type=endpoint.type,
            status=endpoint.status,
            direction=Direction(endpoint.direction),
            max_concurrency=int(endpoint.max_concurrency),
            config=endpoint.endpoint_config,
            secret_arn=endpoint.secret_arn,
            version=endpoint.version,
        )

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> EndpointView:
        """From a (deserialised) endpoints read-model item (docs/architecture.md)."""
        config = {k: _plain(v) for k, v in dict(item.get("config") or {}).items()}
        config.setdefault("type", item.get("type"))
        fields = EndpointConfig.model_fields
        return cls(
            endpoint_id=str(item["endpoint_id"]),
            customer_id=str(item["customer_id"]),
            name=str(item.get("name") or ""),
            type=EndpointType(config["type"]),
            status=EndpointStatus(item.get("status") or EndpointStatus.PENDING_VALIDATION),
            direction=Direction(item.get("direction") or Direction.BOTH),
            max_concurrency=int(item.get("max_concurrency") or 1),
            config=EndpointConfig.model_validate({k: v for k, v in config.items() if k in fields}),
            secret_arn=item.get("secret_arn"),
            version=int(item.get("version") or 0),
        )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


# --- the directory (read model) ----------------------------------------------------------------
class EndpointDirectory(ABC):
    @abstractmethod
    def get(self, endpoint_id: str) -> EndpointView | None:
        """The endpoint, or None when unknown."""


class InMemoryEndpointDirectory(EndpointDirectory):
    def __init__(self, views: list[EndpointView] | None = None) -> None:
        self.views = {v.endpoint_id: v for v in views or []}

    def get(self, endpoint_id: str) -> EndpointView | None:
        return self.views.get(endpoint_id)

    def put(self, view: EndpointView) -> None:
        self.views[view.endpoint_id] = view


class DynamoEndpointDirectory(EndpointDirectory):
    """Reads the endpoints read model table (pk endpoint_id), strongly consistent."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        from boto3.dynamodb.types import TypeDeserializer

        self._table = table_name
        self._client = client
        self._deserializer = TypeDeserializer()

    def get(self, endpoint_id: str) -> EndpointView | None:
        response = self._client.get_item(
            TableName=self._table, Key={"endpoint_id": {"S": endpoint_id}}, ConsistentRead=True
        )
        raw = response.get("Item")
        if not raw:
            return None
        item = {k: self._deserializer.deserialize(v) for k, v in raw.items()}
        return EndpointView.from_item(item)


# --- credentials ----------------------------------------------------------------------------
class SecretsReader:
    """Secrets Manager get_secret_value → :class:`SftpCredentials`, cached for ``ttl`` seconds.

    The cache key includes the endpoint's version, so a new endpoint version (e.g. after a
    credentials rotation) reads the secret again; ``fresh=True`` bypasses the cache."""

    def __init__(self, client: Any = None, *, ttl: float = 60.0) -> None:
        if client is None:
            import boto3

            client = boto3.client("secretsmanager")
        self._client = client
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, int], tuple[float, dict[str, Any]]] = {}

    def read(self, secret_arn: str, *, version: int = 0, fresh: bool = False) -> dict[str, Any]:
        key = (secret_arn, version)
        now = time.monotonic()
        if not fresh:
            with self._lock:
                hit = self._cache.get(key)
            if hit and now - hit[0] < self._ttl:
                return hit[1]
        try:
            # AWSCURRENT explicitly: moto's default (no stage) ignores a stage moved back by
            # update_secret_version_stage (the endpoints service's rotation undo).
            response = self._client.get_secret_value(SecretId=secret_arn, VersionStage="AWSCURRENT")
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            if code in ("ResourceNotFoundException", "AccessDeniedException", "DecryptionFailure"):
                raise CredentialsUnavailable(f"endpoint credentials unavailable: {code}") from None
            raise
        try:
            value = json.loads(response["SecretString"])
            if not isinstance(value, dict):
                raise ValueError
        except (KeyError, ValueError):
            raise CredentialsUnavailable("endpoint credentials are not a JSON object") from None
        with self._lock:
            self._cache[key] = (now, value)
            if len(self._cache) > 1024:
                self._cache.pop(next(iter(self._cache)))
        return value

    def sftp_credentials(self, view: EndpointView, *, fresh: bool = False) -> SftpCredentials:
        if not view.secret_arn:
            raise CredentialsUnavailable("the endpoint has no credentials")
        value = self.read(view.secret_arn, version=view.version, fresh=fresh)
        # The endpoint's settings are authoritative for the username (it may change without
        # a credentials rotation).
        username = view.config.username or value.get("username") or ""
        return SftpCredentials(
            username=str(username),
            private_key=value.get("private_key") or None,
            passphrase=value.get("passphrase") or None,
            password=value.get("password") or None,
        )

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


# --- sessions and clients ------------------------------------------------------------------------
def sftp_target(view: EndpointView) -> SftpTarget:
    cfg = view.config
    if view.type is not EndpointType.SFTP or not cfg.host or not cfg.host_key:
        raise InvalidConfiguration(f"endpoint {view.endpoint_id} is not a complete sftp endpoint")
    return SftpTarget(host=cfg.host, port=int(cfg.port or 22), host_key=cfg.host_key)


def open_sftp(
    view: EndpointView,
    secrets: SecretsReader,
    timeout: float = 15.0,
    *,
    fresh_credentials: bool = False,
    op_timeout: float | None = None,
) -> SftpSession:
    """Connect to an SFTP endpoint with its pinned host key and stored credentials."""
    target = sftp_target(view)
    creds = secrets.sftp_credentials(view, fresh=fresh_credentials)
    if op_timeout is None:
        return connect(target, creds, timeout=timeout)
    return connect(target, creds, timeout=timeout, op_timeout=op_timeout)


def s3_client_for(view: EndpointView, **config: Any) -> Any:
    """A boto3 S3 client in the endpoint's region (boto3 itself honours AWS_ENDPOINT_URL)."""
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {"retries": {"max_attempts": 3, "mode": "standard"}}
    options.update(config)
    return boto3.client("s3", region_name=view.config.region or None, config=Config(**options))


# --- paths ----------------------------------------------------------------------------------
def resolve_path(view: EndpointView, relative_path: str) -> str:
    """The remote path (SFTP: under base_path) or object key (S3: under prefix) of a job path.

    Refuses NUL, ``..`` segments and absolute paths outside base_path (:class:`InvalidPath`).
    An absolute SFTP path inside base_path is accepted as is."""
    path = relative_path
    if "\x00" in path:
        raise InvalidPath("path contains NUL")
    if ".." in path.split("/"):
        raise InvalidPath("path contains a '..' segment")
    if view.type is EndpointType.SFTP:
        base = posixpath.normpath(view.config.base_path or "/")
        if base.startswith("//"):
            base = "/" + base.lstrip("/")
        if path.startswith("/"):
            full = posixpath.normpath(path)
        else:
            full = posixpath.normpath(posixpath.join(base, path)) if path else base
        if full.startswith("//"):
            full = "/" + full.lstrip("/")
        inside = full == base or full.startswith(base.rstrip("/") + "/")
        if not inside:
            raise InvalidPath(f"path {relative_path!r} is outside the endpoint's base_path")
        return full
    if path.startswith("/"):
        raise InvalidPath("S3 paths are relative to the endpoint's prefix (no leading '/')")
    if "." in path.split("/"):
        raise InvalidPath("path contains a '.' segment")
    prefix = view.config.prefix or ""
    if prefix and not prefix.endswith("/") and path:
        prefix += "/"
    key = prefix + path
    if len(key.encode()) > 1024:
        raise InvalidPath("the object key is longer than 1024 bytes")
    return key
