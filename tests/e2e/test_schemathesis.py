"""The OpenAPI document is the truth (issue 8): schemathesis, with every check it has, against
the local API server (``ferry.local.apiserver``) serving its own ``/openapi.json``, in front of
the four real API functions (in-memory adapters, see ``tests/support/edge.py``).

A bounded number of examples per operation (``FERRY_SCHEMATHESIS_EXAMPLES``, default 10) within a
time budget (``FERRY_SCHEMATHESIS_SECONDS``, default 120), positive and negative data, the
examples/coverage/fuzzing phases; ``schemathesis.toml`` beside this file says where a 4xx is an
acceptable answer to schema-valid data (rules JSON Schema cannot state). Passes only with 0 5xx and 0 failures
of any check (status codes, content types, response schemas, negative-data rejection, …).
The counts are printed: requests, 2xx, 4xx, 5xx.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.support.edge import build_edge, serve

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

EXAMPLES = int(os.environ.get("FERRY_SCHEMATHESIS_EXAMPLES", "10"))
BUDGET_SECONDS = os.environ.get("FERRY_SCHEMATHESIS_SECONDS", "120")
CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_schemathesis_finds_no_5xx_and_no_conformance_failure(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    if not cli.exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    edge = build_edge(with_history=True)  # GETs by id can answer 200 (and be checked)
    config = tmp_path / "schemathesis.toml"
    ids = edge.ids
    config.write_text(
        CONFIG.read_text()
        + "\n[dictionaries.endpoints]\n"
        + f'values = ["{ids["endpoint_id"]}"]\n'
        + "[dictionaries.jobs]\n"
        + f'values = ["{ids["job_id"]}"]\n'
        + "\n[parameters]\n"
        + '"path.endpoint_id" = { dictionary = "endpoints", probability = 0.5 }\n'
        + '"path.job_id" = { dictionary = "jobs", probability = 0.5 }\n'
    )
    with serve(edge) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", "NO_COLOR": "1"})
        run = subprocess.run(
            [
                str(cli),
                "--config-file",
                str(config),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(EXAMPLES),
                "--phases",
                "examples,coverage,fuzzing",
                "--header",
                f"x-api-key: {edge.key}",
                "--seed",
                "8",
                "--workers",
                "1",
                "--max-time",
                BUDGET_SECONDS,
                "--request-timeout",
                "30",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,  # its .schemathesis cache stays out of the repository
            timeout=360,
        )
    counts = Counter(f"{s // 100}xx" for s in edge.statuses)
    summary = (
        f"schemathesis: {len(edge.statuses)} requests, 2xx {counts['2xx']}, "
        f"4xx {counts['4xx']}, 5xx {counts['5xx']}"
    )
    print("\n" + summary)
    tail = "\n".join(run.stdout.splitlines()[-60:])
    assert counts["5xx"] == 0, f"{summary}\n{tail}"
    assert run.returncode == 0, f"{summary}\n{tail}\n{run.stderr[-2000:]}"
