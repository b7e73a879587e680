#!/usr/bin/env bash
# Shared set-up for scripts/demo.sh and scripts/test.sh: ONE virtualenv (.venv) with Ferry
# installed. Idempotent: re-running installs only when pyproject.toml changed or an extra is
# missing. The extras installed so far are remembered and kept, so switching between demo.sh
# (dev) and test.sh (dev,infra) never reinstalls.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.ferry-installed
hash="$(sha256sum pyproject.toml | cut -d' ' -f1)"
wanted="${FERRY_EXTRAS:-dev}"
have_hash=""
have_extras=""
if [ -f "$stamp" ]; then
  read -r have_hash have_extras < "$stamp" || true
  have_extras="${have_extras#-}"  # the older stamp format: <hash>-<extras>
  if [ -z "$have_extras" ] && [[ "$have_hash" == *-* ]]; then
    have_extras="${have_hash#*-}"
    have_hash="${have_hash%%-*}"
  fi
fi
# every extra wanted now or installed before, sorted and de-duplicated
extras="$(printf '%s\n' ${wanted//,/ } ${have_extras//,/ } | sort -u | paste -sd, -)"
missing=0
for extra in ${wanted//,/ }; do
  case ",$have_extras," in *",$extra,"*) ;; *) missing=1 ;; esac
done
if [ "$have_hash" != "$hash" ] || [ "$missing" = 1 ]; then
  echo "Installing Ferry into .venv with extras [$extras] (log: .venv/install.log) ..." >&2
  if ! { .venv/bin/python -m pip install --upgrade pip &&
         .venv/bin/python -m pip install -e ".[$extras]"; } > .venv/install.log 2>&1; then
    tail -n 30 .venv/install.log >&2
    echo "pip install failed: see .venv/install.log" >&2
    exit 1
  fi
  echo "$hash $extras" > "$stamp"
fi
