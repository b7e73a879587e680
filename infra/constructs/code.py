"""Lambda code: the project's runtime packages (no CDK) + a dependencies layer.

The function asset is the repository root filtered down to the runtime packages
(``events``, ``services``, ``ferry``): ``infra/``, ``tests/``, the venv and ``cdk.out`` are never
in it, so no Lambda ships CDK. The dependencies layer is built with ``pip install --target`` on the
host (local bundling, no Docker) when the ``bundle`` context is true; with ``-c bundle=false``
(CI) synthesis never runs pip and the layer asset is infra/layer/ (a README) only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("events", "services", "ferry")
LAYER_DIR = REPO_ROOT / "infra" / "layer"
PYTHON_RUNTIME = lambda_.Runtime.PYTHON_3_11  # == pyproject requires-python / the executor image
ARCHITECTURE = lambda_.Architecture.X86_64
PIP_PLATFORM = "manylinux2014_x86_64"

# Runtime dependencies that Lambdas never import: the local stack (moto), the CLI (rich), and the
# executor's asyncssh (the executor runs on Fargate from its own image).
NOT_IN_LAYER = frozenset({"moto", "rich", "asyncssh"})

# Glob patterns (gitignore style, in order) for the function asset: exclude everything, then
# re-include the runtime packages; caches and build litter are excluded again.
LAMBDA_ASSET_EXCLUDE = [
    "*",
    ".*",  # "*" does not match dot-names (.git, .venv, caches)
    *[f"!{p}" for p in RUNTIME_PACKAGES],
    *[f"!{p}/**" for p in RUNTIME_PACKAGES],
    "**/__pycache__",
    "**/*.pyc",
    "services/executor/Dockerfile",
    "ferry/local/**",
]

# The executor's Docker build context: the same packages plus pyproject.toml (pip install .).
DOCKER_CONTEXT_EXCLUDE = [
    "*",
    ".*",
    "!pyproject.toml",
    "!README*",
    "!LICENSE*",
    *[f"!{p}" for p in RUNTIME_PACKAGES],
    *[f"!{p}/**" for p in RUNTIME_PACKAGES],
    "**/__pycache__",
    "**/*.pyc",
]


def layer_requirements() -> list[str]:
    """pyproject's runtime dependencies minus those Lambdas never import (single source)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    out = []
    for req in project["dependencies"]:
        name = req.split("[")[0].split(">")[0].split("<")[0].split("=")[0].split("~")[0].strip()
        if name.lower() not in NOT_IN_LAYER:
            out.append(req)
    return out


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """Builds the layer on the host: ``pip install --target <out>/python`` for Lambda's platform."""

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        target = Path(output_dir) / "python"
        cmd = [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
            "--target", str(target),
            "--platform", PIP_PLATFORM, "--implementation", "cp",
            "--python-version", "3.11", "--only-binary=:all:",
            *layer_requirements(),
        ]  # fmt: skip
        try:
            subprocess.run(cmd, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"host pip bundling failed ({exc}); falling back to Docker", file=sys.stderr)
            return False  # CDK then bundles in the Lambda build image (needs Docker)
        for cache in target.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        return True


def function_code() -> lambda_.Code:
    """The runtime packages, without infra/ or any CDK library."""
    return lambda_.Code.from_asset(str(REPO_ROOT), exclude=LAMBDA_ASSET_EXCLUDE)


def dependencies_layer(
    scope: Construct, construct_id: str, *, bundle: bool
) -> lambda_.LayerVersion:
    """pyproject's runtime dependencies as a layer; pip runs on the host only when ``bundle``."""
    if bundle:
        reqs = layer_requirements()
        code = lambda_.Code.from_asset(
            str(LAYER_DIR),
            # the layer changes when the requirements (or the target platform) change
            asset_hash=hashlib.sha256(json.dumps([PIP_PLATFORM, *reqs]).encode()).hexdigest(),
            asset_hash_type=AssetHashType.CUSTOM,
            bundling=BundlingOptions(
                image=PYTHON_RUNTIME.bundling_image,
                local=PipLocalBundling(),
                command=[
                    "pip", "install", "--no-compile", "-t", "/asset-output/python", *reqs,
                ],
            ),
        )  # fmt: skip
    else:
        code = lambda_.Code.from_asset(str(LAYER_DIR))
    return lambda_.LayerVersion(
        scope,
        construct_id,
        code=code,
        compatible_runtimes=[PYTHON_RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        description="Ferry runtime dependencies (pyproject [project].dependencies, no CDK)",
    )
