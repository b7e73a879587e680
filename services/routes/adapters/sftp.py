"""SFTP: a route's SFTP source over a session from the executor's endpoint access."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from services.executor import post_actions
from services.routes.ports import (
    ListedFile,
    ListingFailed,
    SourceSession,
    safe_reason,
)


class SftpSource(SourceSession):
    def __init__(self, session: Any, base_path: str) -> None:
        self._session = session
        self._base = base_path.rstrip("/") or ""

    def _full(self, path: str) -> str:
        return f"{self._base}/{path}" if path else (self._base or "/")

    def iter_files(self, directory: str, recursive: bool) -> Iterator[ListedFile]:
        top = directory.strip("/")
        stack = [top]
        while stack:
            current = stack.pop()
            try:
                for entry in self._session.iter_dir(self._full(current)):
                    rel = f"{current}/{entry.name}" if current else entry.name
                    if entry.is_dir:
                        if recursive:
                            stack.append(rel)
                        continue
                    yield ListedFile(path=rel, size=int(entry.size), mtime=float(entry.mtime))
            except Exception as error:
                if current == top:
                    raise ListingFailed(f"list {current or '/'}: {safe_reason(error)}") from None
                # one unreadable subdirectory: reported as that entry, the rest is listed
                yield ListedFile(path=current, size=0, mtime=0.0, error=safe_reason(error))

    def exists(self, path: str) -> bool:
        return self._session.stat(self._full(path)) is not None

    def remove(self, path: str) -> None:
        post_actions.sftp_delete(self._session, self._full(path))

    def move(self, path: str, to: str, *, marker: str) -> None:
        post_actions.sftp_move(self._session, self._full(path), self._full(to))

    def close(self) -> None:
        self._session.close()
