"""Synthesize the Ferry CDK app once per session (offline: no AWS account, no Docker, no pip)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# CDK's own built-in template validation costs ~40 s per synth; cfn-lint runs in test_cfn_lint.
os.environ.setdefault("CDK_VALIDATION", "false")

# Without the optional 'infra' dependencies the infra tests are not collected - except in CI
# (CI=true), where they must run: .ci/run installs '.[infra]'.
if importlib.util.find_spec("aws_cdk") is None and not os.environ.get("CI"):
    collect_ignore_glob = ["test_*.py"]

WEST, EAST = "us-gov-west-1", "us-gov-east-1"
# W3005 "dependency already enforced by a GetAtt": CDK makes each function DependsOn its role's
# default policy *and* role (so the policy exists before the first invocation); harmless.
CFN_LINT_IGNORED = ("W3005",)
CONSUMER = "111122223333"


@dataclass
class Synth:
    app: Any
    outdir: Path
    stacks: dict[str, Any]  # region -> FerryStack
    lint: list[tuple[Path, subprocess.Popen[str]]] = field(default_factory=list)

    def template(self, region: str = WEST) -> Any:
        from aws_cdk.assertions import Template

        return Template.from_stack(self.stacks[region])

    def template_json(self, region: str = WEST) -> dict[str, Any]:
        return json.loads(
            (self.outdir / f"{self.stacks[region].artifact_id}.template.json").read_text()
        )


#: per-customer limits of the global-tables synth (one synth serves both tests)
LIMITS_CONTEXT = (
    '{"concurrency": 3, "queued_overrides": {"acme": 50}, "daily_bytes": 1000000000000}'
)


def _synth(tmp: Path, context: dict[str, Any]) -> Synth:
    from infra.app import build_app
    from infra.stack import FerryStack

    app = build_app(context, outdir=str(tmp))
    app.synth()
    stacks = {c.region: c for c in app.node.children if isinstance(c, FerryStack)}
    out = Synth(app=app, outdir=tmp, stacks=stacks)
    # cfn-lint takes ~8 s CPU per template: start it now, test_cfn_lint collects the results
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    templates = [(region, tmp / f"{s.artifact_id}.template.json") for region, s in stacks.items()]
    # the event-schema nested stacks are the same in every region: lint one
    nested = sorted(tmp.glob("*.nested.template.json"))
    templates += [(next(iter(stacks)), nested[0])] if nested else []
    for region, path in templates:
        cmd = [str(cfn_lint), "--format", "parseable", "--regions", region]
        cmd += ["--ignore-checks", *CFN_LINT_IGNORED, "--", str(path)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out.lint.append((path, proc))
    return out


def _image() -> str:
    from infra.constructs.code import REPO_ROOT
    from infra.constructs.executor import DOCKERFILE

    # The Dockerfile asset needs no Docker to synthesize, only the file.
    return "asset" if (REPO_ROOT / DOCKERFILE).exists() else "ecr:ferry-executor:test"


def _stop_lint(s: Synth) -> None:
    for _, proc in s.lint:
        if proc.poll() is None:  # not collected (test_cfn_lint deselected)
            proc.kill()
        proc.communicate()


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    """The default deployment: two independent regions."""
    s = _synth(
        tmp_path_factory.mktemp("cdk-regional"),
        {"bundle": "false", "executor_image": _image(), "consumer_accounts": CONSUMER},
    )
    yield s
    _stop_lint(s)


@pytest.fixture(scope="session")
def synth_global(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    """Global tables: home/active region us-gov-west-1, passive us-gov-east-1."""
    s = _synth(
        tmp_path_factory.mktemp("cdk-global"),
        {
            "bundle": "false",
            "executor_image": "ecr:ferry-executor:test",
            "global_tables": "true",
            "customer_limits": LIMITS_CONTEXT,  # tests/infra/test_limits.py
        },
    )
    yield s
    _stop_lint(s)
