#!/bin/sh
# Offline installer of the radiology workstation: runs install.py with this bundle's Python version.
# Usage: ./install --site site.toml [--enrol-code CODE] [--prefix DIR] [--system] ...   (./install --help)
# $PYTHON chooses the interpreter; else @PYTHON@, else python3 (install.py refuses another minor version).
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd) || exit 1
if [ -n "${PYTHON:-}" ]; then
  py=$PYTHON
elif command -v @PYTHON@ >/dev/null 2>&1; then
  py=@PYTHON@
else
  py=python3
fi
exec "$py" "$here/install.py" "$@"
