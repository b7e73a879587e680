"""cdk-nag, cfn-lint, no dangling handler strings, no CDK in Lambda bundles, `python -m infra`."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match

from ferry.names import ResourceNames
from infra.constructs import audit, audit_exports, notifications, routes, sla
from infra.constructs import services as svc
from infra.constructs.api import ROUTES
from infra.constructs.code import LAYER_DIR, REPO_ROOT, RUNTIME_PACKAGES, layer_requirements
from infra.nag import STACK_SUPPRESSIONS, iam_suppressions
from tests.infra.conftest import EAST, WEST, Synth

NAMES = ResourceNames("ferry")
CDK_DISTRIBUTIONS = ("aws-cdk-lib", "aws_cdk", "constructs", "cdk-nag", "cdk_nag", "jsii")


# --- cdk-nag -------------------------------------------------------------------------------


@pytest.mark.parametrize("region", [WEST, EAST])
def test_cdk_nag_aws_solutions_pass(synth: Synth, region: str) -> None:
    stack = synth.stacks[region]
    annotations = Annotations.from_stack(stack)
    errors = annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    warnings = annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert not errors, [e.entry.data for e in errors][:5]
    assert not warnings, [w.entry.data for w in warnings][:5]


def test_cdk_nag_global_tables_mode_passes(synth_global: Synth) -> None:
    for stack in synth_global.stacks.values():
        errors = Annotations.from_stack(stack).find_error(
            "*", Match.string_like_regexp("AwsSolutions-.*")
        )
        assert not errors, [e.entry.data for e in errors][:5]


def test_every_suppression_is_justified(synth: Synth) -> None:
    for rule, reason in STACK_SUPPRESSIONS.items():
        assert rule.startswith("AwsSolutions-") and len(reason) >= 40, rule
    metadata = synth.template_json()["Metadata"]["cdk_nag"]["rules_to_suppress"]
    assert all(len(s["reason"]) >= 40 for s in metadata)
    # IAM findings are suppressed finding by finding (applies_to), never wholesale
    for s in metadata:
        if s["id"] in ("AwsSolutions-IAM4", "AwsSolutions-IAM5"):
            assert s.get("applies_to"), s
    assert {s["id"] for s in metadata} == set(STACK_SUPPRESSIONS) | set(iam_suppressions(NAMES))


# --- cfn-lint ------------------------------------------------------------------------------


def test_cfn_lint_passes_on_every_template(synth: Synth, synth_global: Synth) -> None:
    """No error and no warning (bar CFN_LINT_IGNORED) in any template, each for its region.

    The conftest starts cfn-lint on each template right after synthesis; this collects it."""
    lint = synth.lint + synth_global.lint
    assert len(lint) == 6  # two regional templates and one event-schema nested stack each
    failures = []
    for path, proc in lint:
        out, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failures.append(f"{path.parent.name}/{path.name}:\n{out}")
    assert not failures, "\n".join(failures)


# --- no dangling handler strings ------------------------------------------------------------

HANDLER_ENTRIES = sorted(
    {entry for _, _, entry in ROUTES}
    | {svc.PROCESS_MANAGER_HANDLER, svc.CONSUMER_HANDLER, svc.PUBLISHER_HANDLER}
    | {svc.ENDPOINT_CHECKS_HANDLER}
    | {routes.ROUTES_API_HANDLER, routes.ROUTES_PUSH_HANDLER, routes.ROUTES_CONSUMER_HANDLER}
    | {sla.SLOW_CHECK_HANDLER}
    | {notifications.FANOUT_HANDLER, notifications.DELIVER_HANDLER}
    | {audit.CHECKPOINT_HANDLER}
    | {audit_exports.EXPORTER_HANDLER}
)


@pytest.mark.parametrize("entry", HANDLER_ENTRIES)
def test_handler_modules_import_and_are_callable(entry: str) -> None:
    path, _, attr = entry.partition(":")
    assert (REPO_ROOT / path).exists(), f"{path} is referenced by infra but missing"
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    assert callable(getattr(module, attr)), entry


def test_synthesized_handlers_are_exactly_the_tested_ones(synth: Synth) -> None:
    handlers = {
        r["Properties"]["Handler"]
        for r in synth.template_json()["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Handler", "").startswith(RUNTIME_PACKAGES)
    }
    expected = {
        e.partition(":")[0].removesuffix(".py").replace("/", ".") + ".handler"
        for e in HANDLER_ENTRIES
    }
    assert handlers == expected


def test_executor_entry_point_exists() -> None:
    module = importlib.import_module(f"{svc.EXECUTOR_MODULE}.__main__")
    assert callable(module.main)
    assert (REPO_ROOT / "services/executor/Dockerfile").exists(), "the executor image's Dockerfile"


def test_executor_image_is_the_dockerfile_asset(synth: Synth) -> None:
    if not (REPO_ROOT / "services/executor/Dockerfile").exists():
        pytest.fail("services/executor/Dockerfile missing: the default image asset cannot build")
    assets = json.loads(
        (synth.outdir / f"{synth.stacks[WEST].artifact_id}.assets.json").read_text()
    )
    [image] = assets["dockerImages"].values()
    assert image["source"]["dockerFile"] == "services/executor/Dockerfile"
    staged = synth.outdir / image["source"]["directory"]
    assert (staged / "services/executor/Dockerfile").exists()
    assert not (staged / "infra").exists() and not (staged / "tests").exists()


# --- Lambda bundles don't ship CDK ----------------------------------------------------------


def _lambda_asset_dirs(synth: Synth) -> list[Path]:
    t = synth.template_json()
    assets = json.loads(
        (synth.outdir / f"{synth.stacks[WEST].artifact_id}.assets.json").read_text()
    )
    dirs = set()
    for r in t["Resources"].values():
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("Handler", "").startswith(
            RUNTIME_PACKAGES
        ):
            key = r["Properties"]["Code"]["S3Key"]
            dirs.add(assets["files"][key.removesuffix(".zip")]["source"]["path"])
    return [synth.outdir / d for d in sorted(dirs)]


def test_lambda_asset_is_the_runtime_packages_only(synth: Synth) -> None:
    [asset] = _lambda_asset_dirs(synth)  # one shared code asset
    top = {p.name for p in asset.iterdir()}
    assert top == set(RUNTIME_PACKAGES), top
    files = [p.relative_to(asset).as_posix() for p in asset.rglob("*")]
    assert not any(f.startswith(("infra", "tests", ".venv", "cdk.out")) for f in files)
    assert not any("__pycache__" in f for f in files)
    assert not any(d in f for f in files for d in ("aws_cdk", "cdk_nag", "jsii"))
    assert "events/publisher.py" in files and "services/jobs/process_manager.py" in files
    # and no runtime package imports CDK
    for f in files:
        if f.endswith(".py"):
            text = (asset / f).read_text()
            assert "import aws_cdk" not in text and "from aws_cdk" not in text, f


def test_layer_requirements_are_pyprojects_runtime_deps_without_cdk() -> None:
    import tomllib

    reqs = layer_requirements()
    assert not any(r.lower().startswith(CDK_DISTRIBUTIONS) for r in reqs)
    assert any(r.startswith("eventsourcing") for r in reqs)
    assert any(r.startswith("aws-lambda-powertools") for r in reqs)
    assert not any(r.startswith(("moto", "rich")) for r in reqs)
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert set(reqs) <= set(deps)
    assert not any("cdk" in d for d in deps), "CDK must stay in the optional 'infra' group"
    assert {p.name for p in LAYER_DIR.iterdir()} == {"README.md"}  # nothing to go stale


# --- `python -m infra` ---------------------------------------------------------------------


def test_python_m_infra_synthesizes_offline(tmp_path: Path) -> None:
    env = {**os.environ, "CDK_OUTDIR": str(tmp_path), "CDK_VALIDATION": "false"}
    env.pop("AWS_ACCESS_KEY_ID", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra",
            "-c",
            "bundle=false",
            "-c",
            "executor_image=ecr:ferry-executor:ci",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest: dict[str, Any] = json.loads((tmp_path / "manifest.json").read_text())
    stacks = {
        k for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack"
    }
    assert stacks == {f"Ferry-{WEST}", f"Ferry-{EAST}"}


def test_handlers_import_from_the_lambda_bundle_alone(synth: Synth) -> None:
    """Each handler imports from the asset directory (not the repo) with only the layer's kind of
    dependencies: nothing a Lambda needs was left out of the bundle (e.g. by ferry/local/)."""
    [asset] = _lambda_asset_dirs(synth)
    modules = [e.partition(":")[0].removesuffix(".py").replace("/", ".") for e in HANDLER_ENTRIES]
    script = f"""
import importlib, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path[:] = [{str(asset)!r}] + [p for p in sys.path if "site-packages" in p or "python3" in p]
for name in {modules!r}:
    module = importlib.import_module(name)
    assert module.__file__.startswith({str(asset)!r}), module.__file__
    assert callable(module.handler), name
for banned in ("aws_cdk", "cdk_nag", "moto", "ferry.local"):
    assert banned not in sys.modules, banned
print("ok")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=asset, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_cdk_json_runs_the_same_app_as_python_m_infra() -> None:
    """`npx aws-cdk@^2 synth` from infra/ runs `python -P -m infra` (-P: infra/constructs must
    not shadow the constructs library) with the same feature flags."""
    from infra.app import FEATURE_FLAGS

    cdk_json = json.loads((REPO_ROOT / "infra" / "cdk.json").read_text())
    assert " -P -m infra" in cdk_json["app"]
    for flag, value in FEATURE_FLAGS.items():
        assert cdk_json["context"][flag] == value, flag
