"""Generate the published contract artefacts from ``events.contract``.

- ``events/schemas/<DetailType>.json``: one JSON Schema (draft 2020-12) per published event. Each
  schema describes the **EventBridge event** a consumer receives (the SQS message body of a rule
  target): ``source`` and ``detail-type`` are constants, ``detail`` is the contract model's own
  JSON Schema. The schema also carries ``x-ferry-source``, ``x-ferry-detail-type`` and
  ``x-ferry-schema-version`` for tools that want them without walking ``properties``.
- ``docs/events.md``: the event catalog for downstream teams (field tables and example details
  are generated here; the prose is in this module).

Output is deterministic (sorted keys, two-space indent, trailing newline), so
``python -m events.schema_gen --check`` exits 1 when a model changed and the checked-in files
were not regenerated (``tests/unit/test_contract_schemas.py`` runs the same check).

Why one module over 400 lines: the prose of docs/events.md lives here with the generator, so the
schemas and the catalog come from one place and cannot drift; the code itself is small
functions.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from events.contract import EVENT_TYPES, FerryEvent
from ferry.names import SOURCE_ENDPOINTS, SOURCE_EXECUTOR, SOURCE_JOBS, SOURCE_ROUTES

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID_BASE = "https://ferry.invalid/events/"
ROOT = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
DOCS_FILE = ROOT / "docs" / "events.md"

FAMILIES: tuple[tuple[str, str], ...] = (
    (SOURCE_ENDPOINTS, "Endpoints"),
    (SOURCE_JOBS, "Jobs"),
    (SOURCE_EXECUTOR, "Executor (transfers)"),
    (SOURCE_ROUTES, "Routes"),
)


# --------------------------------------------------------------------------- JSON Schemas


def event_schema(model: type[FerryEvent]) -> dict[str, Any]:
    """The JSON Schema of the EventBridge event carrying ``model`` as its detail."""
    detail = model.model_json_schema(ref_template="#/$defs/{model}")
    defs = detail.pop("$defs", {})
    detail_type = model.detail_type()
    schema: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "$id": f"{SCHEMA_ID_BASE}{detail_type}.json",
        "title": f"{detail_type} (EventBridge event)",
        "description": (
            f"A Ferry {detail_type} event as delivered by EventBridge (e.g. the body of an SQS "
            f"message from a rule target). 'detail' is the contract model "
            f"events.contract.{detail_type}."
        ),
        "type": "object",
        "properties": {
            "source": {"const": model.SOURCE, "type": "string"},
            "detail-type": {"const": detail_type, "type": "string"},
            "detail": detail,
            "id": {"type": "string", "description": "EventBridge's own id (not the event_id)."},
            "time": {"type": "string"},
            "account": {"type": "string"},
            "region": {"type": "string"},
            "resources": {"type": "array", "items": {"type": "string"}},
            "version": {"type": "string"},
            "replay-name": {
                "type": "string",
                "description": (
                    "Present only on events replayed from the archive (events re-published "
                    "from the event store by `ferry replay` carry detail.replayed = true)."
                ),
            },
        },
        "required": ["source", "detail-type", "detail"],
        "x-ferry-source": model.SOURCE,
        "x-ferry-detail-type": detail_type,
        "x-ferry-schema-version": model.SCHEMA_VERSION,
    }
    if defs:
        schema["$defs"] = defs
    return schema


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_files() -> dict[str, str]:
    """file name -> content, for every published event."""
    return {f"{dt}.json": _dump(event_schema(EVENT_TYPES[dt])) for dt in sorted(EVENT_TYPES)}


# --------------------------------------------------------------------------- examples

_EXAMPLE_TIME = datetime(2026, 11, 22, 15, 4, 5, 123000, tzinfo=UTC)
_JOB_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
_ENDPOINT_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
_ROUTE_ID = "3b241101-e2bb-4255-8caf-4136c566a962"
_TRANSFER_ID = "6a2f41a3-c54c-5fb2-8a0f-5e4c1c6f1c7d"
_SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

_NAMED: dict[str, Any] = {
    "event_id": "1b4e28ba-2fa1-51d2-883f-0016d3cca427",
    "customer_id": "acme",
    "job_id": _JOB_ID,
    "new_job_id": "16fd2706-8baf-433b-82eb-8c7fada847da",
    "endpoint_id": _ENDPOINT_ID,
    "route_id": _ROUTE_ID,
    "actor": "key-4f3c2a1b9d8e",
    "name": "acme-sftp-out",
    "max_concurrency": 4,
    "secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ferry/endpoints/acme/7c9e6679-AbCdEf",
    "sha256": _SHA,
    "request_hash": _SHA,
    "target_checksum": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=",
    "idempotency_key": "invoice-2026-11-22",
    "executor_id": "executor-ip-10-0-1-23-7",
    "owner_id": "executor-ip-10-0-1-23-7",
    "takeover_from": None,
    "region": "eu-west-1",
    "reason_code": "host_key_mismatch",
    "message": "the server's host key does not match the pinned key",
    "error_code": "connection_reset",
    "error_message": "connection reset by peer while writing chunk 3",
    "reason": "maintenance window",
    "outcome": "succeeded",
    "checks": ["connect", "host_key", "auth", "stat base_path"],
    "host_key_fingerprint": "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
    "size": 52428800,
    "bytes_total": 52428800,
    "bytes_committed": 25165824,
    "chunk_size": 8388608,
    "chunk_count": 7,
    "index": 2,
    "offset": 16777216,
    "length": 8388608,
    "part_number": 3,
    "etag": '"5d41402abc4b2a76b9719d911017c592"',
    "upload_id": "2~kjQmU0vNfNdX5gYy6mYwYg",
    "temp_path": None,
    "source_version": '"a3c4f0e2b1d9"',
    "duration_seconds": 4.2,
    "throughput_bytes_per_second": 12483047.6,
    "attempt": 1,
    "attempts": 1,
    "credentials_rotated": False,
    "changed": {"max_concurrency": 8},
    "definition": {"source": {"endpoint_id": _ENDPOINT_ID, "path": "outbox/*.csv"}},
    "moved_to": "archive/invoices-2026-11-22.csv",
    "transient": True,
    "path": "outbox/invoices-2026-11-22.csv",
    "file_version": "52428800:2026-11-22T15:00:00Z",
    "target_path": "in/invoices-2026-11-22.csv",
    "deadline": "2026-11-23T05:00:00Z",
    "window_start": "2026-11-20T05:00:00Z",
    "scheduled_for": "2026-11-22T15:00:00Z",
    "tz": "Europe/Berlin",
    "expected_files": 1,
    "delivered_files": 0,
    "late_by_minutes": 47,
    "late_by_seconds": 245.1,
    "missed_slots": 4,
    "max_duration_seconds": 1800,
    "running_seconds": 1843.7,
}
_CONFIG = {
    "type": "sftp",
    "host": "sftp.acme.example",
    "port": 22,
    "username": "ferry",
    "base_path": "/upload",
    "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    "auth_method": "private_key",
}
_SPEC = {
    "flow": "S3_TO_SFTP",
    "source": {"endpoint_id": "b1a7a8c2-54b0-4a44-9f35-0a6b2b1f5d10", "path": "out/invoices.csv"},
    "target": {"endpoint_id": _ENDPOINT_ID, "path": "in/invoices.csv"},
    "options": {
        "overwrite": False,
        "post_action": "move",
        "move_to": "archive/",
        "max_attempts": 5,
        "verify": "digest",
    },
}


_NULL_IN_EXAMPLES = frozenset({"redrive_of", "route_id", "takeover_from", "temp_path"})


def _stream_id(model: type[FerryEvent]) -> str:
    return {
        SOURCE_ENDPOINTS: _ENDPOINT_ID,
        SOURCE_JOBS: _JOB_ID,
        SOURCE_EXECUTOR: _TRANSFER_ID,
        SOURCE_ROUTES: _ROUTE_ID,
    }[model.SOURCE]


def _sample(name: str, annotation: Any) -> Any:
    if name in _NAMED:
        return _NAMED[name]
    if name == "config":
        return _CONFIG
    if name == "spec":
        return _SPEC
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _sample(name, typing.get_args(annotation)[0])
    if origin is list:
        (item,) = typing.get_args(annotation) or (str,)
        return [_sample(name.removesuffix("s"), item)]
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _sample(name, args[0]) if args else None
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return next(iter(annotation)).value
    if annotation is datetime or name.endswith("_at") or name in ("mtime", "modified"):
        return _EXAMPLE_TIME.isoformat()
    if annotation is bool:
        return False
    if annotation is int:
        return 1
    if annotation is float:
        return 1.0
    return "example"


def example_detail(model: type[FerryEvent]) -> dict[str, Any]:
    """A valid example ``detail`` for ``model`` (validated against the model)."""
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name in _NULL_IN_EXAMPLES and not field.is_required():
            values[name] = None
        else:
            values[name] = _sample(name, field.annotation)
    values["stream_id"] = _stream_id(model)
    values["correlation_id"] = (
        _JOB_ID if model.SOURCE in (SOURCE_JOBS, SOURCE_EXECUTOR) else _stream_id(model)
    )
    values["version"] = 3
    values["occurred_at"] = _EXAMPLE_TIME.isoformat()
    values["schema_version"] = model.SCHEMA_VERSION
    return model.model_validate(values).model_dump(mode="json")


# --------------------------------------------------------------------------- the catalog


def _type_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_name(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type_name(schema.get('items', {}))}"
    if schema.get("format") == "date-time":
        return "datetime (ISO 8601)"
    if kind == "object":
        return "object"
    return str(kind)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_MEANINGS: dict[str, str] = {
    "customer_id": "The customer (tenant) the stream belongs to: filter your rules on it.",
    "endpoint_id": "The endpoint (its stream id).",
    "job_id": "The job.",
    "route_id": "The route (its stream id).",
    "new_job_id": "The job created by the redrive.",
    "actor": "Who did it: the API key id (never the key), or a Ferry component.",
    "name": "Display name of the endpoint.",
    "direction": "INBOUND (a source), OUTBOUND (a target) or BOTH.",
    "max_concurrency": "Most transfers Ferry runs against this endpoint at once.",
    "config": "Non-secret connection settings.",
    "reason_code": "Stable machine-readable reason.",
    "message": "Human-readable explanation (no secrets).",
    "reason": "Free text given by the actor.",
    "spec": "What to transfer: flow, source, target, options.",
    "idempotency_key": "The Idempotency-Key header, or Ferry's derived key.",
    "redrive_of": "The failed/cancelled job this one re-runs.",
    "attempt": "Attempt number (1-based).",
    "attempts": "Attempts made in total.",
    "executor_id": "The executor instance running the attempt.",
    "owner_id": "The executor instance holding the lease.",
    "region": "AWS region of the executor.",
    "expires_at": "When the lease expires unless renewed.",
    "size": "Size of the file in bytes.",
    "sha256": "Hex sha256 (of the whole file; of the chunk for ChunkCommitted).",
    "duration_seconds": "Wall time of the successful attempt.",
    "throughput_bytes_per_second": "size / duration.",
    "error_code": "Stable machine-readable error code.",
    "error_message": "Human-readable error (no secrets).",
    "transient": "True if the failure is retried (with backoff), false if permanent.",
    "bytes_committed": "Bytes durably written to the target so far (this leg).",
    "bytes_total": "Bytes to transfer (this leg).",
    "chunk_size": "Bytes per chunk.",
    "chunk_count": "Number of chunks of this leg.",
    "index": "0-based chunk index.",
    "offset": "Byte offset of the chunk.",
    "length": "Bytes in the chunk.",
    "part_number": "S3 multipart part number, for S3 targets.",
    "etag": "S3 part ETag, for S3 targets.",
    "flow": "S3_TO_S3, S3_TO_SFTP, SFTP_TO_S3 or SFTP_TO_SFTP.",
    "verify": "How the target was verified.",
    "action": "The post-action performed on the source.",
    "moved_to": "Where the source was moved (post_action=move).",
    "checks": "What was checked.",
    "definition": "The route definition.",
    "changed": "Fields that changed, with their new values.",
    "path": "Relative to the endpoint's base_path (SFTP) or prefix (S3).",
    "source": "Where the file is read from.",
    "target": "Where the file is written to.",
    "options": "Transfer options.",
    "type": "s3 or sftp.",
    "file_version": "Identifies one version of the file (size:mtime, or ETag / version id).",
    "modified_at": "The file's modification time at the source, when known.",
    "first_seen_at": "When the route first saw this file version.",
}


def _field_rows(model: type[BaseModel], envelope: set[str]) -> list[str]:
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        if name in envelope:
            continue
        field = model.model_fields[name]
        meaning = field.description or _MEANINGS.get(name, "")
        if name not in required:
            default = prop.get("default")
            meaning = f"{meaning} Optional (default `{json.dumps(default)}`).".strip()
        rows.append(f"| `{name}` | {_cell(_type_name(prop))} | {_cell(meaning)} |")
    return rows


def _table(model: type[BaseModel], envelope: set[str]) -> list[str]:
    rows = _field_rows(model, envelope)
    if not rows:
        return ["Envelope fields only.", ""]
    return ["| field | type | meaning |", "|---|---|---|", *rows, ""]


def _shared_types() -> list[type[BaseModel]]:
    from events.contract import EndpointConfig, JobSpec, Location, TransferOptions

    return [EndpointConfig, JobSpec, Location, TransferOptions]


def _enums() -> list[type[Enum]]:
    from events.contract import (
        Direction,
        EndpointStatus,
        EndpointType,
        Flow,
        JobStatus,
        PostAction,
        VerifyMode,
    )

    return [Direction, EndpointStatus, EndpointType, Flow, JobStatus, PostAction, VerifyMode]


_RULE_EXAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    SOURCE_ENDPOINTS: (
        "every endpoint of customer `acme` that failed validation",
        {
            "source": [SOURCE_ENDPOINTS],
            "detail-type": ["EndpointValidationFailed"],
            "detail": {"customer_id": ["acme"]},
        },
    ),
    SOURCE_JOBS: (
        "all my failed jobs",
        {
            "source": [SOURCE_JOBS],
            "detail-type": ["JobFailed"],
            "detail": {"customer_id": ["acme"]},
        },
    ),
    SOURCE_EXECUTOR: (
        "progress of my transfers (one event per committed chunk)",
        {
            "source": [SOURCE_EXECUTOR],
            "detail-type": ["ChunkCommitted"],
            "detail": {"customer_id": ["acme"]},
        },
    ),
    SOURCE_ROUTES: (
        "every change to my routes",
        {
            "source": [SOURCE_ROUTES],
            "detail-type": ["RouteCreated", "RouteUpdated", "RouteDisabled", "RouteEnabled"],
            "detail": {"customer_id": ["acme"]},
        },
    ),
}

_INTRO = """\
# Ferry event catalog

<!-- Generated by `python -m events.schema_gen` from events/contract.py: do not edit by hand.
     `python -m events.schema_gen --check` (and tests/unit/test_contract_schemas.py) fails when
     this file or events/schemas/ is out of date. -->

Ferry publishes every state change of every endpoint, job and transfer as an event on its
EventBridge bus. Consumers never create rules on that bus: the Ferry operator registers a
*consumer* for exactly one customer, and a Ferry-managed rule forwards that customer's events
(and only those) to the consumer's own event bus, where your rules and targets live.

## The event

An event as EventBridge delivers it (for example the body of an SQS message from a rule target):

```json
{
  "version": "0",
  "id": "<EventBridge's id; differs on every delivery, do not dedupe on it>",
  "source": "ferry.jobs",
  "detail-type": "JobQueued",
  "time": "2026-11-22T15:04:05Z",
  "account": "123456789012",
  "region": "eu-west-1",
  "resources": [],
  "detail": { "...": "the contract model, see below" }
}
```

- `source` names the bounded context: `ferry.endpoints`, `ferry.jobs`, `ferry.executor`,
  `ferry.routes`. `detail-type` is the event's name (past tense).
- `detail` always starts with the common envelope fields below, followed by the event's own
  fields. It never contains a secret: endpoint credentials are referenced by their Secrets
  Manager ARN (`secret_arn`) only.
- Machine-readable contract: one JSON Schema per event in
  [`events/schemas/<DetailType>.json`](../events/schemas/) (draft 2020-12). Each schema describes
  the whole EventBridge event: `source` and `detail-type` are constants and `detail` is the
  model's schema; the same values are repeated as `x-ferry-source`, `x-ferry-detail-type` and
  `x-ferry-schema-version`. Python consumers can import the pydantic models from
  `events.contract` instead (`events.translate.from_eventbridge(body)`).

### Common envelope fields (every event's `detail`)

"""

_DELIVERY = """\
## Delivery semantics

- **At least once.** The event store's DynamoDB stream is Ferry's outbox; the publisher retries,
  and EventBridge and SQS retry too, so the same event can reach you more than once.
  **Deduplicate on `detail.event_id`**: it is deterministic (uuid5 of `stream_id` and `version`),
  so a re-published or replayed event carries the same `event_id`. EventBridge's own `id` is
  different on every delivery.
- **Unordered.** Events of one stream are published in order, but EventBridge and SQS do not
  preserve order. Use `detail.version` to order events of one stream (`stream_id`): versions
  start at 1 and have no gaps, so a jump tells you that you have not seen an event yet. Across
  streams, `occurred_at` (UTC) is the time the event was recorded.
- **Streams.** An endpoint's events are on the endpoint's stream (`stream_id` = `endpoint_id`);
  a job's on the job's stream (`stream_id` = `job_id`); the data plane's events for a job on the
  job's Transfer stream (`stream_id` = uuid5 of the job id, `job_id` and `correlation_id` = the
  job). `correlation_id` groups everything that belongs to one job (or endpoint, or route).
- **Replays.** Ferry archives every event; an event replayed from the archive is delivered with a
  top-level `replay-name` field (the replay's name) and the original `detail`. History older
  than the archive is re-published from the event store by `ferry replay` (to a new consumer's
  queue or bus): the same event, `detail` as published plus `"replayed": true` (a live event
  has no `replayed` field), in order within each stream. A consumer that dedupes on `event_id`
  needs no special case for either; one that must not act twice on history (send a mail, start
  work) skips events with a `replay-name` or `detail.replayed` (Ferry's notifications do).
- **History.** `GET /jobs/{job_id}/events` and `GET /endpoints/{endpoint_id}/events` return a
  stream's past events in the same shape (`{"events": [{"event_id", "detail-type", "source",
  "stream_id", "version", "occurred_at", "detail"}]}`; a job's history merges its job and
  Transfer streams in time order): use them to backfill a consumer that starts late.
- **Versioning.** Changes are additive (new optional fields, new event types): ignore fields you
  do not know. A breaking change to an event gets a new `schema_version` (in `detail`).

## Replay

The EventBridge archive keeps 365 days; the event store keeps everything. `ferry replay`
re-publishes a period of it to a **new consumer**, a downstream team's own SQS queue or event
bus (an operator's command, with the stack's credentials, like `ferry audit`):

```sh
ferry replay --since 2025-01-01T00:00:00Z --until 2026-03-31T23:59:59Z --customer acme \\
  --detail-type JobSucceeded \\
  --to-queue https://sqs.eu-west-1.amazonaws.com/111122223333/acme-backfill
ferry replay --since ... --until ... --customer acme --to-bus acme-audit --rate 50
```

- **What arrives.** Each event as it was published, `detail` plus `"replayed": true` (same
  `event_id`, `source`, `detail-type`, `time`). On a queue the message body is the EventBridge
  event a rule targeting the queue delivers (`version`, `id` = `detail.event_id`,
  `detail-type`, `source`, `account`, `time`, `region`, `resources`, `detail`), so one parser
  (`events.translate.from_eventbridge`) reads live and replayed events; on a bus it is a
  PutEvents entry, matched by your rules as a live one (add `"detail": {"replayed": [true]}`
  to route history apart).
- **Which events.** The customer's published events with `occurred_at` in [`--since`,
  `--until`] (both required, with a zone), read from the event store's customer-and-time index
  (the one `GET /audit/events` reads; events stored before the hash chain existed are not in
  it, so not replayed); `--detail-type` (repeatable, or comma-separated) keeps
  only those types. Without `--customer`, every customer with an API key or an audit
  checkpoint, one after another in name order (the list is fixed by the first run).
- **Order.** (`occurred_at`, `stream_id`, `version`) within a customer, so version order within
  each stream. Batches of at most 10 go one after another; a standard queue or a bus may still
  reorder, so order by `detail.version` as for live events. A FIFO queue (`.fifo`) keeps order
  per stream (message group = `stream_id`, deduplication id = `event_id`).
- **Exactly once per replay.** After every publish call a state file records the cursor (the
  index position up to which everything is sent) and the ids sent beyond it. Entries a call
  reports as failed are retried (5 attempts, backing off) and never counted as sent; if they
  still fail, the command stops with exit 1 and a rerun resumes. Rerunning a finished replay
  sends nothing; `--restart` starts a new replay (everything again, same `event_id`s). One
  window remains: a process killed between a publish call's answer and the state write (a few
  milliseconds) resends that batch (at most 10 events) on resume: dedupe on `event_id`.
- **Resume.** Interrupted (Ctrl-C, kill -9, a crash, a failing target)? Run the same command
  again: it continues from its state, `<data-dir>/replays/<key>.json` (the key is a digest of
  the period, customers, types and target; `--state FILE` chooses another file). A state file
  of a different replay is refused (exit 2, `--state`).
- **Rate.** `--rate N` events per second (default 100, at most 10000): batches of min(10, N),
  paced so that the average never exceeds N. A progress bar shows sent / total and the time
  left; `--json` prints a summary (`sent`, `total`, `skipped`, `events_per_second`).
- **Refused targets.** Ferry's own bus (`<prefix>-bus`), every Ferry queue and dead-letter
  queue, and the account's default bus: exit 2 naming `--to-bus` / `--to-queue`, before any
  AWS call. History never flows back into Ferry's own consumers.

## Subscribing

Ask the Ferry operator for a consumer of your customer's events:

```sh
ferry consumers add --customer acme --name audit \\
  --target-bus-arn arn:aws:events:<region>:<your-account>:event-bus/<your-bus>
```

Ferry's rule always filters on `detail.customer_id` = your customer (a consumer account has no
permission on the Ferry bus, so no account can match another tenant's events). Your bus must
accept `events:PutEvents` from Ferry's account (see `ferry consumers add --help`). On your bus, a
rule matches on `source` and `detail-type`, and on any `detail` field. One example per family:

"""


def catalog() -> str:
    envelope = set(FerryEvent.model_fields)
    lines: list[str] = [_INTRO.rstrip("\n"), ""]
    lines += _table(FerryEvent, set())
    lines += [_DELIVERY.rstrip("\n"), ""]
    for source, title in FAMILIES:
        what, pattern = _RULE_EXAMPLES[source]
        lines += [
            f"**{title}** — {what}:",
            "",
            "```json",
            json.dumps(pattern),
            "```",
            "",
        ]
    lines += [
        "Create it on your own bus, with your queue as the target (and a queue policy",
        "allowing `events.amazonaws.com` to `sqs:SendMessage`):",
        "",
        "```sh",
        "aws events put-rule --event-bus-name <your-bus> --name acme-failed-jobs \\",
        '  --event-pattern \'{"source":["ferry.jobs"],"detail-type":["JobFailed"],'
        '"detail":{"customer_id":["acme"]}}\'',
        "aws events put-targets --event-bus-name <your-bus> --rule acme-failed-jobs \\",
        "  --targets Id=q,Arn=arn:aws:sqs:<region>:<account>:acme-failed-jobs",
        "```",
        "",
        "## Events",
        "",
    ]
    for source, title in FAMILIES:
        names = sorted(dt for dt, m in EVENT_TYPES.items() if source == m.SOURCE)
        lines += [f"### {title} — source `{source}`", ""]
        lines += [", ".join(f"[`{n}`](#{n.lower()})" for n in names), ""]
        for name in names:
            model = EVENT_TYPES[name]
            lines += [f"#### {name}", ""]
            doc = (model.__doc__ or "").strip()
            if doc and model.__doc__ != FerryEvent.__doc__:
                lines += [" ".join(doc.split()), ""]
            lines += [
                f"source `{model.SOURCE}`, detail-type `{name}`, schema "
                f"[`events/schemas/{name}.json`](../events/schemas/{name}.json), "
                f"schema_version {model.SCHEMA_VERSION}.",
                "",
            ]
            lines += _table(model, envelope)
            lines += [
                "Example `detail`:",
                "",
                "```json",
                json.dumps(example_detail(model), indent=2),
                "```",
                "",
            ]
    lines += ["## Shared types", ""]
    for shared in _shared_types():
        lines += [f"### {shared.__name__}", ""]
        doc = (shared.__doc__ or "").strip()
        if doc and not doc.startswith("!!!") and "pydantic" not in doc.lower():
            lines += [" ".join(doc.split()), ""]
        lines += _table(shared, set())
    lines += ["### Enumerations", "", "| type | values |", "|---|---|"]
    for enum in _enums():
        values = ", ".join(f"`{member.value}`" for member in enum)
        lines.append(f"| {enum.__name__} | {values} |")
    lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- main


def expected_files(schemas_dir: Path = SCHEMAS_DIR, docs_file: Path = DOCS_FILE) -> dict[Path, str]:
    files = {schemas_dir / name: text for name, text in schema_files().items()}
    files[docs_file] = catalog()
    return files


def drift(schemas_dir: Path = SCHEMAS_DIR, docs_file: Path = DOCS_FILE) -> list[str]:
    """Paths that are missing, different or stray (a schema file without a model)."""
    problems = []
    expected = expected_files(schemas_dir, docs_file)
    for path, text in expected.items():
        if not path.exists():
            problems.append(f"missing: {path}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"out of date: {path}")
    if schemas_dir.exists():
        for path in sorted(schemas_dir.glob("*.json")):
            if path not in expected:
                problems.append(f"stray (no such event): {path}")
    return problems


def write(schemas_dir: Path = SCHEMAS_DIR, docs_file: Path = DOCS_FILE) -> list[Path]:
    schemas_dir.mkdir(parents=True, exist_ok=True)
    expected = expected_files(schemas_dir, docs_file)
    written = []
    for path, text in expected.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    for path in schemas_dir.glob("*.json"):
        if path not in expected:
            path.unlink()
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m events.schema_gen",
        description="Generate events/schemas/*.json and docs/events.md from events.contract.",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the checked-in files are out of date"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = drift()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python -m events.schema_gen", file=sys.stderr)
            return 1
        print(f"up to date: {len(EVENT_TYPES)} schemas and {DOCS_FILE.relative_to(ROOT)}")
        return 0
    for path in write():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
