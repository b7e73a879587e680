#!/usr/bin/env bash
# Sets up Ferry and runs the demo on the local stack: moto server for AWS, every service as its
# own process, the HTTP API on localhost and an embedded SFTP server. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ferry demo "$@"
