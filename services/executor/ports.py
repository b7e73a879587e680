"""What the executor's engine needs of an endpoint: a plain value, built by the endpoint port
(``services.executor.adapters.EndpointAccess``) and read by the engine. Its own module so the
adapters and the engine both import it and neither imports the other's module for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Endpoint"]


@dataclass(frozen=True)
class Endpoint:
    """What the engine needs to know of an endpoint (from the endpoints read model)."""

    endpoint_id: str
    type: str  # "s3" | "sftp"
    max_concurrency: int = 1
    bucket: str | None = None
    prefix: str | None = None
    base_path: str | None = None
    kms_key_id: str | None = None
    #: bytes/s shared by every transfer using the endpoint (None: no cap)
    bandwidth_limit: int | None = None
    raw: Any = None
