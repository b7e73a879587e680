"""ferry subscriptions … and ferry mail: the arguments become the right API calls (a fake API
client); the signing secret is printed once, to stderr; ferry mail reads the catcher's files."""

from __future__ import annotations

import argparse
import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from ferry.cli_common import CliError
from ferry.cli_subscriptions import register


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> Any:
        self.calls.append((method, path, body))
        if path == "/subscriptions" and method == "POST":
            return {"subscription_id": "s1", **body, "status": "ACTIVE", "secret": "whsec_once"}
        if path.endswith("/deliveries"):
            return {"items": [{"event_id": "e", "detail_type": "JobFailed", "status": "retrying",
                               "attempts": [{"status_code": 500, "error": "http_500",
                                             "latency_ms": 3}]}]}  # fmt: skip
        return {"subscription_id": "s1", "name": "n", "status": "PAUSED", "items": []}


def _run(argv: list[str]) -> FakeClient:
    client = FakeClient()
    parser = argparse.ArgumentParser(prog="ferry")
    register(parser.add_subparsers(dest="command", required=True), lambda args: client)
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return client


def test_add_builds_the_body_and_prints_the_secret_once_to_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s" * 30)
    client = _run([
        "subscriptions", "add", "--name", "ops", "--event", "JobFailed", "--event", "JobSlow",
        "--webhook", "https://hooks.example.com/f", "--secret-env", "HOOK_SECRET",
        "--route", "r-1", "--include-replays",
    ])  # fmt: skip
    [(method, path, body)] = client.calls
    assert (method, path) == ("POST", "/subscriptions")
    assert body == {
        "name": "ops",
        "events": ["JobFailed", "JobSlow"],
        "filter": {"route_id": "r-1"},
        "target": {"type": "webhook", "url": "https://hooks.example.com/f", "secret": "s" * 30},
        "include_replays": True,
    }
    captured = capsys.readouterr()
    assert "whsec_once" in captured.err and "whsec_once" not in captured.out


def test_exactly_one_target_and_a_set_secret_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    for extra in ([], ["--webhook", "https://a.example/", "--email", "a@b.example"],
                  ["--webhook", "https://a.example/", "--secret-env", "NOPE"]):  # fmt: skip
        with pytest.raises(CliError):
            _run(["subscriptions", "add", "--name", "x", "--event", "JobFailed", *extra])


@pytest.mark.parametrize(
    ("action", "method", "suffix"),
    [("show", "GET", ""), ("remove", "DELETE", ""), ("pause", "POST", "/pause"),
     ("resume", "POST", "/resume"), ("test", "POST", "/test"),
     ("deliveries", "GET", "/deliveries")],
)  # fmt: skip
def test_actions_by_id(action: str, method: str, suffix: str) -> None:
    client = _run(["subscriptions", action, "s1"])
    assert client.calls == [(method, f"/subscriptions/s1{suffix}", None)]


def test_mail_lists_and_shows_the_caught_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mail").mkdir()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "f@x", "ops@example.com", "[Ferry] hi"
    message.set_content("the body\n")
    (tmp_path / "mail" / "1700000000000000000-000001.eml").write_bytes(message.as_bytes())
    _run(["mail", "--data-dir", str(tmp_path), "--json"])
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["to"], listed["subject"]) == ("ops@example.com", "[Ferry] hi")
    _run(["mail", "--data-dir", str(tmp_path), "--show", "1"])
    assert "the body" in capsys.readouterr().out
    with pytest.raises(CliError):
        _run(["mail", "--data-dir", str(tmp_path), "--show", "2"])
