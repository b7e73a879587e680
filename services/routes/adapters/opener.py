"""Opens a route's source endpoint: an S3 client (the endpoint's own, from S3Access) or an SFTP
session (through the executor's endpoint access and secrets)."""

from __future__ import annotations

from typing import Any

from events.contract import EndpointType
from services.routes.adapters.s3 import S3Source, endpoint_view
from services.routes.adapters.sftp import SftpSource
from services.routes.ports import (
    EndpointInfo,
    ListingFailed,
    SourceOpener,
    SourceSession,
    safe_reason,
)


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
                client = self._access.client_for(endpoint_view(endpoint))
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
