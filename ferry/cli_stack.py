"""What ``ferry up`` and ``ferry demo`` share: the three stack lines and the Console line, port
choice, the user-config copy that lets ``ferry`` work from any directory, and the rate meter of
watched jobs. Its own module so that ``ferry.local.demo`` needs nothing from ``ferry.cli``
(which starts the demo: no import cycle).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ferry.cli_common import CONFIG_NAME, FINAL_STATUSES, err, user_config_dir

__all__ = [
    "DEFAULT_API_PORT",
    "DEFAULT_MOTO_PORT",
    "DEFAULT_SFTP_PORT",
    "RateMeter",
    "choose_port",
    "print_console_line",
    "print_stack_lines",
    "publish_user_config",
    "unpublish_user_config",
]


def print_stack_lines(info: Any) -> None:
    print(f"API URL: {info.api_url}", flush=True)
    print(f"API key: {info.api_key}", flush=True)
    print(f"AWS endpoint: {info.aws_endpoint}", flush=True)


DEFAULT_API_PORT = 8080
DEFAULT_MOTO_PORT = 5000
DEFAULT_SFTP_PORT = 2222


def choose_port(requested: int | None, default: int, option: str) -> int:
    """The port to use: ``requested`` as given (0: any free one; a busy one fails later, naming
    ``option``); without it the default, or a free port when the default is taken (said on
    stderr)."""
    from ferry.local.stack import PortInUse, ensure_free, free_port

    if requested is not None:
        return requested
    try:
        ensure_free(default, option)
    except PortInUse:
        chosen = free_port()
        err.print(f"port {default} is in use; {option} {chosen} instead (pass {option} to choose)")
        return chosen
    return default


def publish_user_config(info: Any) -> Path | None:
    """Write the running stack's config to the user config dir (mode 0600), so that ``ferry``
    finds it from any directory; None if that dir cannot be written."""
    from ferry.local.keys import write_config

    try:
        user_config_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
        return write_config(
            user_config_dir(), {**info.config(), "data_dir": str(Path(info.data_dir).resolve())}
        )
    except OSError as error:
        err.print(f"could not write {user_config_dir() / CONFIG_NAME}: {error.strerror}")
        return None


def unpublish_user_config(path: Path | None, info: Any) -> None:
    """Remove the user config on stop, if it is still this stack's (another ``ferry up`` may
    have written its own since)."""
    if path is None:
        return
    try:
        if json.loads(path.read_text()).get("api_url") == info.api_url:
            path.unlink()
    except (OSError, ValueError):
        pass


def print_console_line(info: Any) -> None:
    print(f"Console: {info.api_url}/console", flush=True)


class RateMeter:
    """Bytes per second and time left of a watched job, for fast transfers too: between two
    polls that saw bytes move; else the job's own average since it started (its
    started_at), and the API's throughput once it is final."""

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None
        self._speed: float | None = None

    def update(self, job: dict[str, Any], now: float | None = None) -> tuple[float | None, str]:
        now = time.monotonic() if now is None else now
        done = int(job.get("bytes_committed") or 0)
        if self._last is not None and done > self._last[1] and now > self._last[0]:
            self._speed = (done - self._last[1]) / (now - self._last[0])
        if self._last is None or done != self._last[1]:
            self._last = (now, done)
        speed = self._speed or _average_speed(job)
        if job.get("status") in FINAL_STATUSES:
            speed = job.get("throughput_bytes_per_second") or speed
            return speed, ""
        total = job.get("bytes_total")
        eta = ""
        if speed and total and total > done:
            seconds = int((total - done) / speed)
            eta = f"{seconds // 60}:{seconds % 60:02d}"
        return speed, eta


def _average_speed(job: dict[str, Any]) -> float | None:
    from datetime import UTC, datetime

    started, done = job.get("started_at"), job.get("bytes_committed")
    if not started or not done:
        return None
    try:
        began = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    except ValueError:
        return None
    seconds = (datetime.now(UTC) - began).total_seconds()
    return float(done) / seconds if seconds > 0.05 else None
