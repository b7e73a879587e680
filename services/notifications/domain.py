"""Subscriptions and their deliveries: the request model, matching, signing, the retry schedule.

Pure: no boto3, no clock, no network (callers pass times in).

Why subscriptions are items in one DynamoDB table and not an event-sourced aggregate: a
subscription is a customer's delivery configuration that only the notifier reads; no other
service reacts to its changes, no read model folds them, and its history (the audit that event
sourcing buys) is the deliveries themselves, which are recorded per attempt anyway. A plain item
read with a consistent GetItem before every attempt is also what makes "a deleted (or paused)
subscription gets nothing" exact.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import urllib.parse
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from ferry.errors import Conflict, Invalid, NotFound
from ferry.names import NOTIFICATIONS_DETAIL_TYPES
from ferry.validation import CanonicalId, Name, check_text

SIGNATURE_HEADER = "Ferry-Signature"
MAX_URL_LENGTH = 2048
MAX_EVENTS = len(NOTIFICATIONS_DETAIL_TYPES)
SECRET_PREFIX = "whsec_"
_SECRET = re.compile(r"^[A-Za-z0-9_\-]{24,128}$")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)

# ------------------------------------------------------------------------------- errors


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"


class SubscriptionInvalid(Invalid):
    pass


class SubscriptionConflict(Conflict):
    pass


# ------------------------------------------------------------------------------- request


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Filter(_Strict):
    """Which events of the subscribed types: all three are optional and combine with AND."""

    route_id: CanonicalId | None = None
    endpoint_id: CanonicalId | None = Field(
        default=None, description="The endpoint itself, or a job's source or target endpoint."
    )
    job_id: CanonicalId | None = None


class WebhookTarget(_Strict):
    type: Literal["webhook"]
    url: str = Field(
        min_length=10,
        max_length=MAX_URL_LENGTH,
        pattern=r"^https?://[^/?#\s]+",
        description="https (http only on the local stack); no private address unless the "
        "deployment allow-lists it (FERRY_EGRESS_ALLOW).",
    )
    secret: str | None = Field(
        default=None,
        description="The signing secret (24-128 characters of A-Z a-z 0-9 _ -); generated and "
        "returned once when omitted. Never returned again.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        check_text(value)
        parsed = urllib.parse.urlsplit(value)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parsed.username or parsed.password:
            raise ValueError("must not carry credentials (use the signing secret)")
        if parsed.fragment:
            raise ValueError("must not have a fragment")
        try:
            parsed.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None and not _SECRET.match(value):
            raise ValueError("must be 24 to 128 characters of A-Z, a-z, 0-9, '_' or '-'")
        return value


class EmailTarget(_Strict):
    type: Literal["email"]
    address: str = Field(max_length=254)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("must be an e-mail address (local@domain.tld)")
        return value


Target = Annotated[WebhookTarget | EmailTarget, Field(discriminator="type")]
EventName = Literal[NOTIFICATIONS_DETAIL_TYPES]  # type: ignore[valid-type]


class SubscriptionRequest(_Strict):
    """The body of ``POST /subscriptions``."""

    name: Name
    events: list[EventName] = Field(min_length=1, max_length=MAX_EVENTS)  # type: ignore[valid-type]
    filter: Filter = Field(default_factory=Filter)
    target: Target
    include_replays: StrictBool = Field(
        default=False,
        description="Also deliver events replayed from the archive (off: a replay is not re-sent).",
    )

    @field_validator("events")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists an event twice")
        return value


def check_webhook_url(url: str, *, allow_http: bool, allowed: Any) -> None:
    """The egress rules that can be checked without DNS: the scheme, and a literal address.
    ``allowed(address) -> bool`` is the deployment's egress policy. Raises SubscriptionInvalid
    naming ``target.url``. (A host name is checked at every delivery, after resolving it.)"""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "https" and not allow_http:
        raise SubscriptionInvalid("target.url: must be https", field="target.url")
    host = (parsed.hostname or "").strip("[]")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            literal = ipaddress.ip_address("127.0.0.1")
        else:
            return
    if not allowed(str(literal)):
        raise SubscriptionInvalid(
            "target.url: this address is not reachable under Ferry's egress policy",
            field="target.url",
            code="egress_denied",
        )


# ------------------------------------------------------------------------------- matching


ROUTE_FAILING = ("RouteScanFailed", "FileDeliveryFailed")
"""What ``RouteFailing`` subscribes to: a route goes FAILING when its source cannot be listed or a
file's delivery failed, and each of those is its own event (the delivery carries that event's
detail-type). There is no separate RouteFailing event on the bus."""


def subscribed_types(events: list[str]) -> set[str]:
    """The detail-types a subscription's ``events`` stand for (``RouteFailing`` expanded)."""
    wanted = set(events)
    if "RouteFailing" in wanted:
        wanted.update(ROUTE_FAILING)
    return wanted


def matches(
    subscription: dict[str, Any],
    detail_type: str,
    detail: dict[str, Any],
    job: dict[str, Any] | None,
) -> bool:
    """Does an event (its detail, and for job/executor events the job's read-model item, if the
    filter needs it) match an ACTIVE subscription of the event's customer?"""
    if subscription.get("status") != "ACTIVE":
        return False
    if detail_type not in subscribed_types(subscription.get("events", [])):
        return False
    wanted = subscription.get("filter") or {}
    if wanted.get("job_id") and detail.get("job_id") != wanted["job_id"]:
        return False
    if wanted.get("route_id"):
        route = detail.get("route_id") or (job or {}).get("route_id")
        if route != wanted["route_id"]:
            return False
    if wanted.get("endpoint_id"):
        endpoints = {detail.get("endpoint_id")}
        for side in ("source", "target"):
            endpoints.add(((job or {}).get(side) or {}).get("endpoint_id"))
        if wanted["endpoint_id"] not in endpoints:
            return False
    return True


def needs_job(subscription: dict[str, Any], detail: dict[str, Any]) -> bool:
    """Matching this subscription needs the job's read-model item (route or endpoints)."""
    wanted = subscription.get("filter") or {}
    if "job_id" not in detail:
        return False
    return bool(
        (wanted.get("route_id") and not detail.get("route_id"))
        or (wanted.get("endpoint_id") and not detail.get("endpoint_id"))
    )


def is_replay(body: dict[str, Any]) -> str | None:
    """The replay's name when the EventBridge event was replayed from the archive, else None."""
    name = body.get("replay-name")
    if isinstance(name, str) and name:
        return name
    if (body.get("detail") or {}).get("replayed") is True:
        return "replayed"
    return None


def delivery_key(event_id: str, replay: str | None) -> str:
    """One delivery per (subscription, event id); a replay asked for is a delivery of its own."""
    return event_id if replay is None else f"{event_id}#replay:{replay}"


# ------------------------------------------------------------------------------- signing


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Ferry-Signature`` header value: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (docs/notifications.md): recompute, compare in constant time, and
    refuse a signature older (or newer) than ``tolerance`` seconds."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


# ------------------------------------------------------------------------------- retries

RETRY_WINDOW = timedelta(hours=24)
MAX_DELAY = timedelta(hours=6)


def retry_delay(attempt: int, base_seconds: float) -> timedelta:
    """The wait after failed attempt ``attempt`` (1-based): base * 3^(attempt-1), at most 6 h."""
    seconds = base_seconds * (3 ** min(attempt - 1, 20))
    return min(timedelta(seconds=seconds), MAX_DELAY)


def next_attempt_at(
    attempt: int,
    first_attempt_at: datetime,
    now: datetime,
    base_seconds: float,
    window: timedelta = RETRY_WINDOW,
) -> datetime | None:
    """When to try again after failed attempt ``attempt``, or None to dead-letter: retries go on
    until an attempt fails at least ``window`` (24 h) after the first one."""
    if now - first_attempt_at >= window:
        return None
    return now + retry_delay(attempt, base_seconds)


def retry_schedule(base_seconds: float, window: timedelta = RETRY_WINDOW) -> list[float]:
    """Seconds after the first attempt at which each attempt runs (for the docs and tests),
    assuming each attempt takes no time."""
    at, attempt, times = 0.0, 1, [0.0]
    while at < window.total_seconds():
        at += retry_delay(attempt, base_seconds).total_seconds()
        attempt += 1
        times.append(at)
    return times
