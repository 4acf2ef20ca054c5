#!/usr/bin/env bash
# Creates the project-local Python venv with moto (AWS emulation on loopback) and cfn-lint.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
.venv/bin/moto_server --help >/dev/null
.venv/bin/cfn-lint --version
