"""Adapters of the routes service's ports, one module per store: DynamoDB tables and read models
(``tables``), the scan state (``scan_state``), the routes' own index (``route_index``), S3
(``s3``), SFTP (``sftp``), opening a route's source endpoint (``opener``) and the jobs service's
command API (``jobs``). The only boto3 in services/routes.

Every name is re-exported here, so ``from services.routes.adapters import ...`` is the one import.
"""

from __future__ import annotations

from events.dynamodb_values import deserialize, serialize
from services.routes.adapters.jobs import JobsApplicationSubmitter
from services.routes.adapters.opener import EndpointSourceOpener
from services.routes.adapters.route_index import UNROUTED_TTL_SECONDS, DynamoRouteIndex
from services.routes.adapters.s3 import S3ObjectInspector, S3Source, endpoint_view
from services.routes.adapters.scan_state import DynamoScanStateStore
from services.routes.adapters.sftp import SftpSource
from services.routes.adapters.tables import (
    CUSTOMER_INDEX,
    DynamoJobStatusReader,
    DynamoRoutesReadModel,
    create_tables,
)

__all__ = [
    "CUSTOMER_INDEX",
    "UNROUTED_TTL_SECONDS",
    "DynamoJobStatusReader",
    "DynamoRouteIndex",
    "DynamoRoutesReadModel",
    "DynamoScanStateStore",
    "EndpointSourceOpener",
    "JobsApplicationSubmitter",
    "S3ObjectInspector",
    "S3Source",
    "SftpSource",
    "create_tables",
    "deserialize",
    "endpoint_view",
    "serialize",
]
