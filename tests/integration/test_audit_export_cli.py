"""``ferry audit export`` and ``ferry audit verify --export`` on moto server: a scripted history
of two customers in the event store (DynamoDB over HTTP), exported to a directory and to S3, then
checked offline; an edited export fails the check with the file and line named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from ferry.cli import main
from services.projections.samples import History
from tests.support.history_store import (
    build_on_moto,
    published,
    seed_event_store,
    use_cli_env,
)
from tests.support.moto_server import unique_name

pytestmark = pytest.mark.usefixtures("aws_env")

SINCE, UNTIL = "2026-11-01T00:00:00Z", "2026-12-31T23:59:59Z"


class Store:
    """acme: two endpoints, three jobs; globex: one job — in the event store, sealed on append."""

    def __init__(self, env: dict[str, str]) -> None:
        self.s3 = boto3.client("s3")
        h = History()
        src, dst = h.endpoint("acme", endpoint_type="s3"), h.endpoint("acme")
        for outcome in ("succeeded", "failed", "succeeded"):
            h.job("acme", src, dst, outcome=outcome)
        h.job("globex", h.endpoint("globex"), h.endpoint("globex"))
        self.history = h
        self.table, self.keys_table = seed_event_store(h, ["acme", "globex"])
        self.bucket = unique_name("auditexport")
        self.s3.create_bucket(Bucket=self.bucket)
        self.env = {
            **env,
            "FERRY_EVENTS_TABLE": self.table,
            "FERRY_API_KEYS_TABLE": self.keys_table,
            "FERRY_AUDIT_BUCKET": unique_name("audit"),
        }

    def published(self, customer: str) -> int:
        return published(self.history, customer)


@pytest.fixture(scope="module")
def store(moto_server: str) -> Store:
    return build_on_moto(moto_server, Store)


@pytest.fixture
def cli_env(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_cli_env(store.env, tmp_path, monkeypatch)


def _export(capsys: Any, *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["audit", "export", "--since", SINCE, "--until", UNTIL, "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)["exports"]


def test_one_customer_to_a_directory_verifies_offline(
    store: Store, cli_env: Path, capsys: Any
) -> None:
    target = cli_env / "export"
    exports = _export(capsys, "--customer", "acme", "--to", str(target))
    assert list(exports) == ["acme"]
    assert exports["acme"]["count"] == store.published("acme") > 0
    files = sorted(p.name for p in target.iterdir())
    assert "manifest.json" in files
    assert files[:-1] == sorted(exports["acme"]["files"])
    lines = [
        json.loads(line) for name in exports["acme"]["files"] for line in (target / name).open()
    ]
    assert len(lines) == exports["acme"]["count"]
    assert {line["detail"]["customer_id"] for line in lines} == {"acme"}  # never globex's
    assert {"id", "detail-type", "source", "time", "detail", "ferry-chain"} <= set(lines[0])
    capsys.readouterr()
    assert main(["audit", "verify", "--export", str(target)]) == 0
    assert "verifies" in capsys.readouterr().out


def test_every_customer_to_s3_one_folder_each_and_verify_reads_s3(
    store: Store, cli_env: Path, capsys: Any
) -> None:
    exports = _export(capsys, "--to", f"s3://{store.bucket}/ferry/audit")
    assert sorted(exports) == ["acme", "globex"]
    for customer, result in exports.items():
        prefix = f"ferry/audit/{customer}/"
        assert result["location"] == f"s3://{store.bucket}/{prefix}manifest.json"
        manifest = store.s3.get_object(Bucket=store.bucket, Key=prefix + "manifest.json")
        assert json.loads(manifest["Body"].read())["customer_id"] == customer
        capsys.readouterr()
        url = f"s3://{store.bucket}/{prefix}"
        assert main(["audit", "verify", "--export", url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["ok"] is True


def test_an_edited_export_fails_naming_the_file_and_line(
    store: Store, cli_env: Path, capsys: Any
) -> None:
    target = cli_env / "export"
    exports = _export(capsys, "--customer", "acme", "--to", str(target))
    name = exports["acme"]["files"][0]
    path = target / name
    lines = path.read_text().splitlines(keepends=True)
    edited = json.loads(lines[1])
    edited["time"] = "2026-11-02T00:00:00Z"  # a line's time changed
    lines[1] = json.dumps(edited) + "\n"
    path.write_text("".join(lines))
    capsys.readouterr()
    assert main(["audit", "verify", "--export", str(target), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    first = report["first_problem"]
    assert first["file"] == name, report
    assert main(["audit", "verify", "--export", str(target)]) == 1
    assert "BROKEN" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--since", "2026-11-01", "--until", UNTIL, "--to", "x"], "--since"),
        (["--since", UNTIL, "--until", SINCE, "--to", "x"], "--since"),
        (["--since", SINCE, "--until", UNTIL, "--to", "s3://No_Such/x"], "--to"),
        (["--since", SINCE, "--until", UNTIL, "--to", "ftp://host/x"], "--to"),
        (["--since", SINCE, "--until", UNTIL, "--to", "s3://bucket/../x"], "--to"),
        (["--since", SINCE, "--until", UNTIL, "--customer", "", "--to", "x"], "--customer"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(
    cli_env: Path, capsys: Any, args: list[str], option: str
) -> None:
    capsys.readouterr()
    assert main(["audit", "export", *args]) == 2
    assert option in capsys.readouterr().err
    assert not (cli_env / "x").exists()  # nothing written


def test_verify_export_of_a_missing_directory_or_with_other_options_exits_2(
    cli_env: Path, capsys: Any
) -> None:
    assert main(["audit", "verify", "--export", str(cli_env / "nothing")]) == 2
    assert main(["audit", "verify", "--export", str(cli_env), "--customer", "acme"]) == 2
    assert "--export" in capsys.readouterr().err
