#!/usr/bin/env bash
# Create .venv with the course installed. Safe to re-run: an up-to-date .venv costs a few seconds.
# torch goes first, pinned to the CPU build: any other torch spec pulls several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 needed ($PYTHON is older)"; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
.venv/bin/python -m pip check
# Offline: JupyterLab never asks to fetch news or check for updates.
mkdir -p .venv/share/jupyter/lab/settings
cp scripts/jupyterlab-overrides.json .venv/share/jupyter/lab/settings/overrides.json
