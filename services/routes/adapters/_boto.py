"""The boto3 client an adapter uses: the one it was given (a test's), else a default one."""

from __future__ import annotations

from typing import Any


def client_or_default(client: Any, service: str = "dynamodb") -> Any:
    if client is not None:
        return client
    import boto3

    return boto3.client(service)  # type: ignore[call-overload]
