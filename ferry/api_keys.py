"""API keys: the principal a key stands for, how a key is issued (shown once, stored only as
its SHA-256), and the two stores (in memory for tests, the DynamoDB API keys table).

``ferry.api`` re-exports every public name here; the resolver there authenticates each request
against an ``ApiKeyStore``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from ferry.errors import Conflict, Invalid, NotFound

Scope = Literal["read", "write"]
SCOPES: tuple[str, ...] = ("read", "write")


@dataclass(frozen=True)
class Principal:
    customer_id: str
    key_id: str
    key_name: str = ""
    scope: Scope = "write"

    @property
    def actor(self) -> str:
        """What events record as their actor: the key id and, when it has one, its name."""
        return f"{self.key_id} ({self.key_name})" if self.key_name else self.key_id


@dataclass(frozen=True)
class ApiKey:
    """A stored API key: its hash, never the key. No expiry: never expires."""

    key_hash: str
    principal: Principal
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def refusal(self, now: datetime) -> str | None:
        """Why this key is not usable at ``now`` (None when it is)."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return "API key revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "API key expired"
        return None

    def listing(self) -> dict[str, Any]:
        """What ``ferry keys list`` shows: no key, no hash."""
        return {
            "key_id": self.principal.key_id,
            "name": self.principal.key_name,
            "customer_id": self.principal.customer_id,
            "scope": self.principal.scope,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class ApiKeyStore(Protocol):
    def lookup(self, key_hash: str) -> ApiKey | None: ...

    def add(self, key: ApiKey) -> None: ...

    def list_keys(self, customer_id: str | None = None) -> list[ApiKey]: ...

    def revoke(self, key_id: str, at: datetime) -> ApiKey | None: ...


class KeyNotFound(NotFound):
    code = "key_not_found"


class KeyAlreadyRevoked(Conflict):
    code = "key_revoked"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key() -> str:
    return "fk_" + secrets.token_urlsafe(24)


_DURATION = re.compile(r"^([1-9][0-9]{0,4})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w`` → a timedelta (ValueError otherwise)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError("a duration such as 90d, 12h, 30m or 2w")
    delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if delta > timedelta(days=3660):
        raise ValueError("at most 10 years")
    return delta


def issue_key(
    store: ApiKeyStore,
    customer_id: str,
    *,
    name: str = "",
    scope: Scope = "write",
    expires_in: timedelta | None = None,
    now: datetime | None = None,
) -> tuple[str, Principal]:
    """Create a new API key for a customer; the key itself is returned once and never stored."""
    if scope not in SCOPES:
        raise Invalid("scope must be read or write", field="scope")
    key = new_api_key()
    digest = hash_key(key)
    principal = Principal(
        customer_id=customer_id, key_id="key-" + digest[:12], key_name=name, scope=scope
    )
    created = now or datetime.now(UTC)
    store.add(
        ApiKey(
            key_hash=digest,
            principal=principal,
            created_at=created,
            expires_at=created + expires_in if expires_in is not None else None,
        )
    )
    return key, principal


def _ts(item: dict[str, Any], name: str) -> datetime | None:
    value = item.get(name, {}).get("S")
    return datetime.fromisoformat(value) if value else None


class DynamoKeyStore:
    """API keys table (pk key_hash). Every request reads its key's item (consistent read), so a
    revocation or an expiry is seen by the very next request, in every Lambda instance: there is
    no cache of the verdict (a cached "valid" is what would keep a revoked key working)."""

    def __init__(self, table_name: str, client: Any = None):
        import boto3

        self._table = table_name
        self._client = client or boto3.client("dynamodb")

    @staticmethod
    def _record(item: dict[str, Any]) -> ApiKey:
        scope = item.get("scope", {}).get("S", "write")
        return ApiKey(
            key_hash=item["key_hash"]["S"],
            principal=Principal(
                customer_id=item["customer_id"]["S"],
                key_id=item["key_id"]["S"],
                key_name=item.get("name", {}).get("S", ""),
                scope="read" if scope == "read" else "write",
            ),
            created_at=_ts(item, "created_at") or datetime.fromtimestamp(0, UTC),
            expires_at=_ts(item, "expires_at"),
            revoked_at=_ts(item, "revoked_at"),
        )

    def lookup(self, key_hash: str) -> ApiKey | None:
        item = self._client.get_item(
            TableName=self._table, Key={"key_hash": {"S": key_hash}}, ConsistentRead=True
        ).get("Item")
        return self._record(item) if item else None

    def add(self, key: ApiKey) -> None:
        item: dict[str, Any] = {
            "key_hash": {"S": key.key_hash},
            "customer_id": {"S": key.principal.customer_id},
            "key_id": {"S": key.principal.key_id},
            "scope": {"S": key.principal.scope},
            "created_at": {"S": key.created_at.isoformat()},
        }
        if key.principal.key_name:
            item["name"] = {"S": key.principal.key_name}
        if key.expires_at is not None:
            item["expires_at"] = {"S": key.expires_at.isoformat()}
        if key.revoked_at is not None:
            item["revoked_at"] = {"S": key.revoked_at.isoformat()}
        self._client.put_item(TableName=self._table, Item=item)

    def list_keys(self, customer_id: str | None = None) -> list[ApiKey]:
        """Every key (an admin scan: the table holds one small item per key)."""
        found: list[ApiKey] = []
        kwargs: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        while True:
            page = self._client.scan(**kwargs)
            found.extend(self._record(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        found = [k for k in found if customer_id in (None, k.principal.customer_id)]
        return sorted(found, key=lambda k: (k.created_at, k.principal.key_id))

    def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        for key in self.list_keys():
            if key.principal.key_id != key_id:
                continue
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key={"key_hash": {"S": key.key_hash}},
                    UpdateExpression="SET revoked_at = :at",
                    ConditionExpression="attribute_exists(key_hash) AND attribute_not_exists(revoked_at)",
                    ExpressionAttributeValues={":at": {"S": at.isoformat()}},
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                raise KeyAlreadyRevoked(
                    f"key {key_id} is already revoked", field="key_id"
                ) from None
            return replace(key, revoked_at=at)
        return None

    @staticmethod
    def create_table(client: Any, table_name: str) -> None:
        try:
            client.create_table(
                TableName=table_name,
                KeySchema=[{"AttributeName": "key_hash", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "key_hash", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except client.exceptions.ResourceInUseException:
            pass
