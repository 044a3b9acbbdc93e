#!/usr/bin/env bash
# Create .venv and install the workstation with its test tools. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch is pinned to 2.13.0 in pyproject (a CPU wheel on local disk); never let pip resolve another one.
.venv/bin/python -m pip install -q -e ".[test,server]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import workstation, pydicom, PySide6, pyqtgraph; print('workstation', workstation.__version__, 'installed in .venv')"
