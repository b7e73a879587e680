#!/usr/bin/env bash
# Runs Ferry's whole test suite on a fresh machine: installs what the tests need (OpenSSH sshd for
# the real-SFTP tests, a virtualenv with Ferry and its dev/infra extras), then lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null
  fi
fi
# Headless Chromium + its WebDriver for the console's browser tests (Debian packages: no browser
# download at test time).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
fi
FERRY_EXTRAS=dev,infra bash scripts/setup.sh
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1
echo "== ruff"; .venv/bin/ruff check .
echo "== ruff format --check"; .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy events services ferry infra
echo "== import boundaries"; .venv/bin/lint-imports --no-cache
echo "== contract schemas"; .venv/bin/python -m events.schema_gen --check
echo "== pytest"
set +e
# Two workers, one per core (moto server and sshd are per worker); --dist loadfile keeps a module
# on one worker, so an e2e module starts its local stack once. `-n 0` after it runs serially.
.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "pytest collected no tests"; exit 1; fi
exit "$rc"
