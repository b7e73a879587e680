"""API keys of the local stack: the DynamoDB api-keys table plus ``<data-dir>/keys.json``.

Stands in for API Gateway API keys / usage plans. ``keys.json`` keeps only what the table keeps
(the sha256 of each key, the customer and the key id), so ``ferry up`` can reload the keys into a
fresh moto server; the keys themselves are shown once and never stored — except the demo
customer's, which ``ferry up`` writes to ``<data-dir>/config.json`` (mode 0600) for the CLI.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ferry.api import ApiKeyStore, Principal

KEYS_FILE = "keys.json"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def read_keys(data_dir: Path) -> list[dict[str, str]]:
    path = Path(data_dir) / KEYS_FILE
    if not path.exists():
        return []
    data = json.loads(path.read_text() or "{}")
    return [dict(k) for k in data.get("keys", [])]


class FileBackedKeyStore:
    """An ApiKeyStore that records each added key's hash in keys.json and forwards to ``inner``."""

    def __init__(self, data_dir: Path, inner: ApiKeyStore | None = None) -> None:
        self.path = Path(data_dir) / KEYS_FILE
        self.inner = inner

    def lookup(self, key_hash: str) -> Principal | None:
        for k in read_keys(self.path.parent):
            if k["key_hash"] == key_hash:
                return Principal(customer_id=k["customer_id"], key_id=k["key_id"])
        return None

    def add(self, key_hash: str, principal: Principal) -> None:
        if self.inner is not None:
            self.inner.add(key_hash, principal)
        with _locked(self.path):
            keys = [k for k in read_keys(self.path.parent) if k["key_hash"] != key_hash]
            keys.append(
                {
                    "key_hash": key_hash,
                    "customer_id": principal.customer_id,
                    "key_id": principal.key_id,
                    "created_at": datetime.now(UTC).isoformat(),
                }
            )
            _write_private(self.path, {"keys": keys})


def load_keys_into(store: ApiKeyStore, data_dir: Path) -> int:
    """Put every key recorded in keys.json into ``store`` (a fresh moto server's table)."""
    count = 0
    for k in read_keys(data_dir):
        store.add(k["key_hash"], Principal(customer_id=k["customer_id"], key_id=k["key_id"]))
        count += 1
    return count


def _write_private(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def write_config(data_dir: Path, config: dict[str, Any]) -> Path:
    """``<data-dir>/config.json`` (mode 0600: it holds the demo API key)."""
    path = Path(data_dir) / "config.json"
    _write_private(path, config)
    return path


def read_config(data_dir: Path) -> dict[str, Any]:
    path = Path(data_dir) / "config.json"
    if not path.exists():
        return {}
    loaded: dict[str, Any] = json.loads(path.read_text() or "{}")
    return loaded
