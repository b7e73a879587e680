"""ferry transfer / cancel / redrive / status: what the CLI sends and says (a fake API client
standing in for the HTTP API; the parser and the commands are the real ones)."""

from __future__ import annotations

from typing import Any

import pytest

from ferry import cli


class FakeApi:
    def __init__(self, answers: dict[tuple[str, str], list[Any]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> Any:
        self.calls.append((method, path, body))
        queue = self.answers[(method, path)]
        return queue.pop(0) if len(queue) > 1 else queue[0]


def run(monkeypatch: pytest.MonkeyPatch, api: FakeApi, *argv: str) -> int:
    monkeypatch.setattr(cli.ApiClient, "from_args", classmethod(lambda cls, args: api))
    args = cli.build_parser().parse_args(list(argv))
    return int(args.func(args))


JOB = "0b5f3c1e-0000-4000-8000-000000000001"
NEW = "0b5f3c1e-0000-4000-8000-000000000002"


def test_transfer_says_already_submitted_for_a_deduplicated_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = {"job_id": JOB, "status": "RUNNING", "deduplicated": True, "dedupe": "content"}
    api = FakeApi({("POST", "/transfers"): [answer]})
    assert run(monkeypatch, api, "transfer", "--from", "a:in/x", "--to", "b:out/x") == 0
    assert f"already submitted as job {JOB}" in capsys.readouterr().out
    assert "dedupe" not in api.calls[0][2]


def test_no_dedupe_sends_dedupe_false(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = {"job_id": NEW, "status": "QUEUED", "deduplicated": False, "dedupe": "off"}
    api = FakeApi({("POST", "/transfers"): [answer]})
    argv = ("transfer", "--from", "a:in/x", "--to", "b:out/x", "--no-dedupe")
    assert run(monkeypatch, api, *argv) == 0
    assert api.calls[0][2]["dedupe"] is False
    assert capsys.readouterr().out.strip() == f"job {NEW}: QUEUED"


def test_bandwidth_limit_goes_into_the_job_options_in_bytes_per_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer = {"job_id": NEW, "status": "QUEUED", "deduplicated": False, "dedupe": "content"}
    api = FakeApi({("POST", "/transfers"): [answer]})
    argv = ("transfer", "--from", "a:in/x", "--to", "b:out/x", "--bandwidth-limit", "10MiB/s")
    assert run(monkeypatch, api, *argv) == 0
    assert api.calls[0][2]["options"] == {"bandwidth_limit": 10 * 2**20}


def test_redrive_prints_the_new_job_and_its_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = {"job_id": NEW, "redrive_of": JOB, "status": "QUEUED"}
    api = FakeApi({("POST", f"/jobs/{JOB}/redrive"): [answer]})
    assert run(monkeypatch, api, "redrive", JOB) == 0
    assert capsys.readouterr().out.strip() == f"redriven as job {NEW} (QUEUED)"


def test_cancel_of_a_running_job_says_requested(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = {"job_id": JOB, "status": "RUNNING", "cancel_requested": True}
    api = FakeApi({("POST", f"/jobs/{JOB}/cancel"): [answer]})
    assert run(monkeypatch, api, "cancel", JOB) == 0
    assert capsys.readouterr().out.startswith(f"cancel requested for job {JOB} (RUNNING)")


@pytest.mark.parametrize(
    ("final", "note", "code"),
    [
        ({"status": "CANCELLED"}, "cancel: cancelled", 0),
        ({"status": "SUCCEEDED", "cancel_outcome": "too_late"}, "too late: delivered", 1),
    ],
)
def test_cancel_wait_shows_the_final_outcome(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    final: dict[str, Any],
    note: str,
    code: int,
) -> None:
    running = {"job_id": JOB, "status": "RUNNING", "cancel_requested": True}
    done = {**running, **final}
    api = FakeApi(
        {
            ("POST", f"/jobs/{JOB}/cancel"): [running],
            ("GET", f"/jobs/{JOB}"): [running, done],
        }
    )
    assert run(monkeypatch, api, "cancel", JOB, "--wait", "30") == code
    assert note in capsys.readouterr().out


def test_status_shows_too_late(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    job = {"job_id": JOB, "status": "SUCCEEDED", "cancel_requested": True}
    api = FakeApi({("GET", f"/jobs/{JOB}"): [{**job, "cancel_outcome": "too_late"}]})
    assert run(monkeypatch, api, "status", JOB) == 0
    assert "too late: delivered" in capsys.readouterr().out
