"""The CLI, finished (issue 14): short ids, escaping, config discovery, busy default ports, help
on every option, rate/ETA of a watched job, one log per run and no pids.json left behind.

The commands run for real (``ferry.cli.main`` in process, or ``python -m ferry.cli`` in a
subprocess) against a fake Ferry API: a real HTTP server on 127.0.0.1 answering from canned
data and recording every request (a fake, not a mock of the client)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ferry import cli, cli_common
from ferry.cli_common import CliError, resolve_id

REPO = Path(__file__).resolve().parents[2]

JOBS = [
    {"job_id": "aaaaaa11-0000-4000-8000-000000000001", "status": "SUCCEEDED", "route_id": None},
    {"job_id": "aaaaaa22-0000-4000-8000-000000000002", "status": "FAILED",
     "route_id": "cccccc11-0000-4000-8000-000000000009", "error_code": "[red]boom[/]"},
    {"job_id": "bbbbbb11-0000-4000-8000-000000000003", "status": "RUNNING"},
]  # fmt: skip
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ferry/endpoints/demo/x-AbCdEf"
ENDPOINT = {
    "endpoint_id": "eeeeee11-0000-4000-8000-000000000004",
    "name": "[bold]partner[/bold] :smile:",
    "type": "sftp",
    "status": "ACTIVE",
    "secret_arn": SECRET_ARN,
    "config": {"host": "sftp.example.com"},
}


class FakeApi:
    """GET /jobs (paged by 2), /jobs/{id}, /endpoints, /endpoints/{id}, /routes."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                split = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(split.query).items()}
                api.requests.append(("GET", self.path, self.headers.get("x-api-key")))
                status, body = api.answer(split.path, query)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/jobs":
            start = int(query.get("next_token") or 0)
            page = JOBS[start : start + 2]
            token = str(start + 2) if start + 2 < len(JOBS) else None
            return 200, {"jobs": page, "next_token": token}
        for job in JOBS:
            if path == f"/jobs/{job['job_id']}":
                return 200, job
        if path == "/endpoints":
            return 200, {"endpoints": [ENDPOINT], "next_token": None}
        if path == f"/endpoints/{ENDPOINT['endpoint_id']}":
            return 200, ENDPOINT
        if path == "/routes":
            return 200, {"items": [{"route_id": "cccccc11-0000-4000-8000-000000000009"}]}
        return 404, {"error": {"code": "not_found", "message": f"no {path}"}}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    fake = FakeApi()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "config.json").write_text(json.dumps({"api_url": fake.url, "api_key": "fk_test"}))
    monkeypatch.setenv("FERRY_DATA_DIR", str(data_dir))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FERRY_API_URL", raising=False)
    monkeypatch.delenv("FERRY_API_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    # rich fixes a console's width from COLUMNS when it is created (at import), and pytest-xdist
    # workers run with COLUMNS=80: set the width the tables are checked at on the consoles too
    for console in (cli_common.out, cli_common.err):
        monkeypatch.setattr(console, "width", 200)
    yield fake
    fake.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- short ids


def test_a_unique_prefix_of_six_or_more_is_the_id(api: FakeApi, capsys: Any) -> None:
    code, out, _ = run(capsys, "status", "bbbbbb1", "--json")
    assert code == 0
    assert json.loads(out)["job_id"] == JOBS[2]["job_id"]
    # the prefix was looked up over every page of /jobs, then the full id fetched
    assert ("GET", f"/jobs/{JOBS[2]['job_id']}", "fk_test") in api.requests


def test_an_ambiguous_prefix_lists_the_candidates(api: FakeApi, capsys: Any) -> None:
    code, _, err = run(capsys, "status", "aaaaaa")
    assert code == 2
    assert "ambiguous" in err and JOBS[0]["job_id"] in err and JOBS[1]["job_id"] in err
    assert not any(path.startswith("/jobs/") for _, path, _ in api.requests)


def test_a_short_or_unknown_prefix_is_a_clear_error(api: FakeApi, capsys: Any) -> None:
    code, _, err = run(capsys, "status", "aaaaa")  # under 6: sent as is, the API says 404
    assert code == 1 and "404" in err and ("GET", "/jobs/aaaaa", "fk_test") in api.requests
    code, _, err = run(capsys, "events", "ffffff")
    assert code == 2 and "no job id starts with ffffff" in err
    code, out, _ = run(capsys, "endpoints", "show", "eeeeee", "--json")
    assert code == 0 and json.loads(out)["endpoint_id"] == ENDPOINT["endpoint_id"]


def test_resolve_id_for_routes_and_full_ids() -> None:
    class Client:  # the one method resolve_id uses, answering like the API
        def request(self, method: str, path: str, **_: Any) -> Any:
            assert path == "/routes"
            return {"items": [{"route_id": "cccccc11-0000-4000-8000-000000000009"}]}

    client: Any = Client()
    assert resolve_id(client, "route", "CCCCCC11") == "cccccc11-0000-4000-8000-000000000009"
    full = "dddddddd-0000-4000-8000-000000000000"
    assert resolve_id(client, "job", full) == full  # a full id is never looked up
    assert resolve_id(client, "route", "cccc;drop") == "cccc;drop"  # not an id: the API says
    with pytest.raises(CliError, match="no route id starts with dddddd"):
        resolve_id(client, "route", "dddddd")


def test_tables_show_eight_character_ids_and_route(api: FakeApi, capsys: Any) -> None:
    code, out, _ = run(capsys, "jobs")
    assert code == 0
    assert "aaaaaa22 " in out and JOBS[1]["job_id"] not in out
    assert "cccccc11" in out  # the route column
    assert "route" in out.splitlines()[1]


# --------------------------------------------------------------------------- escaping


def test_values_are_never_read_as_markup(api: FakeApi, capsys: Any) -> None:
    code, out, _ = run(capsys, "endpoints", "show", "eeeeee11")
    assert code == 0
    flat = "".join(out.split())
    assert "".join(SECRET_ARN.split()) in flat  # ':secret:' stays text, never an emoji
    assert "🤫" not in out and "😄" not in out
    assert "[bold]partner[/bold]:smile:" in flat
    code, out, _ = run(capsys, "jobs")
    assert "[red]boom[/]" in out


def test_the_one_cell_helper_says_none_the_same_way_everywhere() -> None:
    from ferry.cli_common import cell

    assert cell(None).plain == cell("").plain == "-"
    assert cell({"a": 1}).plain == '{"a": 1}'
    assert cell("[b]x[/b] :secret:").plain == "[b]x[/b] :secret:"


# --------------------------------------------------------------------------- config discovery


def test_config_is_found_from_any_directory(api: FakeApi, tmp_path: Path) -> None:
    """What `ferry up` writes to the user config dir is found from another directory, with no
    --data-dir; --data-dir and FERRY_API_URL/KEY still override it."""
    xdg = tmp_path / "xdg2"
    (xdg / "ferry").mkdir(parents=True)
    (xdg / "ferry" / "config.json").write_text(
        json.dumps({"api_url": api.url, "api_key": "fk_from_xdg"})
    )
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.update(XDG_CONFIG_HOME=str(xdg), PYTHONPATH=str(REPO))

    def ferry(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ferry.cli", *args],
            cwd=elsewhere,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = ferry("jobs", "--json")
    assert done.returncode == 0, done.stderr
    assert api.requests[-1][2] == "fk_from_xdg"
    other = tmp_path / "other-stack"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"api_url": api.url, "api_key": "fk_dd"}))
    assert ferry("jobs", "--json", "--data-dir", str(other)).returncode == 0
    assert api.requests[-1][2] == "fk_dd"
    assert ferry("jobs", "--json", FERRY_API_KEY="fk_env").returncode == 0
    assert api.requests[-1][2] == "fk_env"
    missing = ferry("jobs", XDG_CONFIG_HOME=str(tmp_path / "empty"))
    assert missing.returncode == 2 and "no API configured" in missing.stderr


def test_ferry_up_publishes_its_config_and_removes_only_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ferry.local.stack import StackInfo

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    info = StackInfo("http://127.0.0.1:1", "fk_a", "http://127.0.0.1:2", "us-east-1", tmp_path)
    path = cli.publish_user_config(info)
    assert path == tmp_path / "ferry" / "config.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(path.read_text())["api_key"] == "fk_a"
    newer = StackInfo("http://127.0.0.1:3", "fk_b", "http://127.0.0.1:4", "us-east-1", tmp_path)
    cli.publish_user_config(newer)  # a second `ferry up` since
    cli.unpublish_user_config(path, info)
    assert json.loads(path.read_text())["api_key"] == "fk_b"  # not ours any more: kept
    cli.unpublish_user_config(path, newer)
    assert not path.exists()


# --------------------------------------------------------------------------- busy default port


def test_a_busy_default_port_is_replaced_by_a_free_one(capsys: Any) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        chosen = cli.choose_port(None, taken, "--port")
        assert chosen != taken and chosen > 0
        assert f"port {taken} is in use; --port {chosen} instead" in capsys.readouterr().err
        assert cli.choose_port(taken, 8080, "--port") == taken  # asked for: kept (fails later)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert cli.choose_port(None, free, "--port") == free


# --------------------------------------------------------------------------- help


def _parsers(parser: argparse.ArgumentParser, path: str = "ferry") -> Iterator[tuple[str, Any]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def test_every_option_and_command_has_help() -> None:
    missing = []
    for path, parser in _parsers(cli.build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    if not choice.help:
                        missing.append(f"{path} {choice.dest}")
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_ferry_help_is_one_line_per_command(capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    listing = text.split("COMMAND\n", 1)[1].split("\n\n", 1)[0].splitlines()
    names = [line.split()[0] for line in listing]
    assert {"up", "demo", "endpoints", "transfer", "status", "jobs", "routes"} <= set(names)
    assert all(len(line.split()) > 1 for line in listing), listing  # name and help, one line
    assert "examples:" in text
    for command in ("up", "transfer", "status", "jobs", "events", "cancel", "endpoints"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "examples:" in capsys.readouterr().out, command


# --------------------------------------------------------------------------- watch: rate, ETA


def test_rate_and_eta_for_a_fast_transfer() -> None:
    meter = cli.RateMeter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 2))
    running = {"status": "RUNNING", "bytes_committed": 10_000_000, "bytes_total": 40_000_000,
               "started_at": started}  # fmt: skip
    speed, eta = meter.update(running, now=100.0)  # one poll: the average since it started
    assert speed is not None and 2.5e6 < speed < 5.5e6 and eta  # 10 MB in ~2-3 s
    speed, eta = meter.update({**running, "bytes_committed": 30_000_000}, now=101.0)
    assert speed == pytest.approx(20e6) and eta == "0:00"
    final = {"status": "SUCCEEDED", "bytes_committed": 40_000_000, "bytes_total": 40_000_000,
             "throughput_bytes_per_second": 15e6}  # fmt: skip
    assert cli.RateMeter().update(final, now=5.0) == (15e6, "")  # first poll already final


# --------------------------------------------------------------------------- the stack's files


def test_one_log_per_run_and_no_pids_file_left(tmp_path: Path) -> None:
    from ferry.local.supervisor import Service, Supervisor

    events: list[str] = []
    for run_number in range(1, 6):
        supervisor = Supervisor(tmp_path / "logs", tmp_path, on_event=events.append)
        supervisor.add(
            Service("sleeper", [sys.executable, "-c", f"print('run {run_number}')"
                                "; import time; time.sleep(30)"])
        )  # fmt: skip
        assert (tmp_path / "pids.json").exists()
        time.sleep(0.5)
        supervisor.stop()
        assert not (tmp_path / "pids.json").exists()
    logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert logs == ["sleeper.log", "sleeper.log.1", "sleeper.log.2", "sleeper.log.3"]
    assert "run 5" in (tmp_path / "logs" / "sleeper.log").read_text()
    assert "run 4" in (tmp_path / "logs" / "sleeper.log.1").read_text()
    assert "run 1" not in "".join(p.read_text() for p in (tmp_path / "logs").iterdir())
    assert "stopping sleeper" in events
