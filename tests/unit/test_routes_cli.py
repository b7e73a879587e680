"""ferry routes …: the arguments become the right API calls (a fake API client)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from ferry.cli_routes import register


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any, Any]] = []

    def request(self, method: str, path: str, body: Any = None, *, query: Any = None) -> Any:
        self.calls.append((method, path, body, query))
        if path.endswith("/files"):
            return {"items": [{"path": "out/a.txt", "status": "skipped", "reason": "pattern"}]}
        if path == "/routes" and method == "GET":
            return {"items": [{"route_id": "r1", "name": "n", "trigger": {"type": "event"}}]}
        return {"route_id": "r1", **(body or {})}


def _run(argv: list[str]) -> FakeClient:
    client = FakeClient()
    parser = argparse.ArgumentParser(prog="ferry")
    register(parser.add_subparsers(dest="command", required=True), lambda args: client)
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return client


def test_add_from_flags_builds_the_post_body(capsys: pytest.CaptureFixture[str]) -> None:
    client = _run(
        [
            "routes",
            "add",
            "--name",
            "bank",
            "--from",
            "sftp1:outbound",
            "--pattern",
            "*.csv",
            "--every",
            "5m",
            "--to",
            "s3a:{customer}/{yyyy}/{mm}/",
            "--to",
            "sftp2:in/{filename}",
            "--post-action",
            "move",
            "--move-to",
            "archive",
            "--stable-checks",
            "3",
            "--done-marker",
            "{name}.done",
            "--json",
        ]
    )
    [(method, path, body, _)] = client.calls
    assert (method, path) == ("POST", "/routes")
    assert body == {
        "name": "bank",
        "source": {"endpoint_id": "sftp1", "path": "outbound", "pattern": "*.csv"},
        "targets": [
            {"endpoint_id": "s3a", "path_template": "{customer}/{yyyy}/{mm}/"},
            {"endpoint_id": "sftp2", "path_template": "in/{filename}"},
        ],
        "trigger": {"type": "schedule", "every": "5m"},
        "stable": {"checks": 3, "done_marker": "{name}.done"},
        "post_action": "move",
        "move_to": "archive",
    }
    assert json.loads(capsys.readouterr().out)["route_id"] == "r1"


def test_add_from_file_and_the_other_actions(tmp_path: Path) -> None:
    definition = {
        "name": "x",
        "source": {"endpoint_id": "a"},
        "targets": [],
        "trigger": {"type": "event"},
    }
    (tmp_path / "r.json").write_text(json.dumps(definition))
    assert _run(["routes", "add", "--file", str(tmp_path / "r.json")]).calls[0][2] == definition
    assert _run(["routes", "list"]).calls == [("GET", "/routes", None, None)]
    assert _run(["routes", "show", "r1"]).calls[0][:2] == ("GET", "/routes/r1")
    assert _run(["routes", "disable", "r1"]).calls[0][:2] == ("POST", "/routes/r1/disable")
    assert _run(["routes", "enable", "r1"]).calls[0][:2] == ("POST", "/routes/r1/enable")
    files = _run(["routes", "files", "r1", "--name", "a.txt"]).calls[0]
    assert files == ("GET", "/routes/r1/files", None, {"name": "a.txt", "limit": 100})


def test_add_without_required_flags_fails_clearly() -> None:
    from ferry.cli import CliError

    with pytest.raises(CliError) as error:
        _run(["routes", "add", "--name", "x"])
    assert error.value.field == "name"


def test_retry_posts_the_path_and_prints_the_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    client = _run(["routes", "retry", "r1", "--path", "out/pay.csv"])
    assert client.calls == [("POST", "/routes/r1/files/retry", {"path": "out/pay.csv"}, None)]
    assert "retrying out/pay.csv" in capsys.readouterr().out


def test_retry_needs_a_path() -> None:
    parser = argparse.ArgumentParser(prog="ferry")
    register(parser.add_subparsers(dest="command", required=True), lambda args: FakeClient())
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["routes", "retry", "r1"])
    assert exited.value.code == 2


def test_unrouted_asks_for_the_endpoints_objects() -> None:
    client = _run(["routes", "unrouted", "ep1", "--limit", "5"])
    assert client.calls == [("GET", "/endpoints/ep1/unrouted", None, {"limit": 5})]
