"""ferry endpoints validate|retire|enable|add --role-arn: the right API calls and exit codes
(a fake API client in place of ferry.cli.ApiClient)."""

from __future__ import annotations

from typing import Any

import pytest

from ferry import cli


class FakeClient:
    def __init__(self, answers: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> Any:
        self.calls.append((method, path, body))
        queue = self.answers[(method, path)]
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    holder: dict[str, FakeClient] = {}

    def install(answers: dict[tuple[str, str], list[dict[str, Any]]]) -> FakeClient:
        holder["client"] = FakeClient(answers)
        monkeypatch.setattr(
            cli.ApiClient, "from_args", classmethod(lambda cls, a: holder["client"])
        )
        monkeypatch.setattr(cli.time, "sleep", lambda s: None)
        return holder["client"]

    return install


def ep(status: str, version: int = 3, **extra: Any) -> dict[str, Any]:
    return {"endpoint_id": "e1", "status": status, "version": version, **extra}


def test_validate_posts_and_reports_the_rerun(
    fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    client = fake({("POST", "/endpoints/e1/validate"): [ep("PENDING_VALIDATION")]})
    assert cli.main(["endpoints", "validate", "e1"]) == 0
    assert client.calls == [("POST", "/endpoints/e1/validate", None)]
    assert "PENDING_VALIDATION (validation re-run" in capsys.readouterr().out


def test_validate_wait_exits_non_zero_unless_active(fake: Any) -> None:
    fake(
        {
            ("POST", "/endpoints/e1/validate"): [ep("PENDING_VALIDATION", 4)],
            ("GET", "/endpoints/e1"): [
                ep("VALIDATION_FAILED", 3),  # the read model before the request: not the answer
                ep("PENDING_VALIDATION", 4),
                ep("VALIDATION_FAILED", 5, status_reason="ACCESS_DENIED: not granted"),
            ],
        }
    )
    assert cli.main(["endpoints", "validate", "e1", "--wait", "5"]) != 0
    fake(
        {
            ("POST", "/endpoints/e1/validate"): [ep("PENDING_VALIDATION", 4)],
            ("GET", "/endpoints/e1"): [ep("ACTIVE", 5)],
        }
    )
    assert cli.main(["endpoints", "validate", "e1", "--wait", "5"]) == 0


def test_enable_of_a_failed_endpoint_says_it_revalidates(
    fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake({("POST", "/endpoints/e1/enable"): [ep("PENDING_VALIDATION")]})
    assert cli.main(["endpoints", "enable", "e1"]) == 0
    assert "validation re-run" in capsys.readouterr().out
    fake(
        {
            ("POST", "/endpoints/e1/enable"): [ep("PENDING_VALIDATION", 4)],
            ("GET", "/endpoints/e1"): [ep("VALIDATION_FAILED", 5, status_reason="X: y")],
        }
    )
    assert cli.main(["endpoints", "enable", "e1", "--wait", "1"]) != 0


def test_retire_sends_delete(fake: Any, capsys: pytest.CaptureFixture[str]) -> None:
    client = fake({("DELETE", "/endpoints/e1"): [ep("RETIRED")]})
    assert cli.main(["endpoints", "retire", "e1"]) == 0
    assert client.calls == [("DELETE", "/endpoints/e1", None)]
    assert "RETIRED" in capsys.readouterr().out


def test_add_with_role_arn_sends_it_and_prints_the_external_id(
    fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    role = "arn:aws:iam::111122223333:role/ferry-access"
    client = fake({("POST", "/endpoints"): [ep("PENDING_VALIDATION", 1, external_id="ferry-0a1b")]})
    argv = ["endpoints", "add", "--name", "n", "--type", "s3", "--bucket", "b", "--role-arn", role]
    assert cli.main(argv) == 0
    assert client.calls[0][2]["role_arn"] == role
    assert "ferry-0a1b" in capsys.readouterr().out


def test_add_help_documents_the_trust_policy(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["endpoints", "add", "--help"])
    text = capsys.readouterr().out
    assert '"sts:ExternalId"' in text and "sts:AssumeRole" in text and "ferry:customer" in text


@pytest.mark.parametrize(
    ("given", "rate"),
    [
        ("20MB/s", 20_000_000),
        ("512KiB/s", 512 * 1024),
        ("1.5GB", 1_500_000_000),
        ("2 MiB/s", 2 * 2**20),
        ("1000000", 1_000_000),
        ("64kb/s", 64_000),
    ],
)
def test_bandwidth_limit_is_sent_in_bytes_per_second(fake: Any, given: str, rate: int) -> None:
    client = fake({("POST", "/endpoints"): [ep("PENDING_VALIDATION")]})
    argv = ["endpoints", "add", "--name", "out", "--type", "s3", "--bucket", "b"]
    assert cli.main([*argv, "--bandwidth-limit", given]) == 0
    assert client.calls[0][2]["bandwidth_limit"] == rate


@pytest.mark.parametrize("given", ["fast", "20Mbit/s", "-5MB/s", "none", "10 MB per s"])
def test_a_bad_bandwidth_limit_names_the_option_and_sends_nothing(
    fake: Any, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    client = fake({("POST", "/endpoints"): [ep("PENDING_VALIDATION")]})
    argv = ["endpoints", "add", "--name", "out", "--type", "s3", "--bucket", "b"]
    assert cli.main([*argv, f"--bandwidth-limit={given}"]) != 0
    assert "--bandwidth-limit" in capsys.readouterr().err
    assert client.calls == []


def test_update_patches_only_what_is_given_and_none_lifts_the_cap(fake: Any) -> None:
    client = fake(
        {
            ("GET", "/endpoints"): [{"endpoints": [ep("ACTIVE")], "next_token": None}],
            ("PATCH", "/endpoints/e1"): [ep("ACTIVE", 4)],
        }
    )
    assert cli.main(["endpoints", "update", "e1", "--bandwidth-limit", "50MB/s"]) == 0
    assert client.calls[-1] == ("PATCH", "/endpoints/e1", {"bandwidth_limit": 50_000_000})
    assert cli.main(["endpoints", "update", "e1", "--bandwidth-limit", "none"]) == 0
    assert client.calls[-1] == ("PATCH", "/endpoints/e1", {"bandwidth_limit": None})
    assert cli.main(["endpoints", "update", "e1", "--max-concurrency", "2"]) == 0
    assert client.calls[-1] == ("PATCH", "/endpoints/e1", {"max_concurrency": 2})


def test_update_reads_a_new_password_from_the_environment_and_never_prints_it(
    fake: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = fake(
        {
            ("GET", "/endpoints"): [{"endpoints": [ep("ACTIVE")], "next_token": None}],
            ("PATCH", "/endpoints/e1"): [ep("ACTIVE", 4)],
        }
    )
    monkeypatch.setenv("PARTNER_PW", "s3cret-rotated")
    assert cli.main(["endpoints", "update", "e1", "--password-env", "PARTNER_PW"]) == 0
    assert client.calls[-1] == ("PATCH", "/endpoints/e1", {"password": "s3cret-rotated"})
    captured = capsys.readouterr()
    assert "s3cret-rotated" not in captured.out + captured.err


def test_update_with_nothing_to_change_is_an_error(
    fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    client = fake({("PATCH", "/endpoints/e1"): [ep("ACTIVE")]})
    assert cli.main(["endpoints", "update", "e1"]) != 0
    assert "nothing to change" in capsys.readouterr().err
    assert client.calls == []
