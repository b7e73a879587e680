"""The in-memory endpoint directory: a fake of ``ferry.endpoint_directory.EndpointDirectory``
(used for the jobs and routes services alike)."""

from __future__ import annotations

from ferry.endpoint_directory import EndpointDirectory, EndpointInfo

__all__ = ["InMemoryEndpointDirectory"]


class InMemoryEndpointDirectory(EndpointDirectory):
    def __init__(self, endpoints: list[EndpointInfo] | None = None) -> None:
        self.endpoints = {e.endpoint_id: e for e in endpoints or []}

    def put(self, endpoint: EndpointInfo) -> None:
        self.endpoints[endpoint.endpoint_id] = endpoint

    def get(self, endpoint_id: str) -> EndpointInfo | None:
        return self.endpoints.get(endpoint_id)
