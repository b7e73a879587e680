"""What every ``ferry`` command module shares: the consoles, :class:`CliError`, the
configuration, the HTTP client, the signal stop event and the job/event tables.

``ferry/cli.py``, ``ferry/cli_*.py`` and ``ferry/local/demo.py`` import this module; it imports
none of them (no import cycle between the command modules)."""

from __future__ import annotations

import argparse
import json
import os
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
from rich.table import Table

FINAL_STATUSES = ("SUCCEEDED", "FAILED", "CANCELLED")


DEFAULT_DATA_DIR = ".ferry"


out = Console(highlight=False, soft_wrap=True)


err = Console(stderr=True, highlight=False, soft_wrap=True)


class CliError(Exception):
    def __init__(self, message: str, *, field: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


def data_dir_of(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or os.environ.get("FERRY_DATA_DIR") or DEFAULT_DATA_DIR)


def load_config(args: argparse.Namespace) -> dict[str, Any]:
    from ferry.local.keys import read_config

    config = read_config(data_dir_of(args))
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
                f"no API configured: run `ferry up` (writes {data_dir_of(args)}/config.json) "
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


def _emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def signal_event() -> threading.Event:
    stop = threading.Event()

    def _handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def _table(*columns: str) -> Table:
    table = Table()
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


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


JOB_COLUMNS = ("job_id", "status", "flow", "source", "target", "progress", "attempt", "error")


def _loc(value: Any) -> str:
    if isinstance(value, dict):
        return f"{str(value.get('endpoint_id', ''))[:8]}:{value.get('path', '')}"
    return _cell(value)


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
    table = _table(*JOB_COLUMNS)
    styles = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow"}
    for j in jobs:
        status = str(j.get("status", ""))
        table.add_row(
            _cell(j.get("job_id")),
            f"[{styles.get(status, 'cyan')}]{status}[/]",
            _cell(j.get("flow")),
            _loc(j.get("source")),
            _loc(j.get("target")),
            _progress(j),
            _cell(j.get("attempt")),
            _cell(j.get("error_code")),
        )
    return table


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
    table = _table("occurred_at", "stream", "v", "detail-type", "detail")
    for e in events:
        table.add_row(
            _cell(e.get("occurred_at")),
            _cell(e.get("stream_id"))[:8],
            _cell(e.get("version")),
            _cell(e.get("detail-type")),
            _summary(e.get("detail") or {}),
        )
    return table
