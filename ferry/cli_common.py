"""What every ``ferry`` command module shares: the consoles, :class:`CliError`, the
configuration, the HTTP client, the signal stop event and the job/event tables.

``ferry/cli.py``, ``ferry/cli_*.py`` and ``ferry/local/demo.py`` import this module; it imports
none of them (no import cycle between the command modules).

Over 400 lines because it is the one place every command module shares: the config lookup, the HTTP
client, the one table/cell/JSON style and id prefixes; splitting it would give the command
modules two helpers to agree on again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

FINAL_STATUSES = ("SUCCEEDED", "FAILED", "CANCELLED")


DEFAULT_DATA_DIR = ".ferry"
CONFIG_NAME = "config.json"


out = Console(highlight=False, soft_wrap=True)


err = Console(stderr=True, highlight=False, soft_wrap=True)


class CliError(Exception):
    def __init__(self, message: str, *, field: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


def data_dir_of(args: argparse.Namespace) -> Path:
    return Path(
        getattr(args, "data_dir", None) or os.environ.get("FERRY_DATA_DIR") or DEFAULT_DATA_DIR
    )


def user_config_dir() -> Path:
    """``$XDG_CONFIG_HOME/ferry`` (default ``~/.config/ferry``): where ``ferry up`` also writes
    the running stack's config, so that ``ferry`` works from any directory."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ferry"


def config_source(args: argparse.Namespace) -> Path | None:
    """The directory whose config.json the CLI reads: ``--data-dir`` / FERRY_DATA_DIR if given;
    else ``./.ferry`` if it has a config; else the user config dir (the last ``ferry up``)."""
    explicit = getattr(args, "data_dir", None) or os.environ.get("FERRY_DATA_DIR")
    if explicit:
        return Path(explicit)
    local = Path(DEFAULT_DATA_DIR)
    if (local / CONFIG_NAME).exists():
        return local
    user = user_config_dir()
    if (user / CONFIG_NAME).exists():
        return user
    return None


def load_config(args: argparse.Namespace) -> dict[str, Any]:
    """The API URL and key: FERRY_API_URL / FERRY_API_KEY override the config file that
    :func:`config_source` finds."""
    from ferry.local.keys import read_config

    source = config_source(args)
    config = read_config(source) if source is not None else {}
    if os.environ.get("FERRY_API_URL"):
        config["api_url"] = os.environ["FERRY_API_URL"]
    if os.environ.get("FERRY_API_KEY"):
        config["api_key"] = os.environ["FERRY_API_KEY"]
    return config


class ApiClient:
    """A tiny JSON client for the Ferry API (urllib only)."""

    def __init__(self, api_url: str, api_key: str, timeout: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ApiClient:
        config = load_config(args)
        if not config.get("api_url") or not config.get("api_key"):
            raise CliError(
                f"no API configured: run `ferry up` (writes {data_dir_of(args)}/config.json and "
                f"{user_config_dir() / CONFIG_NAME}), pass --data-dir, "
                "or set FERRY_API_URL and FERRY_API_KEY"
            )
        return cls(str(config["api_url"]), str(config["api_key"]))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        url = self.api_url + path
        if query:
            clean = {k: str(v) for k, v in query.items() if v is not None}
            if clean:
                url += "?" + urllib.parse.urlencode(clean)
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"x-api-key": self.api_key, "Accept": "application/json"}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as error:
            raise _api_error(error) from None
        except urllib.error.URLError as error:
            raise CliError(f"cannot reach the API at {self.api_url}: {error.reason}") from None
        except (TimeoutError, ConnectionError) as error:
            raise CliError(f"cannot reach the API at {self.api_url}: {error}") from None
        return json.loads(raw) if raw else None


def _api_error(error: urllib.error.HTTPError) -> CliError:
    raw = error.read()
    try:
        payload = json.loads(raw)
        detail = payload.get("error") if isinstance(payload, dict) else None
    except ValueError:
        detail = None
    if isinstance(detail, dict):
        return CliError(
            f"{detail.get('message', 'request failed')} ({error.code} {detail.get('code', '')})",
            field=detail.get("field"),
            status=error.code,
        )
    text = raw.decode(errors="replace")[:300]
    return CliError(f"HTTP {error.code}: {text}", status=error.code)


def _items(payload: Any, *keys: str) -> list[dict[str, Any]]:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in (*keys, "items"):
            if isinstance(payload.get(key), list):
                return list(payload[key])
    return []


def emit_json(value: Any) -> None:
    """The one JSON output of every command (``--json``): indented, dates as text."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


_emit_json = emit_json  # the name older command modules import


def signal_event() -> threading.Event:
    stop = threading.Event()

    def _handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def table(*columns: str) -> Table:
    """The one table style: long values fold (wrap) inside their column, never truncate."""
    made = Table()
    for column in columns:
        made.add_column(column, overflow="fold")
    return made


_table = table


NONE = "-"


def cell(value: Any, style: str | None = None) -> Text:
    """The one table cell: None is ``-``, lists and dicts are JSON, everything is plain text
    (a ``Text``: rich never reads markup or emoji codes such as ``:secret:`` in data)."""
    if value is None or value == "":
        return Text(NONE, style="dim")
    if isinstance(value, bool):
        return Text("yes" if value else "no", style=style or "")
    if isinstance(value, dict | list):
        return Text(json.dumps(value, default=str), style=style or "")
    return Text(str(value), style=style or "")


_cell = cell


def kv_table(mapping: dict[str, Any]) -> Table:
    """A two-column field/value table (``show`` commands)."""
    made = Table("field", "value", show_header=False)
    made.columns[1].overflow = "fold"
    for key, value in mapping.items():
        made.add_row(Text(str(key)), cell(value))
    return made


def say(template: str, *values: Any) -> str:
    """Markup ``template`` with each value escaped: ``say("job {} is [b]{}[/]", a, b)``."""
    return template.format(*(escape(str(v)) for v in values))


SHORT = 8
MIN_PREFIX = 6
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PREFIX = re.compile(r"^[0-9a-f-]+$")
MAX_LISTED = 10_000  # ids read to resolve a prefix (newest first)


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*(?:/s)?\s*$", re.IGNORECASE)
_RATE_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip


def parse_rate(value: str, option: str, *, allow_none: bool = False) -> int | None:
    """A byte rate as given on the command line: ``20MB/s``, ``512KiB``, ``1.5GB/s`` or plain
    bytes/s (``20000000``); decimal (kB, MB, GB) and binary (KiB, MiB, GiB) units, bytes never
    bits. ``none`` or ``off`` (only where ``allow_none``) lifts a cap. The range is the API's
    to check (a 422 naming ``bandwidth_limit``)."""
    if allow_none and value.strip().lower() in ("none", "off"):
        return None
    match = _RATE.match(value)
    if not match:
        hint = " (or none to lift the cap)" if allow_none else ""
        raise CliError(
            f"{option}: a byte rate such as 20MB/s, 512KiB/s or 1000000, got {value!r}{hint}",
            field=option,
        )
    return int(float(match.group(1)) * _RATE_UNITS[(match.group(2) or "b").lower()])


def short_id(value: Any) -> str:
    """What tables show of an id: its first 8 characters (any unique prefix of 6 or more
    characters is accepted back wherever an id is)."""
    return str(value)[:SHORT] if value else NONE


def resolve_id(client: ApiClient, kind: str, value: str, *, field: str | None = None) -> str:
    """The full id of a ``kind`` ("job", "endpoint", "route", "subscription") for a unique prefix of at least 6
    hex characters; an unknown or ambiguous prefix is a CliError (listing the candidates).
    Anything else (a full id, a shorter or non-hex value) is passed on as it is: the API
    answers 404 naming the field."""
    field = field or f"{kind}_id"
    text = value.strip().lower()
    if _UUID.match(text) or len(text) < MIN_PREFIX or len(text) >= 36 or not _PREFIX.match(text):
        return value
    ids, complete = _ids_of(client, kind)
    matches = sorted({i for i in ids if i.startswith(text)})
    if len(matches) == 1:
        return matches[0]
    if not matches:
        where = "" if complete else f" (searched the newest {len(ids)})"
        raise CliError(f"no {kind} id starts with {text}{where}", field=field)
    shown = ", ".join(matches[:10]) + (
        f" and {len(matches) - 10} more" if len(matches) > 10 else ""
    )
    raise CliError(
        f"{text} is ambiguous: {len(matches)} {kind}s start with it: {shown}; give more characters",
        field=field,
    )


def _ids_of(client: ApiClient, kind: str) -> tuple[list[str], bool]:
    """Every id of ``kind`` the caller can see (up to MAX_LISTED) and whether that is all."""
    if kind in ("route", "subscription"):  # listed whole, one page
        payload = client.request("GET", f"/{kind}s")
        id_key = f"{kind}_id"
        return [str(r[id_key]) for r in _items(payload) if r.get(id_key)], True
    path, key, id_key = {
        "job": ("/jobs", "jobs", "job_id"),
        "endpoint": ("/endpoints", "endpoints", "endpoint_id"),
    }[kind]
    ids: list[str] = []
    token = None
    while len(ids) < MAX_LISTED:
        payload = client.request("GET", path, query={"limit": 100, "next_token": token})
        ids.extend(str(i[id_key]) for i in _items(payload, key) if i.get(id_key))
        token = payload.get("next_token") if isinstance(payload, dict) else None
        if not token:
            return ids, True
    return ids, False


def wait_for_endpoint(
    client: ApiClient, endpoint_id: str, timeout: float, *, after: int | None = None
) -> dict[str, Any]:
    """Poll GET /endpoints/{id} until it is no longer PENDING_VALIDATION (or the timeout).
    ``after``: the command's endpoint version — an older read-model item is not the answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found: dict[str, Any] = client.request("GET", f"/endpoints/{endpoint_id}")
        except CliError as error:
            if error.status != 404:  # the read model may lag the command by a moment
                raise
            found = {"endpoint_id": endpoint_id, "status": "PENDING_VALIDATION"}
        stale = after is not None and int(found.get("version") or 0) < after
        settled = not stale and found.get("status") not in (None, "PENDING_VALIDATION")
        if settled or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


JOB_COLUMNS = (
    "job",
    "status",
    "route",
    "flow",
    "source",
    "target",
    "progress",
    "attempt",
    "error",
)
STATUS_STYLES = {
    "SUCCEEDED": "green",
    "ACTIVE": "green",
    "FAILED": "red",
    "VALIDATION_FAILED": "red",
    "CANCELLED": "yellow",
    "DISABLED": "yellow",
}


def status_cell(status: Any) -> Text:
    return cell(status, style=STATUS_STYLES.get(str(status), "cyan"))


def _loc(value: Any) -> Text:
    if isinstance(value, dict):
        return Text(f"{short_id(value.get('endpoint_id'))}:{value.get('path', '')}")
    return cell(value)


def human_bytes(n: Any) -> str:
    try:
        size = float(n)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def _progress(job: dict[str, Any]) -> str:
    total, done = job.get("bytes_total"), job.get("bytes_committed")
    if total in (None, 0):
        return human_bytes(done) if done else ""
    return f"{human_bytes(done or 0)} / {human_bytes(total)}"


def job_table(jobs: list[dict[str, Any]]) -> Table:
    made = table(*JOB_COLUMNS)
    for j in jobs:
        made.add_row(
            cell(short_id(j.get("job_id"))),
            status_cell(j.get("status")),
            cell(short_id(j.get("route_id")) if j.get("route_id") else None),
            cell(j.get("flow")),
            _loc(j.get("source")),
            _loc(j.get("target")),
            cell(_progress(j) or None),
            cell(j.get("attempt")),
            cell(j.get("error_code")),
        )
    return made


def _summary(detail: dict[str, Any]) -> str:
    skip = {
        "job_id",
        "event_id",
        "stream_id",
        "version",
        "occurred_at",
        "customer_id",
        "correlation_id",
        "schema_version",
    }
    parts = []
    for k, v in detail.items():
        if k in skip or v in (None, "", [], {}):
            continue
        text = json.dumps(v, default=str) if isinstance(v, dict | list) else str(v)
        if k == "sha256" or k.endswith("_sha256"):
            text = text[:12] + "…"
        parts.append(f"{k}={text[:48]}")
    return " ".join(parts)[:200]


def events_table(events: list[dict[str, Any]]) -> Table:
    made = table("occurred_at", "stream", "v", "detail-type", "detail")
    for e in events:
        made.add_row(
            cell(e.get("occurred_at")),
            cell(short_id(e.get("stream_id"))),
            cell(e.get("version")),
            cell(e.get("detail-type")),
            cell(_summary(e.get("detail") or {}) or None),
        )
    return made
