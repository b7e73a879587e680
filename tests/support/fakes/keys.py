"""The in-memory API-key store: a fake of ``ferry.api_keys.ApiKeyStore``."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime

from ferry.api_keys import ApiKey, KeyAlreadyRevoked

__all__ = ["InMemoryKeyStore"]


class InMemoryKeyStore:
    """API keys in a dict (unit tests, the edge harness)."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}
        self._lock = threading.Lock()

    def lookup(self, key_hash: str) -> ApiKey | None:
        return self._keys.get(key_hash)

    def add(self, key: ApiKey) -> None:
        with self._lock:
            self._keys[key.key_hash] = key

    def list_keys(self, customer_id: str | None = None) -> list[ApiKey]:
        found = [k for k in self._keys.values() if customer_id in (None, k.principal.customer_id)]
        return sorted(found, key=lambda k: (k.created_at, k.principal.key_id))

    def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        with self._lock:
            for digest, key in self._keys.items():
                if key.principal.key_id == key_id:
                    if key.revoked_at is not None:
                        raise KeyAlreadyRevoked(f"key {key_id} is already revoked", field="key_id")
                    self._keys[digest] = replace(key, revoked_at=at)
                    return self._keys[digest]
        return None
