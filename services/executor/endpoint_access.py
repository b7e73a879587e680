"""How the data plane reaches a customer's endpoint (shared by the validator and the engine).

- :class:`EndpointView`: what the executor knows about an endpoint (no secret values);
  built from the endpoints read model (:class:`DynamoEndpointDirectory`; the validator reads the
  same item once it shows the version it was asked to check).
- :class:`SecretsReader`: credentials from Secrets Manager, with a small TTL cache.
- :func:`open_sftp`: SFTP sessions for an endpoint.
- :class:`S3Access` / :func:`s3_client_for`: the ONE place every S3 client for a customer
  endpoint comes from (validator, transfers, routes' listing/head/post-actions, push matching):
  an endpoint with ``role_arn`` gets credentials from ``sts:AssumeRole(RoleArn=role_arn,
  ExternalId=external_id, RoleSessionName=ferry-<endpoint>)``, refreshed 5 minutes before
  they expire; an endpoint without one gets Ferry's own credentials, but only for a bucket the
  customer is granted (``ferry.tenancy``; the bucket's tag is cached briefly, so
  removing the tag stops access within ``FERRY_BUCKET_TAG_CACHE_SECONDS``).
- :func:`resolve_path`: a job's relative path → the remote path / S3 key, refusing escapes.

Why one module over 400 lines: it is the data plane's one library for reaching a customer
endpoint, and the one executor module jobs and routes may import (a named seam in pyproject's
import-linter contract); splitting it would multiply those seams.
"""

from __future__ import annotations

import json
import posixpath
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from events.contract import Direction, EndpointConfig, EndpointStatus, EndpointType
from events.dynamodb_values import plain
from ferry.secret_regions import SecretsClients, region_of
from services.executor.errors import InvalidConfiguration, TransferError
from services.executor.sftp import SftpCredentials, SftpSession, SftpTarget, connect

__all__ = [
    "AccessDenied",
    "CredentialsUnavailable",
    "DynamoEndpointDirectory",
    "EndpointDirectory",
    "EndpointView",
    "InvalidPath",
    "S3Access",
    "SecretsReader",
    "open_sftp",
    "resolve_path",
    "s3_client_for",
]


class InvalidPath(InvalidConfiguration):
    """A job path that escapes the endpoint's base_path / prefix (or is malformed)."""

    code = "INVALID_PATH"


class AccessDenied(TransferError):
    """The customer may not use the bucket (no grant / tag), or the role cannot be assumed."""

    code = "ACCESS_DENIED"
    transient = False


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
    #: bytes/s shared by every transfer using the endpoint (None: no cap)
    bandwidth_limit: int | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> EndpointView:
        """From a (deserialised) endpoints read-model item (docs/architecture.md)."""
        config = plain(dict(item.get("config") or {}))
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
            bandwidth_limit=int(item["bandwidth_limit"]) if item.get("bandwidth_limit") else None,
        )


# --- the directory (read model) ----------------------------------------------------------------
class EndpointDirectory(ABC):
    @abstractmethod
    def get(self, endpoint_id: str) -> EndpointView | None:
        """The endpoint, or None when unknown."""


class DynamoEndpointDirectory(EndpointDirectory):
    """The data plane's typed view over the one endpoint-directory adapter
    (``ferry.endpoint_directory.DynamoEndpointDirectory``: the endpoints read model, strongly
    consistent): the same item, read the same way, as :class:`EndpointView`."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        from ferry.endpoint_directory import DynamoEndpointDirectory as ReadModel

        self._read_model = ReadModel(table_name, client)

    def get(self, endpoint_id: str) -> EndpointView | None:
        item = self._read_model.item(endpoint_id)
        return None if item is None else EndpointView.from_item(item)


# --- credentials ----------------------------------------------------------------------------
class _NotFound(Exception):
    """The secret is not in the region asked (SecretsReader: try the primary)."""


class SecretsReader:
    """Secrets Manager get_secret_value → :class:`SftpCredentials`, cached for ``ttl`` seconds.

    The cache key includes the endpoint's version, so a new endpoint version (e.g. after a
    credentials rotation) reads the secret again; ``fresh=True`` bypasses the cache.

    Across regions (``ferry.secret_regions``): a secret whose ARN names another region is read
    from its replica in this reader's region (the client's), and from the primary only while
    the replica is not there yet; so a surviving region reads every endpoint's credentials
    without the region that created them."""

    def __init__(
        self,
        client: Any = None,
        *,
        ttl: float = 60.0,
        clients: Callable[[str], Any] | None = None,
    ) -> None:
        if client is None:
            import boto3

            from ferry.names import deployment_region

            client = boto3.client("secretsmanager", region_name=deployment_region())
        self._clients = SecretsClients(client, clients)
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
        (region, local), *primary = self._clients.candidates(secret_arn)
        try:
            response = self._get(self._clients.for_region(region), local)
        except _NotFound:
            if not primary:
                raise CredentialsUnavailable(
                    "endpoint credentials unavailable: ResourceNotFoundException"
                ) from None
            try:  # no replica here yet: the primary's region
                response = self._get(self._clients.for_region(primary[0][0]), secret_arn)
            except _NotFound:
                raise CredentialsUnavailable(
                    "endpoint credentials unavailable: ResourceNotFoundException "
                    f"(in {region_of(local)} and in {region_of(secret_arn)})"
                ) from None
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

    @staticmethod
    def _get(client: Any, secret_id: str) -> dict[str, Any]:
        try:
            # AWSCURRENT explicitly: moto's default (no stage) ignores a stage moved back by
            # update_secret_version_stage (the endpoints service's rotation undo).
            return dict(client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT"))
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            if code == "ResourceNotFoundException":
                raise _NotFound from None
            if code in ("AccessDeniedException", "DecryptionFailure"):
                raise CredentialsUnavailable(f"endpoint credentials unavailable: {code}") from None
            raise

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


class S3Access:
    """S3 clients for customer endpoints (thread-safe; one per process component).

    ``client_for(view)`` raises :class:`AccessDenied` when the endpoint's customer may not use
    the bucket (same-account mode) or the role cannot be assumed (delegated mode).
    ``ferry_client(region)`` is Ferry's own client (the staging bucket only)."""

    REFRESH_MARGIN = 300.0  # seconds before expiry at which assumed credentials are renewed

    def __init__(
        self,
        settings: Any = None,
        *,
        config: Any = None,
        sts_client: Any = None,
        s3_factory: Any = None,
        clock: Any = time.monotonic,
    ) -> None:
        from botocore.config import Config

        from ferry.tenancy import TenancySettings

        self.settings = settings if settings is not None else TenancySettings()
        self.config = config or Config(retries={"max_attempts": 3, "mode": "standard"})
        self._sts = sts_client
        self._s3_factory = s3_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._ferry: dict[str | None, Any] = {}
        self._delegated: dict[tuple[str, str, str, str | None], Any] = {}
        self._credentials: dict[tuple[str, str, str], Any] = {}
        self._loader: Any = None
        self._tags: dict[str, tuple[float, str | None]] = {}

    # --- public ------------------------------------------------------------------------------
    def client_for(self, view: EndpointView, *, fresh: bool = False) -> Any:
        """``fresh``: look the bucket's tag up again (the validator: a customer who just
        tagged the bucket and asked for validation must not wait for the cache)."""
        cfg = view.config
        bucket = cfg.bucket or ""
        if self.settings.is_reserved(bucket):
            raise AccessDenied(f"bucket {bucket} belongs to Ferry and cannot be used")
        if cfg.role_arn:
            return self._delegated_client(view)
        self.check_grant(view, fresh=fresh)
        return self.ferry_client(cfg.region)

    def ferry_client(self, region: str | None = None) -> Any:
        with self._lock:
            client = self._ferry.get(region)
            if client is None:
                if self._s3_factory is not None:
                    client = self._s3_factory(region)
                else:
                    import boto3

                    client = boto3.client("s3", region_name=region or None, config=self.config)
                self._ferry[region] = client
            return client

    def check_grant(self, view: EndpointView, *, fresh: bool = False) -> None:
        """Same-account mode: raise :class:`AccessDenied` unless the customer is granted."""
        from ferry.tenancy import same_account_access

        bucket = view.config.bucket or ""
        grants = self.settings.bucket_grants
        granted = bucket in (grants.get(view.customer_id) or ())
        tag = None if granted else self.bucket_tag(view, fresh=fresh)
        decision = same_account_access(
            view.customer_id,
            bucket,
            tag_value=tag,
            grants=grants,
            operator_customer=self.settings.operator_customer,
            reserved=self.settings.is_reserved(bucket),
        )
        if not decision.allowed:
            raise AccessDenied(decision.reason)

    def bucket_tag(self, view: EndpointView, *, fresh: bool = False) -> str | None:
        """The bucket's ``ferry:customer`` tag (None: no such tag, or tags unreadable),
        cached for ``tag_cache_seconds``."""
        from botocore.exceptions import BotoCoreError, ClientError

        from ferry.tenancy import CUSTOMER_TAG

        bucket = view.config.bucket or ""
        now = self._clock()
        with self._lock:
            hit = self._tags.get(bucket)
        if not fresh and hit is not None and now - hit[0] < self.settings.tag_cache_seconds:
            return hit[1]
        value: str | None = None
        try:
            tags = self.ferry_client(view.config.region).get_bucket_tagging(Bucket=bucket)
            for tag in tags.get("TagSet", []):
                if tag.get("Key") == CUSTOMER_TAG:
                    value = str(tag.get("Value") or "")
        except ClientError:
            value = None  # NoSuchTagSet, NoSuchBucket, AccessDenied: no grant by tag
        except BotoCoreError as exc:
            from services.executor.errors import ConnectionFailed

            raise ConnectionFailed(f"bucket tags unreadable ({type(exc).__name__})") from None
        with self._lock:
            self._tags[bucket] = (now, value)
            if len(self._tags) > 4096:
                self._tags.pop(next(iter(self._tags)))
        return value

    def clear(self) -> None:
        with self._lock:
            self._tags.clear()
            self._delegated.clear()
            self._credentials.clear()

    # --- delegated access ----------------------------------------------------------------------
    def _delegated_client(self, view: EndpointView) -> Any:
        cfg = view.config
        role_arn = str(cfg.role_arn)
        external_id = str(cfg.external_id or "")
        if not external_id:
            raise AccessDenied("the endpoint has no external_id: it cannot assume its role")
        key = (role_arn, external_id, view.endpoint_id, cfg.region)
        with self._lock:
            client = self._delegated.get(key)
        if client is not None:
            return client
        credentials = self.delegated_credentials(view)
        import boto3
        import botocore.session

        core = botocore.session.get_session()
        with self._lock:
            if self._loader is None:
                self._loader = core.get_component("data_loader")
            # one loader for every endpoint's session: the service models are parsed once
            # (a new client costs ~60 ms instead of ~560 ms)
            core.register_component("data_loader", self._loader)
        core._credentials = credentials  # type: ignore[attr-defined]  # the assumed role's
        client = boto3.Session(botocore_session=core).client(
            "s3", region_name=cfg.region or None, config=self.config
        )
        with self._lock:
            self._delegated[key] = client
            if len(self._delegated) > 1024:
                self._delegated.pop(next(iter(self._delegated)))
        return client

    def delegated_credentials(self, view: EndpointView) -> Any:
        """The endpoint's assumed-role credentials (botocore ``RefreshableCredentials``: they
        renew themselves ``REFRESH_MARGIN`` seconds before expiry), one set per endpoint."""
        cfg = view.config
        role_arn, external_id = str(cfg.role_arn or ""), str(cfg.external_id or "")
        if not role_arn or not external_id:
            raise AccessDenied("the endpoint has no role_arn / external_id to assume")
        key = (role_arn, external_id, view.endpoint_id)
        with self._lock:
            found = self._credentials.get(key)
        if found is None:
            found = self._refreshable(role_arn, external_id, view.endpoint_id)
            with self._lock:
                self._credentials[key] = found
                if len(self._credentials) > 1024:
                    self._credentials.pop(next(iter(self._credentials)))
        return found

    def _sts_client(self) -> Any:
        with self._lock:
            if self._sts is None:
                import boto3

                self._sts = boto3.client("sts", config=self.config)
            return self._sts

    def assume(self, role_arn: str, external_id: str, endpoint_id: str) -> dict[str, Any]:
        """One AssumeRole call → botocore credential metadata (raises :class:`AccessDenied`)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._sts_client().assume_role(
                RoleArn=role_arn,
                ExternalId=external_id,
                RoleSessionName=f"ferry-{endpoint_id}"[:64],
                DurationSeconds=3600,
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "")) or "error"
            raise AccessDenied(
                f"cannot assume the endpoint's role ({code}): check its trust policy names "
                "Ferry and this endpoint's external_id"
            ) from None
        except BotoCoreError as exc:
            from services.executor.errors import ConnectionFailed

            raise ConnectionFailed(f"STS unreachable ({type(exc).__name__})") from None
        creds = response["Credentials"]
        expiry = creds["Expiration"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": expiry.isoformat() if hasattr(expiry, "isoformat") else str(expiry),
        }

    def _refreshable(self, role_arn: str, external_id: str, endpoint_id: str) -> Any:
        from botocore.credentials import RefreshableCredentials

        # renewed 5 minutes before expiry (botocore's defaults would be 15 / 10 minutes)
        return RefreshableCredentials.create_from_metadata(
            metadata=self.assume(role_arn, external_id, endpoint_id),
            refresh_using=lambda: self.assume(role_arn, external_id, endpoint_id),
            method="sts-assume-role",
            advisory_timeout=int(self.REFRESH_MARGIN),
            mandatory_timeout=int(self.REFRESH_MARGIN) // 2,
        )


_default_access: S3Access | None = None
_default_lock = threading.Lock()


def default_s3_access() -> S3Access:
    """The process-wide :class:`S3Access` (settings from the environment at first use)."""
    global _default_access
    with _default_lock:
        if _default_access is None:
            _default_access = S3Access()
        return _default_access


def s3_client_for(view: EndpointView, access: S3Access | None = None) -> Any:
    """The S3 client for a customer endpoint (see :class:`S3Access`)."""
    return (access or default_s3_access()).client_for(view)


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
