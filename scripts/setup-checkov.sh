#!/usr/bin/env bash
# Creates .venv-checkov with checkov, separate from .venv (moto, cfn-lint) so neither moves the other's pins.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-checkov/bin/python ]; then
  python3 -m venv .venv-checkov
fi
if ! .venv-checkov/bin/checkov --version 2>/dev/null | grep -qx "$(sed -n 's/^checkov==//p' requirements-checkov.txt)"; then
  .venv-checkov/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
fi
.venv-checkov/bin/checkov --version
