"""Endpoints bounded context: the Endpoint aggregate, its commands and HTTP routes, and the
Secrets Manager adapter for endpoint credentials (see docs/architecture.md)."""
