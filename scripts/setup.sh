#!/usr/bin/env bash
# Shared set-up for scripts/demo.sh and scripts/test.sh: a virtualenv with Ferry installed.
# Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.ferry-installed
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)-${FERRY_EXTRAS:-dev}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installing Ferry into .venv (log: .venv/install.log) ..." >&2
  if ! { .venv/bin/python -m pip install --upgrade pip &&
         .venv/bin/python -m pip install -e ".[${FERRY_EXTRAS:-dev}]"; } > .venv/install.log 2>&1; then
    tail -n 30 .venv/install.log >&2
    echo "pip install failed: see .venv/install.log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
