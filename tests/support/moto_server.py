"""moto server over HTTP for integration tests (and the settings a test process needs for it).

The server is :class:`events._moto.SerialMotoServer`: moto's own threaded server, except that
DynamoDB requests are applied one at a time. Plain ``ThreadedMotoServer`` lets racing conditional
writes both succeed and fails concurrent ``TransactWriteItems`` with HTTP 500 (moto has no
locking); see ``events/_moto.py``.

Pytest fixtures (registered in tests/conftest.py):

- ``moto_server``: session-scoped (one per xdist worker); yields the server's URL.
- ``aws_env``: per test; points boto3 at that URL through the environment (see
  :func:`aws_environment`) and yields the variables it set.

Helpers: :func:`unique_name` for per-test table/bucket/queue names, so tests share one server
without sharing state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from events._moto import SerialMotoServer

__all__ = [
    "AWS_REGION",
    "UNSET_VARIABLES",
    "aws_env",
    "aws_environment",
    "moto_server",
    "unique_name",
]

AWS_REGION = "us-east-1"

# AWS_CA_BUNDLE is irrelevant for an http:// endpoint but breaks tools such as rclone (see
# shared FIELD-NOTES); profile/session variables could point clients at real credentials.
UNSET_VARIABLES = (
    "AWS_CA_BUNDLE",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)


def aws_environment(endpoint_url: str) -> dict[str, str]:
    """Variables that send boto3 (and other AWS SDKs) to the moto server with fake keys."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": AWS_REGION,
        "AWS_REGION": AWS_REGION,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def unique_name(prefix: str) -> str:
    """A fresh resource name (valid for DynamoDB tables, S3 buckets and SQS queues)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server for the test session on a free 127.0.0.1 port; yields its URL."""
    with SerialMotoServer(host="127.0.0.1", port=0) as server:
        yield server.url


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Point boto3 at the session's moto server for one test (restored afterwards)."""
    for name in UNSET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    variables = aws_environment(moto_server)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    yield variables
