"""Run ``ferry up`` / ``ferry demo`` in a subprocess and drive it through the CLI, as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(API URL|API key|AWS endpoint): (\S+)$")
_UNSET = ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _UNSET and not k.startswith("FERRY_")}
    # `ferry up` also writes the user config dir: never the developer's own in tests
    env["XDG_CONFIG_HOME"] = str(Path(tempfile.gettempdir()) / "ferry-e2e-xdg")
    env.update(extra)
    return env


@dataclass
class Stack:
    proc: subprocess.Popen[str]
    data_dir: Path
    lines: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return self.lines["API URL"]

    @property
    def api_key(self) -> str:
        return self.lines["API key"]

    @property
    def aws_endpoint(self) -> str:
        return self.lines["AWS endpoint"]

    def aws_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self, service: str) -> Any:
        import boto3

        session: Any = boto3.session.Session()
        return session.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``python -m ferry.cli ARGS --data-dir DIR`` (config from the stack's config.json)."""
        proc = subprocess.run(
            [PYTHON, "-m", "ferry.cli", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(COLUMNS="200"),
            cwd=REPO,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"ferry {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def cli_json(self, *args: str, timeout: float = 120) -> Any:
        return json.loads(self.cli(*args, "--json", timeout=timeout).stdout)

    def pids(self) -> dict[str, int]:
        try:
            return dict(json.loads((self.data_dir / "pids.json").read_text())["services"])
        except (OSError, ValueError, KeyError):
            return {}

    def log_text(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted((self.data_dir / "logs").glob("*.log"))
        )

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def http(
    stack: Stack, method: str, path: str, body: Any = None, key: str | None = None
) -> tuple[int, Any]:
    """One JSON request to the stack's API (``key``: another key than the stack's own);
    (status, decoded body), for error statuses too."""
    req = urllib.request.Request(
        stack.api_url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"x-api-key": key or stack.api_key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def processes_of(data_dir: Path) -> list[int]:
    """Every live process whose environment carries FERRY_DATA_DIR=<data_dir> (a /proc scan)."""
    needle = f"FERRY_DATA_DIR={Path(data_dir).resolve()}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            continue  # a zombie is dead
        if needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def start_stack(
    data_dir: Path, *, command: str = "up", extra: tuple[str, ...] = (), timeout: float = 180
) -> Stack:
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "ferry.cli",
            command,
            "--port",
            "0",
            "--moto-port",
            "0",
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(COLUMNS="200"),
        cwd=REPO,
    )
    stack = Stack(proc=proc, data_dir=data_dir)
    # One thread reads every line from the start. (Not select() on the pipe beside a buffered
    # readline(): when the three lines arrive in one read, two of them wait in the reader's
    # buffer where select() never sees them — that made CI time out with the stack running.)
    threading.Thread(target=_drain, args=(stack,), daemon=True).start()
    deadline = time.monotonic() + timeout
    while len(stack.lines) < 3:
        if proc.poll() is not None or time.monotonic() > deadline:
            stack.stop(signal.SIGTERM)
            time.sleep(0.2)  # the reader thread takes the last lines
            raise AssertionError(f"ferry {command} did not start:\n{''.join(stack.output)}")
        time.sleep(0.05)
    return stack


def _drain(stack: Stack) -> None:
    assert stack.proc.stdout is not None
    for line in stack.proc.stdout:
        stack.output.append(line)
        m = LINE.match(line.strip())
        if m:
            stack.lines[m.group(1)] = m.group(2)


@contextlib.contextmanager
def running_stack(data_dir: Path) -> Iterator[Stack]:
    stack = start_stack(data_dir)
    try:
        yield stack
    finally:
        stack.stop(signal.SIGTERM)


def wait_until(predicate: Any, timeout: float, interval: float = 0.2, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)
