"""DynamoDB event store: an eventsourcing 9.5.6 persistence module.

Selecting it
============
Set ``PERSISTENCE_MODULE=events.dynamodb``. ``InfrastructureFactory.construct`` finds the one
factory class here, :class:`DynamoDBFactory`. Ferry applications subclass
``eventsourcing.application.Application`` and override::

    def construct_recorder(self) -> ApplicationRecorder:
        return self.factory.aggregate_recorder()  # type: ignore[return-value]

which works with this factory and with the in-memory ``eventsourcing.popo`` one (unit tests).
(``Application.recorder`` is annotated ``ApplicationRecorder``, hence the ignore.) Snapshots,
if enabled, go to their own table through ``aggregate_recorder(purpose="snapshots")``.

Tests and the local stack should serve moto with ``events._moto.SerialMotoServer``: plain moto
server lets racing conditional writes both succeed (see that module).

Settings
========
Read from the eventsourcing ``Environment``, so ``<APPNAME>_<KEY>`` wins over ``<KEY>``:

==========================  ==================================  ================================
key                         default                             meaning
==========================  ==================================  ================================
``FERRY_EVENTS_TABLE``      ``ferry-events``                    aggregate events
``FERRY_SNAPSHOTS_TABLE``   ``<events table>-snapshots``        snapshots (``purpose`` other
                                                                than "events" reads
                                                                ``FERRY_<PURPOSE>_TABLE``)
``FERRY_TRACKING_TABLE``    ``ferry-tracking``                  tracking recorder
``CREATE_TABLE``            ``yes``                             create missing tables when a
                                                                recorder is made (DescribeTable,
                                                                CreateTable); set ``no`` where
                                                                CDK owns the tables
``AWS_DEFAULT_REGION``      boto3's own lookup                  region of the client
==========================  ==================================  ================================

Endpoint and credentials are boto3's own business (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_DYNAMODB``, profiles, roles): nothing here special-cases them.

Events table and item format
============================
Partition key ``stream_id`` (S), sort key ``version`` (N), ``PAY_PER_REQUEST``, DynamoDB Streams
with ``NEW_IMAGE`` (see :func:`create_events_table`). **One item per append** (one
``insert_events`` call, the events one command of one aggregate emitted), keyed by the append's
first version:

================  ====  ===========================================================
attribute         type  value
================  ====  ===========================================================
``stream_id``     S     ``str(StoredEvent.originator_id)`` (UUIDs in canonical form)
``version``       N     the first event's ``originator_version``
``topic``         S     the first event's topic (the domain event class topic)
``state``         B     the first event's state (mapper output: JSON, maybe compressed
                        and/or encrypted according to COMPRESSOR_TOPIC/CIPHER_KEY)
``more``          L     only for an append of several events: the later ones, each a map
                        of ``version``, ``topic``, ``state`` and its chain attributes
``last_version``  N     with ``more``: the append's last version
================  ====  ===========================================================

plus ``origin_region`` and the chain attributes (``events.chain``) of the first event, and
``customer_id``/``at_key`` for the ``by-customer-time`` index. An append of one event is exactly
the per-event item of earlier versions, so tables written before keep reading the same.

Why one item and not a transaction: DynamoDB's multi-Region strongly consistent (MRSC) global
tables, which active-active needs for the event store (docs/multi-region.md), reject
``TransactWriteItems``. One conditional ``PutItem`` is atomic in every mode. The optimistic
rule stays sound: a writer appends at (its last seen version + 1), and the versions it can have
seen are always the last version of some item (the events of an item come into existence
together), so its key is either a free version or the first version of an existing item.

Consumers decode an item (a DynamoDB Streams ``NewImage``, a Query result) with
:func:`stored_events_from_item` (every event it holds) or :func:`expand_item` (per-event items,
as plain dicts of attributes), which accept the low-level typed format (``{"S": ...}``,
``{"N": ...}``, ``{"B": ...}``; ``B`` as bytes, or as base64 text as in records delivered by a
Lambda event source) and the boto3 resource (deserialised) format.
:func:`stored_event_from_item` decodes the first event only. Originator ids come back as a
``UUID`` when ``stream_id`` is a canonical UUID string, else as ``str``;
``Mapper.to_domain_event`` accepts both. :meth:`DynamoDBAggregateRecorder.select_events`
returns the ``originator_id`` object it was given, so a reader gets back the type it asked with.

Writes
======
``insert_events`` is all-or-nothing and optimistic:

* the append's one item is written with ``attribute_not_exists(stream_id)``: a second writer at
  the same (stream, version) gets ``eventsourcing.persistence.IntegrityError``; so does a batch
  that repeats a (stream, version) (checked before any request is sent);
* one stream per append: events of several aggregates in one call raise ``ProgrammingError``
  (save them one by one, in an order that survives a crash between — see
  ``services/jobs`` redrive and ``services/endpoints`` name claims); versions must be
  consecutive;
* at most 100 events (``MAX_EVENTS_PER_APPEND``): a longer append raises ``ProgrammingError``.
  It is **not** split: two items could half-succeed, which breaks the atomicity aggregates rely
  on. DynamoDB caps an item at 400 KB: beyond that, ``DataError`` (from its
  ValidationException);
* retries by botocore after an ambiguous failure (lost response) must not turn our own success
  into a conflict: a ``PutItem`` whose retry fails its condition against an item
  byte-identical to ours counts as written;
* writes refused only because another request on the same item was in flight
  (``TransactionConflict``, or MRSC's ``ReplicatedWriteConflictException``: another Region is
  writing that item) are retried a few times with jittered backoff, then raise
  ``OperationalError``; the outcome of the retry (success or ``IntegrityError``) is the answer.

Reads
=====
``select_events`` runs a strongly consistent ``Query`` on ``stream_id`` with ``gt``/``lte`` as a
key condition on ``version`` (``BETWEEN`` when both; the lower bound 99 below ``gt + 1``, where
the item holding ``gt + 1`` may start), ``desc`` as ``ScanIndexForward=False`` and ``limit`` as
``Limit``, following ``LastEvaluatedKey`` until done; items are expanded and the events outside
the range dropped.

Decision: no notification log (application sequence)
====================================================
Ferry does not use the library's gapless application sequence: projections are fed by DynamoDB
Streams -> EventBridge, and consumers dedupe by event id / (stream_id, version). A gapless
sequence on DynamoDB needs a counter item updated in the transaction of every append, which
serialises all appends of an application on one item (about 1,000 writes/s per item on AWS,
minus conflicts and retries) and makes every append a transaction (twice the write cost).
So this module provides, deliberately:

* ``DynamoDBFactory.aggregate_recorder()`` -> :class:`DynamoDBAggregateRecorder` (events and,
  with ``purpose="snapshots"``, snapshots);
* ``DynamoDBFactory.tracking_recorder()`` -> :class:`DynamoDBTrackingRecorder`; it passes the
  library's ``TrackingRecorderTestCase``;
* ``DynamoDBFactory.application_recorder()`` and ``DynamoDBFactory.process_recorder()`` raise
  ``eventsourcing.persistence.ProgrammingError`` explaining this decision.

Unsupported, as a consequence: ``ApplicationRecorder.select_notifications``,
``max_notification_id`` and ``subscribe``; ``ProcessRecorder`` (recording tracking atomically
with events: ``insert_events(..., tracking=...)`` raises ``ProgrammingError``);
``Application.notification_log`` / ``LocalNotificationLog``; the default
``Application.construct_recorder``; ``ProcessApplication``/``System`` runners and eventsourcing
projection runners reading this store's application sequence.

Tracking table
==============
Partition key ``application_name`` (S); one item per upstream name holding the highest
``notification_id`` (N) recorded (like the library's Postgres "single row tracking").
``insert_tracking`` is a conditional update that succeeds only if no position is recorded or the
recorded one is lower: a repeated or lower position raises ``IntegrityError``.

Errors
======
botocore errors become the eventsourcing (PEP 249 style) hierarchy:
``ConditionalCheckFailed`` -> ``IntegrityError``; ``ResourceNotFoundException`` and invalid
requests -> ``ProgrammingError``; an item too large -> ``DataError``; throttling, capacity,
conflicts, timeouts and connection failures -> ``OperationalError``; DynamoDB internal errors ->
``InternalError``; missing credentials/region -> ``InterfaceError``.

Why one module over 400 lines (allowed by issue 13): it is one eventsourcing persistence module
(``PERSISTENCE_MODULE`` names a module and the library looks for its one factory there); the
recorders share the item format, the error translation and the write rules described above.
"""

from __future__ import annotations

import base64
import binascii
import os
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DatabaseError,
    DataError,
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    PersistenceError,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool

from events.chain import ChainLink, genesis, link, verify_stream

if TYPE_CHECKING:
    from uuid import UUID

    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = [
    "CUSTOMER_TIME_INDEX",
    "MAX_EVENTS_PER_APPEND",
    "DynamoDBAggregateRecorder",
    "DynamoDBFactory",
    "DynamoDBTrackingRecorder",
    "create_events_table",
    "create_tracking_table",
    "expand_item",
    "plain_item",
    "stored_event_from_item",
    "stored_events_from_item",
]

MAX_EVENTS_PER_APPEND = 100
"""The most events one append (one item) may hold: readers look this far below a version for
the item holding it."""

_TRANSACTION_CONFLICT_ATTEMPTS = 5

NO_NOTIFICATION_LOG = (
    "events.dynamodb provides no application sequence (notification log): Ferry feeds "
    "projections from DynamoDB Streams -> EventBridge, and a gapless sequence on DynamoDB "
    "would serialise every append on one counter item. Use "
    "factory.aggregate_recorder() (override Application.construct_recorder to return it) "
    "and, for consumers, factory.tracking_recorder(). See the events.dynamodb docstring."
)


# --------------------------------------------------------------------------- errors


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _translate(error: Exception) -> PersistenceError:
    """Map a botocore error to eventsourcing's persistence error hierarchy."""
    if isinstance(error, (NoCredentialsError, PartialCredentialsError, NoRegionError)):
        return InterfaceError(str(error))
    if isinstance(error, BotoCoreError):
        # Connection refused/reset, timeouts, malformed responses.
        return OperationalError(str(error))
    if not isinstance(error, ClientError):
        return DatabaseError(str(error))
    code = _error_code(error)
    message = str(error)
    if code == "ConditionalCheckFailedException":
        return IntegrityError(message)
    if code == "TransactionCanceledException":
        reasons = {r.get("Code") for r in error.response.get("CancellationReasons", [])}  # type: ignore[attr-defined]
        if "ConditionalCheckFailed" in reasons:
            return IntegrityError(message)
        if "ValidationError" in reasons:
            return DataError(message)
        return OperationalError(message)
    if code == "ValidationException":
        if "size" in message.lower():
            return DataError(message)
        return ProgrammingError(message)
    if code in {"ResourceNotFoundException", "SerializationException"}:
        return ProgrammingError(message)
    if code in {"InternalServerError", "InternalFailure"}:
        return InternalError(message)
    # Throttling, ProvisionedThroughputExceeded, RequestLimitExceeded, TransactionConflict,
    # TransactionInProgress, AccessDenied, UnrecognizedClient, ServiceUnavailable...
    return OperationalError(message)


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise _translate(error) from error


def _is_transaction_conflict(error: ClientError) -> bool:
    """Another transaction on the same item(s) was in flight: worth retrying."""
    code = _error_code(error)
    if code == "TransactionConflictException":  # a plain write met a transaction
        return True
    if code == "ReplicatedWriteConflictException":  # MRSC: another Region writes the item
        return True
    if code != "TransactionCanceledException":
        return False
    reasons = {r.get("Code") for r in error.response.get("CancellationReasons", [])}  # type: ignore[attr-defined]
    return "TransactionConflict" in reasons and "ConditionalCheckFailed" not in reasons


def _conditional_write(send: Callable[[], object], written: Mapping[str, Any]) -> None:
    """Send a conditional write, translating errors. Retries (with jittered backoff) when only
    a concurrent transaction got in the way; treats a botocore retry that met our own earlier
    success as success."""
    for attempt in range(1, _TRANSACTION_CONFLICT_ATTEMPTS + 1):
        try:
            send()
        except ClientError as error:
            if _retried_onto_own_write(error, written):
                return
            if _is_transaction_conflict(error) and attempt < _TRANSACTION_CONFLICT_ATTEMPTS:
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
                continue
            raise _translate(error) from error
        except BotoCoreError as error:
            raise _translate(error) from error
        return


def _retried_onto_own_write(error: ClientError, item: Mapping[str, Any]) -> bool:
    """True if a conditional write failed only because botocore's retry met our own earlier,
    successful attempt (its response was lost): the request was retried and the existing item,
    returned by ReturnValuesOnConditionCheckFailure=ALL_OLD, is exactly what we wrote."""
    if _error_code(error) != "ConditionalCheckFailedException":
        return False
    retries = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
    existing: Any = error.response.get("Item")  # type: ignore[typeddict-item]
    return (
        bool(retries) and isinstance(existing, Mapping) and _normalise(existing) == _normalise(item)
    )


def _normalise(item: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    out: dict[str, tuple[str, Any]] = {}
    for name, value in item.items():
        (kind, raw), *_ = value.items()
        if kind == "N":
            raw = Decimal(str(raw))
        elif kind == "B":
            raw = bytes(raw)
        out[name] = (kind, raw)
    return out


# --------------------------------------------------------------------------- tables


def _low_level_client(client_or_resource: Any) -> DynamoDBClient:
    """Accept a boto3 DynamoDB client or a boto3 DynamoDB service resource."""
    client = getattr(getattr(client_or_resource, "meta", None), "client", None)
    return client if client is not None else client_or_resource  # type: ignore[no-any-return]


def _ensure_table(
    client_or_resource: Any,
    table_name: str,
    key_schema: list[dict[str, str]],
    attribute_definitions: list[dict[str, str]],
    stream_view_type: str | None,
    indexes: list[dict[str, Any]] | None = None,
) -> bool:
    client = _low_level_client(client_or_resource)
    created = False
    with _translated_errors():
        try:
            table = client.describe_table(TableName=table_name)["Table"]
        except ClientError as error:
            if _error_code(error) != "ResourceNotFoundException":
                raise
            kwargs: dict[str, Any] = {
                "TableName": table_name,
                "KeySchema": key_schema,
                "AttributeDefinitions": attribute_definitions,
                "BillingMode": "PAY_PER_REQUEST",
            }
            if indexes:
                kwargs["GlobalSecondaryIndexes"] = indexes
            if stream_view_type is not None:
                kwargs["StreamSpecification"] = {
                    "StreamEnabled": True,
                    "StreamViewType": stream_view_type,
                }
            try:
                table = client.create_table(**kwargs)["TableDescription"]
                created = True
            except ClientError as create_error:
                if _error_code(create_error) != "ResourceInUseException":
                    raise
                # Another process created it meanwhile: fine.
                table = client.describe_table(TableName=table_name)["Table"]
        if table.get("TableStatus") != "ACTIVE":
            client.get_waiter("table_exists").wait(
                TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
            )
    existing_keys = {(k["AttributeName"], k["KeyType"]) for k in table.get("KeySchema", [])}
    wanted_keys = {(k["AttributeName"], k["KeyType"]) for k in key_schema}
    if existing_keys and existing_keys != wanted_keys:
        msg = (
            f"DynamoDB table {table_name!r} exists with key schema {sorted(existing_keys)}, "
            f"expected {sorted(wanted_keys)}"
        )
        raise ProgrammingError(msg)
    return created


CUSTOMER_TIME_INDEX = "by-customer-time"
"""GSI of the events table: partition ``customer_id`` (S), sort ``at_key`` (S: event time, stream,
version), projection ALL. Sparse: only chained events whose state names a customer."""


def create_events_table(
    client_or_resource: Any,
    table_name: str,
    *,
    stream_view_type: str | None = "NEW_IMAGE",
    customer_index: bool = True,
) -> bool:
    """Create the events table if missing; wait until it is ACTIVE. Returns True if created.

    ``client_or_resource`` is a boto3 DynamoDB client or service resource. Key schema:
    ``stream_id`` (S, partition) + ``version`` (N, sort); PAY_PER_REQUEST; DynamoDB Streams
    with ``stream_view_type`` (None: no stream, e.g. for snapshots); with ``customer_index``
    the GSI :data:`CUSTOMER_TIME_INDEX`. An existing table is left as it is (its stream
    settings and indexes are not changed) but must have the same key schema.
    """
    attributes = [
        {"AttributeName": "stream_id", "AttributeType": "S"},
        {"AttributeName": "version", "AttributeType": "N"},
    ]
    indexes: list[dict[str, Any]] = []
    if customer_index:
        attributes += [
            {"AttributeName": "customer_id", "AttributeType": "S"},
            {"AttributeName": "at_key", "AttributeType": "S"},
        ]
        indexes.append(
            {
                "IndexName": CUSTOMER_TIME_INDEX,
                "KeySchema": [
                    {"AttributeName": "customer_id", "KeyType": "HASH"},
                    {"AttributeName": "at_key", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        )
    return _ensure_table(
        client_or_resource,
        table_name,
        key_schema=[
            {"AttributeName": "stream_id", "KeyType": "HASH"},
            {"AttributeName": "version", "KeyType": "RANGE"},
        ],
        attribute_definitions=attributes,
        stream_view_type=stream_view_type,
        indexes=indexes,
    )


def create_tracking_table(client_or_resource: Any, table_name: str) -> bool:
    """Create the tracking table (``application_name`` S partition key) if missing."""
    return _ensure_table(
        client_or_resource,
        table_name,
        key_schema=[{"AttributeName": "application_name", "KeyType": "HASH"}],
        attribute_definitions=[{"AttributeName": "application_name", "AttributeType": "S"}],
        stream_view_type=None,
    )


# --------------------------------------------------------------------------- items


def _item_from_stored_event(
    stored_event: StoredEvent, chain: ChainLink | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "stream_id": {"S": str(stored_event.originator_id)},
        "version": {"N": str(int(stored_event.originator_version))},
        "topic": {"S": stored_event.topic},
        "state": {"B": bytes(stored_event.state)},
    }
    origin = origin_region()
    if origin:  # the region whose service appended it (active-active, multi-region-runtime.md)
        item["origin_region"] = {"S": origin}
    if chain is not None:
        item["at"] = {"S": chain.at}
        item["state_sha256"] = {"S": chain.state_sha256}
        item["prev_hash"] = {"S": chain.prev_hash}
        item["hash"] = {"S": chain.hash}
        customer = chain.customer_id
        if customer and chain.at:  # the customer-and-time index (sparse: GSI by-customer-time)
            item["customer_id"] = {"S": customer}
            item["at_key"] = {
                "S": at_key(
                    chain.at, str(stored_event.originator_id), int(stored_event.originator_version)
                )
            }
    return item


_FOLLOWER_ATTRIBUTES = ("version", "topic", "state", "at", "state_sha256", "prev_hash", "hash")
"""What a follower event of an append item (``more``) holds; the rest is the leader's."""


def _append_item(
    stored_events: Sequence[StoredEvent], links: Mapping[tuple[str, int], ChainLink]
) -> dict[str, Any]:
    """The one item of an append: the first event's attributes at the top level (an append of
    one event is exactly the per-event item), the later ones in ``more``, ``last_version``."""
    leader, *followers = stored_events
    item = _item_from_stored_event(
        leader, links.get((str(leader.originator_id), int(leader.originator_version)))
    )
    if followers:
        more = []
        for stored in followers:
            full = _item_from_stored_event(
                stored, links.get((str(stored.originator_id), int(stored.originator_version)))
            )
            more.append({"M": {k: full[k] for k in _FOLLOWER_ATTRIBUTES if k in full}})
        item["more"] = {"L": more}
        item["last_version"] = {"N": str(int(followers[-1].originator_version))}
    return item


def expand_item(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An events-table item as the per-event items it holds, in version order: itself for a
    one-event append; for a longer one the leader (without ``more``/``last_version``) and each
    follower completed with the leader's stream, origin, customer and ``at_key``: an append has
    one entry in the ``by-customer-time`` index, at its first event's time, and a cursor on that
    index lands between appends, never inside one. Accepts the low-level typed format and the
    deserialised (boto3 resource) one."""
    if "more" not in item:
        return [dict(item)]
    typed = isinstance(item.get("stream_id"), Mapping)
    leader = {k: v for k, v in item.items() if k not in ("more", "last_version")}
    out = [leader]
    raw_more = item["more"]
    followers: Sequence[Any] = raw_more["L"] if typed else raw_more
    shared = {k: leader[k] for k in ("stream_id", "origin_region", "customer_id") if k in leader}
    for raw in followers:
        fields = raw["M"] if typed else raw
        event = {**shared, **fields}
        if "at_key" in leader:
            event["at_key"] = leader["at_key"]  # the append's one index entry
        out.append(event)
    return out


def origin_region() -> str | None:
    """FERRY_REGION, else the process's AWS region (one region: that region), else None."""
    return (
        os.environ.get("FERRY_REGION")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or None
    )


def at_key(at: str, stream_id: str, version: int) -> str:
    """The sort key of the customer-and-time index: time, then stream and version (unique, so
    the order of a page is stable)."""
    return f"{at}#{stream_id}#{version:012d}"


def _plain(value: Any, type_code: str) -> Any:
    """Unwrap a typed attribute value ({"S": ...}) or pass a deserialised one through."""
    if isinstance(value, Mapping):
        if len(value) == 1 and type_code in value:
            return value[type_code]
        msg = f"expected a DynamoDB {type_code!r} attribute value, got {dict(value)!r}"
        raise ValueError(msg)
    return value


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    inner = getattr(value, "value", None)  # boto3.dynamodb.types.Binary
    if isinstance(inner, (bytes, bytearray)):
        return bytes(inner)
    if isinstance(value, str):  # Lambda event source records: base64 text
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as error:
            msg = f"'state' is not valid base64: {error}"
            raise ValueError(msg) from None
    msg = f"'state' must be binary (bytes, Binary or base64 str), got {type(value).__name__}"
    raise ValueError(msg)


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        msg = "'version' must be a number"
        raise ValueError(msg)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        msg = f"'version' is not a number: {value!r}"
        raise ValueError(msg) from None
    if number != number.to_integral_value():
        msg = f"'version' is not an integer: {value!r}"
        raise ValueError(msg)
    return int(number)


def _originator_id_from_stream_id(stream_id: str) -> UUID | str:
    try:
        parsed = uuid.UUID(stream_id)
    except ValueError:
        return stream_id
    return parsed if str(parsed) == stream_id else stream_id


def stored_event_from_item(item: Mapping[str, Any]) -> StoredEvent:
    """Decode an events-table item (e.g. a DynamoDB Streams ``NewImage``) into a StoredEvent.

    Accepts the low-level typed format (``{"stream_id": {"S": ...}, "version": {"N": "3"},
    "state": {"B": b"..." or base64 str}, ...}``) and the boto3 resource format (``str``,
    ``Decimal``/``int``, ``Binary``/``bytes``). ``originator_id`` is a ``UUID`` if
    ``stream_id`` is a canonical UUID string, else the string. Raises ``ValueError`` for an
    item that is not in the documented format.
    """
    try:
        stream_id = _plain(item["stream_id"], "S")
        version = _plain(item["version"], "N")
        topic = _plain(item["topic"], "S")
        state = _plain(item["state"], "B")
    except KeyError as error:
        msg = f"not an events-table item: missing attribute {error.args[0]!r}"
        raise ValueError(msg) from None
    if not isinstance(stream_id, str) or not isinstance(topic, str):
        msg = "'stream_id' and 'topic' must be strings"
        raise ValueError(msg)
    return StoredEvent(
        originator_id=_originator_id_from_stream_id(stream_id),
        originator_version=_as_int(version),
        topic=topic,
        state=_as_bytes(state),
    )


def stored_events_from_item(item: Mapping[str, Any]) -> list[StoredEvent]:
    """Every event an events-table item holds (one per event of its append), in version order;
    the formats and errors of :func:`stored_event_from_item`."""
    return [stored_event_from_item(event) for event in expand_item(item)]


# --------------------------------------------------------------------------- recorders


class _HashCache:
    """Stored hashes by (table, stream, version), bounded LRU, per process. Never stale: a
    stored (stream, version) is never rewritten (an edit behind the store's back is exactly
    what the chain then exposes)."""

    def __init__(self, maxsize: int = 100_000) -> None:
        self._data: OrderedDict[tuple[str, str, int], str] = OrderedDict()
        self._lock = threading.Lock()
        self.maxsize = maxsize

    def get(self, table: str, stream_id: str, version: int) -> str | None:
        with self._lock:
            key = (table, stream_id, version)
            found = self._data.get(key)
            if found is not None:
                self._data.move_to_end(key)
            return found

    def put(self, table: str, stream_id: str, version: int, value: str) -> None:
        with self._lock:
            self._data[(table, stream_id, version)] = value
            self._data.move_to_end((table, stream_id, version))
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_HEADS = _HashCache()


def plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A low-level events-table item as plain values (str, int, bytes)."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        (kind, raw), *_ = value.items()
        if kind == "N":
            out[name] = int(Decimal(str(raw)))
        elif kind == "B":
            out[name] = bytes(raw)
        else:
            out[name] = raw
    return out


class DynamoDBAggregateRecorder(AggregateRecorder):
    """Stores aggregate events (or snapshots) in one DynamoDB table; see the module docstring."""

    def __init__(self, client: DynamoDBClient, table_name: str, *, chained: bool = True) -> None:
        self.client = client
        self.table_name = table_name
        self.chained = chained
        """Write the hash chain (``events.chain``); False only for snapshots (derived data) and
        for the benchmark's unhashed baseline."""

    def create_table(self, *, stream_view_type: str | None = "NEW_IMAGE") -> bool:
        return create_events_table(
            self.client,
            self.table_name,
            stream_view_type=stream_view_type,
            customer_index=self.chained,
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append atomically; IntegrityError if any (stream, version) exists or repeats.

        One item (see the module docstring): events of one stream, consecutive versions, at
        most MAX_EVENTS_PER_APPEND (100); anything else raises ProgrammingError rather than
        being split into several non-atomic writes. Returns None: there are no notification
        ids (see "no notification log" in the module docstring).
        """
        if kwargs.get("tracking") is not None:
            msg = (
                "DynamoDBAggregateRecorder cannot record tracking atomically with events "
                "(no process recorder). " + NO_NOTIFICATION_LOG
            )
            raise ProgrammingError(msg)
        if not stored_events:
            return None
        if len(stored_events) > MAX_EVENTS_PER_APPEND:
            msg = (
                f"Cannot append {len(stored_events)} events atomically: one append is one "
                f"item of at most {MAX_EVENTS_PER_APPEND} events, and splitting it would break "
                "its atomicity. Emit fewer events per command."
            )
            raise ProgrammingError(msg)
        streams = {str(e.originator_id) for e in stored_events}
        if len(streams) > 1:
            msg = (
                "Cannot append to several streams at once: an append is one item of one stream "
                "(multi-Region strongly consistent tables have no transactions). Save each "
                f"aggregate on its own, in an order that survives a crash between: {sorted(streams)}"
            )
            raise ProgrammingError(msg)
        ordered = sorted(stored_events, key=lambda e: int(e.originator_version))
        versions = [int(e.originator_version) for e in ordered]
        if len(set(versions)) < len(versions):
            msg = f"Stored events repeat a (stream, version) within one append: {stored_events}"
            raise IntegrityError(msg)
        if versions != list(range(versions[0], versions[0] + len(versions))):
            msg = f"An append's versions must be consecutive, got {versions}"
            raise ProgrammingError(msg)
        links = self._links(ordered) if self.chained else {}
        self._put(_append_item(ordered, links))
        for (stream_id, version), chain in links.items():
            _HEADS.put(self.table_name, stream_id, version, chain.hash)
        return None

    def _links(self, stored_events: Sequence[StoredEvent]) -> dict[tuple[str, int], ChainLink]:
        """The chain attributes of each new event, computed before the (conditional) write: a
        racing writer at the same version computes its own and loses the condition."""
        links: dict[tuple[str, int], ChainLink] = {}
        by_stream: dict[str, list[StoredEvent]] = {}
        for stored in stored_events:
            by_stream.setdefault(str(stored.originator_id), []).append(stored)
        for stream_id, events in by_stream.items():
            events.sort(key=lambda e: e.originator_version)
            prev = self._prev_hash(stream_id, int(events[0].originator_version))
            for stored in events:
                version = int(stored.originator_version)
                chain = link(stream_id, version, stored.topic, bytes(stored.state), prev)
                links[(stream_id, version)] = chain
                prev = chain.hash
        return links

    def _prev_hash(self, stream_id: str, version: int) -> str:
        """The hash of the stream's event just below ``version``: from the process's cache of
        stored hashes (filled by every read and write; a stored (stream, version) never
        changes), else one consistent Query (desc, limit 1); the genesis marker for version 1
        (and below) or if there is nothing below. Below an event stored before the chain existed, the legacy prefix is chained
        from the genesis marker exactly as a verifier does (``events.chain.verify_stream``)."""
        if version <= 1:
            return genesis(stream_id)  # a new aggregate (eventsourcing's first version is 1)
        cached = _HEADS.get(self.table_name, stream_id, version - 1)
        if cached is not None:
            return cached
        with _translated_errors():
            page = self.client.query(
                TableName=self.table_name,
                KeyConditionExpression="#s = :s AND #v < :v",
                ExpressionAttributeNames={"#s": "stream_id", "#v": "version"},
                ExpressionAttributeValues={":s": {"S": stream_id}, ":v": {"N": str(version)}},
                ScanIndexForward=False,
                Limit=1,
                ConsistentRead=True,
            )
        found = page.get("Items", [])
        if not found:
            return genesis(stream_id)
        below = expand_item(found[0])[-1]  # the item's last event is the one just below
        if "hash" in below:
            return str(below["hash"]["S"])
        legacy = [
            plain_item(i) for i in self._query_stream(stream_id, lte=int(below["version"]["N"]))
        ]
        report = verify_stream(stream_id, legacy)
        assert report.head_hash is not None
        return report.head_hash

    def _query_stream(self, stream_id: str, *, lte: int | None = None) -> Iterator[dict[str, Any]]:
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "stream_id"},
            "ExpressionAttributeValues": {":s": {"S": stream_id}},
            "ConsistentRead": True,
        }
        if lte is not None:
            query["KeyConditionExpression"] += " AND #v <= :hi"
            query["ExpressionAttributeNames"]["#v"] = "version"
            query["ExpressionAttributeValues"][":hi"] = {"N": str(lte)}
        with _translated_errors():
            while True:
                page = self.client.query(**query)
                for item in page.get("Items", []):
                    for event in expand_item(item):
                        if lte is None or int(event["version"]["N"]) <= lte:
                            yield event
                last_key = page.get("LastEvaluatedKey")
                if not last_key:
                    return
                query["ExclusiveStartKey"] = last_key

    def stream_items(self, stream_id: str) -> list[dict[str, Any]]:
        """Every stored item of a stream, in version order, as plain values (for verification)."""
        return [plain_item(i) for i in self._query_stream(stream_id)]

    def seal(self, stream_id: str, unsealed: Sequence[Mapping[str, Any]], sealed_at: str) -> int:
        """Write the computed chain attributes onto events stored before the chain existed
        (``verify_stream``'s ``unsealed``); conditional on the item still having no hash.
        Returns how many were sealed. MODIFY records: the publisher ignores them."""
        sealed = 0
        for entry in unsealed:
            values: dict[str, Any] = {
                ":at": {"S": entry["at"]},
                ":d": {"S": entry["state_sha256"]},
                ":p": {"S": entry["prev_hash"]},
                ":h": {"S": entry["hash"]},
                ":t": {"S": sealed_at},
            }
            try:
                with _translated_errors():
                    self.client.update_item(
                        TableName=self.table_name,
                        Key={
                            "stream_id": {"S": stream_id},
                            "version": {"N": str(entry["version"])},
                        },
                        UpdateExpression=(
                            "SET #at = :at, state_sha256 = :d, prev_hash = :p, #h = :h, "
                            "sealed_at = :t"
                        ),
                        ConditionExpression="attribute_exists(stream_id) AND attribute_not_exists(#h)",
                        ExpressionAttributeNames={"#at": "at", "#h": "hash"},
                        ExpressionAttributeValues=values,
                    )
            except IntegrityError:
                continue  # sealed meanwhile by another pass
            sealed += 1
        return sealed

    def _put(self, item: dict[str, Any]) -> None:
        _conditional_write(
            lambda: self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(stream_id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            ),
            written=item,
        )

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """Events of one stream in (gt, lte], ascending (or ``desc``), at most ``limit``.

        Items are keyed by their append's first version, so the key range starts up to
        MAX_EVENTS_PER_APPEND - 1 below ``gt + 1`` (the item holding ``gt + 1`` may start
        there); the events outside (gt, lte] are dropped after expanding the items."""
        if limit is not None and limit <= 0:
            return []
        if gt is not None and lte is not None and gt + 1 > lte:
            return []
        low = None if gt is None else max(gt + 1 - (MAX_EVENTS_PER_APPEND - 1), 0)
        names = {"#s": "stream_id"}
        values: dict[str, Any] = {":s": {"S": str(originator_id)}}
        condition = "#s = :s"
        if low is not None and lte is not None:
            condition += " AND #v BETWEEN :lo AND :hi"
            values[":lo"] = {"N": str(low)}
            values[":hi"] = {"N": str(lte)}
        elif low is not None:
            condition += " AND #v >= :lo"
            values[":lo"] = {"N": str(low)}
        elif lte is not None:
            condition += " AND #v <= :hi"
            values[":hi"] = {"N": str(lte)}
        if len(values) > 1:
            names["#v"] = "version"  # DynamoDB rejects unused attribute names
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not desc,
            "ConsistentRead": True,
        }
        # Items below gt + 1 (at most MAX - 1 of them) may be read and dropped: a page limit
        # leaves room for them, so that a limit never costs a round trip per dropped item.
        slack = 0 if gt is None else MAX_EVENTS_PER_APPEND - 1
        results: list[StoredEvent] = []
        with _translated_errors():
            while True:
                if limit is not None:
                    query["Limit"] = limit - len(results) + slack
                page = self.client.query(**query)
                for item in page.get("Items", []):
                    events = expand_item(item)
                    for event in reversed(events) if desc else events:
                        version = int(event["version"]["N"])
                        if "hash" in event:
                            _HEADS.put(
                                self.table_name, str(originator_id), version, event["hash"]["S"]
                            )
                        if (gt is not None and version <= gt) or (
                            lte is not None and version > lte
                        ):
                            continue
                        results.append(
                            StoredEvent(
                                originator_id=originator_id,
                                originator_version=version,
                                topic=event["topic"]["S"],
                                state=bytes(event["state"]["B"]),
                            )
                        )
                last_key = page.get("LastEvaluatedKey")
                if not last_key or (limit is not None and len(results) >= limit):
                    break
                query["ExclusiveStartKey"] = last_key
        return results if limit is None else results[:limit]


class DynamoDBTrackingRecorder(TrackingRecorder):
    """Highest processed notification id per upstream application, one item per name."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    def create_table(self) -> bool:
        return create_tracking_table(self.client, self.table_name)

    def insert_tracking(self, tracking: Tracking) -> None:
        """Record a position; IntegrityError unless it is above the recorded one."""
        key = {"application_name": {"S": tracking.application_name}}
        notification_id = {"N": str(int(tracking.notification_id))}
        _conditional_write(
            lambda: self.client.update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression="SET #n = :n",
                ConditionExpression="attribute_not_exists(#n) OR #n < :n",
                ExpressionAttributeNames={"#n": "notification_id"},
                ExpressionAttributeValues={":n": notification_id},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            ),
            written={**key, "notification_id": notification_id},
        )

    def max_tracking_id(self, application_name: str) -> int | None:
        with _translated_errors():
            response = self.client.get_item(
                TableName=self.table_name,
                Key={"application_name": {"S": application_name}},
                ConsistentRead=True,
                ProjectionExpression="#n",
                ExpressionAttributeNames={"#n": "notification_id"},
            )
        value = response.get("Item", {}).get("notification_id")
        return None if value is None else int(value["N"])


# --------------------------------------------------------------------------- factory


_CLIENTS: dict[tuple[str | None, ...], DynamoDBClient] = {}
_CLIENTS_LOCK = threading.Lock()


def _shared_client(region: str | None) -> DynamoDBClient:
    """One client per process and configuration: building a boto3 session parses botocore's
    endpoint data (~0.9 s), too slow for every Application construction. Clients are
    thread-safe; the key includes what boto3 reads from the environment."""
    key = (
        region,
        os.environ.get("AWS_ENDPOINT_URL"),
        os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"),
        os.environ.get("AWS_ACCESS_KEY_ID"),
        os.environ.get("AWS_DEFAULT_REGION"),
    )
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            session = boto3.session.Session(region_name=region)
            config = Config(
                retries={"mode": "standard", "max_attempts": 5},
                connect_timeout=5,
                read_timeout=20,
                max_pool_connections=32,
            )
            try:
                client = session.client("dynamodb", config=config)
            except BotoCoreError as error:
                raise _translate(error) from error
            _CLIENTS[key] = client
        return client


class DynamoDBFactory(InfrastructureFactory[DynamoDBTrackingRecorder]):
    """Infrastructure factory for ``PERSISTENCE_MODULE=events.dynamodb``.

    Provides aggregate and tracking recorders; application and process recorders raise
    ProgrammingError by design (see the module docstring). One boto3 client per factory,
    created on first use and closed by ``close()``.
    """

    FERRY_EVENTS_TABLE = "FERRY_EVENTS_TABLE"
    FERRY_TRACKING_TABLE = "FERRY_TRACKING_TABLE"
    AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"
    CREATE_TABLE = "CREATE_TABLE"
    DEFAULT_EVENTS_TABLE = "ferry-events"
    DEFAULT_TRACKING_TABLE = "ferry-tracking"

    aggregate_recorder_class: type[DynamoDBAggregateRecorder] = DynamoDBAggregateRecorder
    tracking_recorder_class: type[DynamoDBTrackingRecorder] = DynamoDBTrackingRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self._client: DynamoDBClient | None = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> DynamoDBClient:
        with self._client_lock:
            if self._client is None:
                self._client = _shared_client(self.env.get(self.AWS_DEFAULT_REGION))
            return self._client

    def env_create_table(self) -> bool:
        return strtobool(self.env.get(self.CREATE_TABLE) or "yes")

    def events_table_name(self) -> str:
        return self.env.get(self.FERRY_EVENTS_TABLE) or self.DEFAULT_EVENTS_TABLE

    def table_name(self, purpose: str = "events") -> str:
        """``FERRY_EVENTS_TABLE`` for events, else ``FERRY_<PURPOSE>_TABLE`` defaulting to
        ``<events table>-<purpose>`` (e.g. ``ferry-events-snapshots``)."""
        if purpose == "events":
            return self.events_table_name()
        key = f"FERRY_{purpose.upper()}_TABLE"
        return self.env.get(key) or f"{self.events_table_name()}-{purpose}"

    def tracking_table_name(self) -> str:
        return self.env.get(self.FERRY_TRACKING_TABLE) or self.DEFAULT_TRACKING_TABLE

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        recorder = type(self).aggregate_recorder_class(
            self.client, self.table_name(purpose), chained=purpose == "events"
        )
        if self.env_create_table():
            # Only the events table feeds the stream publisher.
            recorder.create_table(stream_view_type="NEW_IMAGE" if purpose == "events" else None)
        return recorder

    def application_recorder(self) -> ApplicationRecorder:
        raise ProgrammingError(NO_NOTIFICATION_LOG)

    def process_recorder(self) -> ProcessRecorder:
        raise ProgrammingError(NO_NOTIFICATION_LOG)

    def tracking_recorder(
        self, tracking_recorder_class: type[DynamoDBTrackingRecorder] | None = None
    ) -> DynamoDBTrackingRecorder:
        if tracking_recorder_class is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            tracking_recorder_class = (
                resolve_topic(topic) if topic else type(self).tracking_recorder_class
            )
        if not (
            isinstance(tracking_recorder_class, type)
            and issubclass(tracking_recorder_class, DynamoDBTrackingRecorder)
        ):
            msg = f"{tracking_recorder_class!r} is not a DynamoDBTrackingRecorder subclass"
            raise ProgrammingError(msg)
        recorder = tracking_recorder_class(self.client, self.tracking_table_name())
        if self.env_create_table():
            recorder.create_table()
        return recorder

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None
