"""API keys of the local stack: the DynamoDB api-keys table plus ``<data-dir>/keys.json``.

Stands in for API Gateway API keys / usage plans. ``keys.json`` keeps only what the table keeps
(the sha256 of each key, its customer, id, name, scope, expiry and revocation), so ``ferry up`` can reload the keys into a
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

from ferry.api import ApiKey, ApiKeyStore, KeyAlreadyRevoked, Principal

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


def _from_json(k: dict[str, str]) -> ApiKey:
    def when(name: str) -> datetime | None:
        return datetime.fromisoformat(k[name]) if k.get(name) else None

    return ApiKey(
        key_hash=k["key_hash"],
        principal=Principal(
            customer_id=k["customer_id"],
            key_id=k["key_id"],
            key_name=k.get("name", ""),
            scope="read" if k.get("scope") == "read" else "write",
        ),
        created_at=when("created_at") or datetime.fromtimestamp(0, UTC),
        expires_at=when("expires_at"),
        revoked_at=when("revoked_at"),
    )


def _to_json(key: ApiKey) -> dict[str, str]:
    listed = key.listing()
    record = {
        "key_hash": key.key_hash,
        "customer_id": key.principal.customer_id,
        "key_id": key.principal.key_id,
        "name": key.principal.key_name,
        "scope": key.principal.scope,
        "created_at": listed["created_at"],
    }
    for name in ("expires_at", "revoked_at"):
        if listed[name]:
            record[name] = listed[name]
    return record


class FileBackedKeyStore:
    """An ApiKeyStore that records each key's hash and state in keys.json and forwards every
    change to ``inner`` (the keys table); a revocation is written to both."""

    def __init__(self, data_dir: Path, inner: ApiKeyStore | None = None) -> None:
        self.path = Path(data_dir) / KEYS_FILE
        self.inner = inner

    def lookup(self, key_hash: str) -> ApiKey | None:
        for k in read_keys(self.path.parent):
            if k["key_hash"] == key_hash:
                return _from_json(k)
        return None

    def add(self, key: ApiKey) -> None:
        if self.inner is not None:
            self.inner.add(key)
        with _locked(self.path):
            keys = [k for k in read_keys(self.path.parent) if k["key_hash"] != key.key_hash]
            keys.append(_to_json(key))
            _write_private(self.path, {"keys": keys})

    def list_keys(self, customer_id: str | None = None) -> list[ApiKey]:
        if self.inner is not None:
            return self.inner.list_keys(customer_id)
        found = [_from_json(k) for k in read_keys(self.path.parent)]
        return [k for k in found if customer_id in (None, k.principal.customer_id)]

    def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        with _locked(self.path):
            revoked = self.inner.revoke(key_id, at) if self.inner is not None else None
            keys = read_keys(self.path.parent)
            for k in keys:
                if k["key_id"] == key_id:
                    if revoked is None and k.get("revoked_at"):
                        raise KeyAlreadyRevoked(f"key {key_id} is already revoked", field="key_id")
                    k["revoked_at"] = at.isoformat()
                    revoked = revoked or _from_json(k)
            _write_private(self.path, {"keys": keys})
        return revoked


def load_keys_into(store: ApiKeyStore, data_dir: Path) -> int:
    """Put every key recorded in keys.json (revoked and expired ones too) into ``store``."""
    count = 0
    for k in read_keys(data_dir):
        store.add(_from_json(k))
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
