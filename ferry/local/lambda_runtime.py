"""Stands in for the AWS Lambda runtime: loads a handler by its ``module:function`` name and gives
it a Lambda context object, so the local stand-ins invoke handlers exactly as Lambda would."""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]


def load_handler(spec: str) -> Handler:
    """``"services.jobs.handlers:handler"`` → the function (imported once per process)."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    found = getattr(module, attr or "handler")
    if not callable(found):
        raise TypeError(f"{spec} is not callable")
    return found  # type: ignore[no-any-return]


@dataclass
class LocalLambdaContext:
    """The attributes of a Lambda context object that Powertools and handlers read."""

    function_name: str
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    region: str = "us-east-1"
    timeout_seconds: float = 900.0
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
