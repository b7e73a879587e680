"""Secrets Manager adapter (and its in-memory fake) for the endpoints service."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any

from services.endpoints.application import Credentials, SecretStore, SecretWrite

__all__ = ["InMemorySecretStore", "SecretsManagerStore"]


class SecretsManagerStore(SecretStore):
    """Endpoint credentials as JSON SecretStrings in AWS Secrets Manager."""

    def __init__(self, client: Any = None, *, kms_key_id: str | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("secretsmanager")
        self._client = client
        self._kms_key_id = kms_key_id

    def create(self, name: str, value: Credentials, *, tags: Mapping[str, str]) -> str:
        kwargs: dict[str, Any] = {
            "Name": name,
            "SecretString": value.secret_string(),
            "Description": "Ferry endpoint credentials",
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        }
        if self._kms_key_id:
            kwargs["KmsKeyId"] = self._kms_key_id
        return str(self._client.create_secret(**kwargs)["ARN"])

    def put(self, arn: str, value: Credentials) -> SecretWrite:
        previous = self._current_version(arn)
        response = self._client.put_secret_value(SecretId=arn, SecretString=value.secret_string())
        return SecretWrite(arn=arn, version_id=response["VersionId"], previous_version_id=previous)

    def revert(self, write: SecretWrite) -> None:
        if write.previous_version_id is None:
            return
        self._client.update_secret_version_stage(
            SecretId=write.arn,
            VersionStage="AWSCURRENT",
            MoveToVersionId=write.previous_version_id,
            RemoveFromVersionId=write.version_id,
        )

    def delete(self, arn: str) -> None:
        self._client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)

    def _current_version(self, arn: str) -> str | None:
        stages = self._client.describe_secret(SecretId=arn).get("VersionIdsToStages", {})
        for version_id, labels in stages.items():
            if "AWSCURRENT" in labels:
                return str(version_id)
        return None


class InMemorySecretStore(SecretStore):
    """A fake for unit tests: versions per secret, the current one last. ``fail_next`` makes
    the next call of that method raise (to exercise the undo paths)."""

    def __init__(self, *, account: str = "123456789012", region: str = "us-east-1") -> None:
        self._prefix = f"arn:aws:secretsmanager:{region}:{account}:secret:"
        self._lock = threading.Lock()
        self.names: dict[str, str] = {}  # arn -> name
        self.versions: dict[str, list[tuple[str, dict[str, str | None]]]] = {}
        self.current: dict[str, str] = {}  # arn -> version id
        self.tags: dict[str, dict[str, str]] = {}
        self.deleted: list[str] = []
        self.fail_next: set[str] = set()

    def _maybe_fail(self, method: str) -> None:
        if method in self.fail_next:
            self.fail_next.discard(method)
            raise RuntimeError(f"injected {method} failure")

    def create(self, name: str, value: Credentials, *, tags: Mapping[str, str]) -> str:
        with self._lock:
            self._maybe_fail("create")
            if name in self.names.values():
                raise RuntimeError(f"secret {name} exists")
            arn = f"{self._prefix}{name}-{uuid.uuid4().hex[:6]}"
            version = uuid.uuid4().hex
            self.names[arn] = name
            self.versions[arn] = [(version, value.secret_value())]
            self.current[arn] = version
            self.tags[arn] = dict(tags)
            return arn

    def put(self, arn: str, value: Credentials) -> SecretWrite:
        with self._lock:
            self._maybe_fail("put")
            previous = self.current[arn]
            version = uuid.uuid4().hex
            self.versions[arn].append((version, value.secret_value()))
            self.current[arn] = version
            return SecretWrite(arn=arn, version_id=version, previous_version_id=previous)

    def revert(self, write: SecretWrite) -> None:
        with self._lock:
            self._maybe_fail("revert")
            if write.previous_version_id is not None:
                self.current[write.arn] = write.previous_version_id

    def delete(self, arn: str) -> None:
        with self._lock:
            self._maybe_fail("delete")
            self.names.pop(arn, None)
            self.versions.pop(arn, None)
            self.current.pop(arn, None)
            self.deleted.append(arn)

    # --- for tests ---------------------------------------------------------------------------
    def value(self, arn: str) -> dict[str, str | None]:
        """The current value of a secret."""
        version = self.current[arn]
        return next(v for vid, v in self.versions[arn] if vid == version)

    def all_values(self) -> list[str]:
        """Every secret string ever written (to search for leaks)."""
        return [
            str(s)
            for versions in self.versions.values()
            for _, value in versions
            for k, s in value.items()
            if s and k != "username"
        ]
