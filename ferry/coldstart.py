"""The one build-once-per-cold-start helper every entry point uses.

A Lambda handler (or a worker's message callback) builds its service on the first invocation,
not at import (imports stay cheap, tests can import entry points without AWS), and reuses it for
every later invocation of the same process. Concurrent first calls build once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Once", "once", "per_cold_start"]

T = TypeVar("T")


class Once(Generic[T]):
    """``Once(build)()`` → ``build()``'s value, built on the first call only (thread-safe)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self.build = build
        self._lock = threading.Lock()
        self._built = False
        self._value: T | None = None

    @property
    def built(self) -> bool:
        return self._built

    def reset(self) -> None:
        """Forget the built value: the next call builds again (a new cold start, for tests)."""
        with self._lock:
            self._built, self._value = False, None

    def __call__(self) -> T:
        if not self._built:
            with self._lock:
                if not self._built:
                    self._value = self.build()
                    self._built = True
        return self._value  # type: ignore[return-value]


def once(build: Callable[[], T]) -> Once[T]:
    return Once(build)


def per_cold_start(
    build: Callable[[], Callable[[dict[str, Any], Any], T]],
) -> Callable[[dict[str, Any], Any], T]:
    """A ``(event, context)`` handler that builds the real handler on its first invocation."""
    real = Once(build)

    def handle(event: dict[str, Any], context: Any) -> T:
        return real()(event, context)

    handle.built = real  # type: ignore[attr-defined]
    return handle
