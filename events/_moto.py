"""A moto server that applies DynamoDB requests one at a time (tests, benchmarks, local stack).

Why not plain ``moto_server`` or ``moto.server.ThreadedMotoServer``: both serve each request on
its own thread, and moto's DynamoDB backend has no locking. Measured with moto 5.2.5 and 8 threads
racing to write the same key: concurrent ``TransactWriteItems`` calls both passed their condition
check ("two winners"), and some failed with HTTP 500 ("dictionary changed size during iteration"
while moto deep-copies the table for rollback). Real DynamoDB serialises writes to an item, so
optimistic-concurrency tests need a server that does too.

This server still accepts connections on many threads (HTTP/1.1 keep-alive), but requests whose
``X-Amz-Target`` names DynamoDB or DynamoDB Streams run under one lock and their (small) response
bodies are read inside it. Other services (S3 streaming GETs, SQS, EventBridge...) are untouched.

Use in-process::

    with SerialMotoServer() as server:
        print(server.url)

or as a separate process (prints ``MOTO_URL=http://127.0.0.1:PORT`` once it accepts requests)::

    python -m events._moto --port 0
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from decimal import Decimal
from types import FrameType, TracebackType
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from events._moto_calls import CallCounter

__all__ = ["SerialMotoServer"]

_SERIALISED_TARGET_PREFIXES = ("DynamoDB_", "DynamoDBStreams_")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _scalar(value: Any) -> tuple[str, Any]:
    """A key attribute's sort key: (type, value) — what moto's DynamoType comparisons decide by,
    derived once (key attributes are scalars: S, N or B)."""
    kind = value.type
    return (kind, Decimal(value.value) if kind == "N" else value.value)


def _sort_keys_once() -> None:
    """moto sorts every item of a table on each Query through an index, comparing DynamoType
    objects (each comparison re-derives both values), twice (``all_items`` and the index order),
    and compares each item's hash key the same way: with 10,000 jobs in a read model a
    ``Limit 50`` query took seconds. Same order and answers, one key per item; S and B values
    compared as they are (``tests/integration/test_moto_sorting.py``)."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    if getattr(Table.sorted_items, "_ferry_keyed", False):
        return
    plain_eq, plain_ne, plain_hash = DynamoType.__eq__, DynamoType.__ne__, DynamoType.__hash__

    def eq(self: Any, other: Any) -> bool:
        if self.type == other.type and self.type in ("S", "B"):
            return bool(self.value == other.value)
        return bool(plain_eq(self, other))

    def ne(self: Any, other: Any) -> bool:
        if self.type == other.type and self.type in ("S", "B"):
            return bool(self.value != other.value)
        return bool(plain_ne(self, other))

    def sorted_items(
        self: Any, hash_key_attrs: list[str], range_key_attrs: list[str | None], items: list[Any]
    ) -> list[Any]:
        attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
        items.sort(key=lambda x: tuple(_scalar(x.attrs[k]) for k in attrs))
        return items

    def all_items(self: Any) -> list[Any]:
        items = [
            item
            for hash_set in self.items.values()
            for item in (hash_set.values() if self.range_key_attr else [hash_set])
        ]
        if getattr(self, "_ferry_querying", False):
            return items  # query() sorts what matches itself: no need to sort every item first

        def key(x: Any) -> Any:
            if x.range_key:
                return (_scalar(x.hash_key), _scalar(x.range_key))
            return (_scalar(x.hash_key),)

        return sorted(items, key=key)

    plain_query = Table.query

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._ferry_querying = True  # DynamoDB requests are applied one at a time (see above)
        try:
            return plain_query(self, *args, **kwargs)
        finally:
            self._ferry_querying = False

    sorted_items._ferry_keyed = True  # type: ignore[attr-defined]
    Table.query = query  # type: ignore[method-assign]
    DynamoType.__eq__ = eq  # type: ignore[method-assign,assignment]
    DynamoType.__ne__ = ne  # type: ignore[method-assign,assignment]
    DynamoType.__hash__ = plain_hash  # type: ignore[method-assign]
    Table.sorted_items = sorted_items  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]


def _attribute_value(serializer: Any, value: dict[str, Any]) -> dict[str, Any]:
    """One AttributeValue as moto's JSON serializer writes it (B and BS base64, S/N/SS/NS as
    strings, M and L recursively, NULL and BOOL as they are; None members dropped)."""
    out: dict[str, Any] = {}
    for kind, member in value.items():
        if member is None:
            continue
        if kind in ("S", "N"):
            out[kind] = str(member)
        elif kind == "B":
            out[kind] = serializer._base64(member)
        elif kind in ("SS", "NS"):
            out[kind] = [str(v) for v in member]
        elif kind == "BS":
            out[kind] = [serializer._base64(v) for v in member]
        elif kind == "M":
            out[kind] = {k: _attribute_value(serializer, v) for k, v in member.items()}
        elif kind == "L":
            out[kind] = [_attribute_value(serializer, v) for v in member]
        elif kind in ("NULL", "BOOL"):
            out[kind] = member
    return out


def _serialize_items_once() -> None:
    """moto 5.2's response serializer walks every attribute of every returned item through the
    botocore shape (alias lookups per member, per nesting level): 50 job items of ~40
    attributes cost ~2.5 M calls, about two thirds of a ``Limit 50`` Query. Maps of
    AttributeValue (Item, Items, Key, LastEvaluatedKey, Attributes, Responses) are written here
    in one pass with the same output (``tests/integration/test_moto_serializer.py`` compares
    both for every AttributeValue type)."""
    from moto.core.serialize import BaseJSONSerializer

    if getattr(BaseJSONSerializer._serialize_type_map, "_ferry_fast", False):
        return
    plain_map = BaseJSONSerializer._serialize_type_map

    def serialize_map(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if getattr(shape.value, "name", None) != "AttributeValue":
            plain_map(self, serialized, value, shape, key)
            return
        serialized[self.get_serialized_name(shape, key)] = {
            k: _attribute_value(self, v) for k, v in value.items()
        }

    serialize_map._ferry_fast = True  # type: ignore[attr-defined]
    serialize_map._ferry_plain = plain_map  # type: ignore[attr-defined]
    BaseJSONSerializer._serialize_type_map = serialize_map  # type: ignore[method-assign]


class _QuietRequestHandler(MotoRequestHandler):
    """Moto's handler without one log line per request (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


NO_TRANSACTIONS_MESSAGE = (
    "TransactWriteItems is not supported on a multi-Region strongly consistent (MRSC) table: {}"
)
"""What the emulation answers (ValidationException); AWS's own wording may differ."""


def _refused_transaction(
    environ: dict[str, Any], target: str, mrsc_tables: frozenset[str]
) -> str | None:
    """The MRSC table a TransactWriteItems/TransactGetItems request touches, if any. Reads the
    body and puts it back for moto."""
    if not mrsc_tables or not target.endswith(("TransactWriteItems", "TransactGetItems")):
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return None
    for entry in request.get("TransactItems", []):
        for action in entry.values():
            table = action.get("TableName") if isinstance(action, dict) else None
            if table in mrsc_tables:
                return str(table)
    return None


def _serialise_dynamodb(app: WSGIApp, mrsc_tables: frozenset[str] = frozenset()) -> WSGIApp:
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(_SERIALISED_TARGET_PREFIXES):
            return app(environ, start_response)
        refused = _refused_transaction(environ, target, mrsc_tables)
        if refused is not None:
            error = {
                "__type": "com.amazon.coral.validate#ValidationException",
                "message": NO_TRANSACTIONS_MESSAGE.format(refused),
            }
            payload = json.dumps(error).encode()
            start_response(
                "400 Bad Request",
                [
                    ("Content-Type", "application/x-amz-json-1.0"),
                    ("Content-Length", str(len(payload))),
                ],
            )
            return [payload]
        with lock:
            result = app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]

    return wrapped


class SerialMotoServer:
    """moto server on a background thread; DynamoDB requests are applied one at a time.

    ``port=0`` picks a free port; ``url`` is known after ``start()``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        quiet: bool = True,
        count_calls: bool = False,
        mrsc_tables: Iterable[str] = (),
    ) -> None:
        """``mrsc_tables``: tables that stand for MRSC global tables: transactions on them are
        refused with a ValidationException, as DynamoDB refuses them there."""
        self._host = host
        self.mrsc_tables = frozenset(mrsc_tables)
        self._port = port
        self._quiet = quiet
        # Count every call by caller/service/operation (events/_moto_calls.py).
        self.calls = CallCounter() if count_calls else None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            msg = "moto server is not started"
            raise RuntimeError(msg)
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        if self._server is not None:
            return self.url
        _sort_keys_once()
        _serialize_items_once()
        app = _serialise_dynamodb(DomainDispatcherApplication(create_backend_app), self.mrsc_tables)
        if self.calls is not None:
            app = self.calls.wrap(app)
        handler = _QuietRequestHandler if self._quiet else MotoRequestHandler
        # make_server binds before returning, so the port accepts connections from here on.
        self._server = make_server(
            self._host, self._port, app, threaded=True, request_handler=handler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-server", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> SerialMotoServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    count_calls = os.environ.get("FERRY_MOTO_COUNT_CALLS", "") not in ("", "0", "false")
    server = SerialMotoServer(args.host, args.port, quiet=not args.verbose, count_calls=count_calls)
    stopped = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with server:
        print(f"MOTO_URL={server.url}", flush=True)
        stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
