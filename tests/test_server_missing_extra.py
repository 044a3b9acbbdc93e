"""`workstation-server` installed without the `server` extra: one line saying which extra to install, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# The console script's own code, run with the extra's modules made unimportable (None in sys.modules
# makes `import sqlalchemy` raise ModuleNotFoundError, as on an install without the extra).
_RUN = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
from workstation.server.cli import main
sys.exit(main({argv!r}))
"""


def _run(blocked: list[str], argv: list[str]) -> subprocess.CompletedProcess:
    code = _RUN.format(blocked=blocked, argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argv", [["issue-code", "ws-1"], ["serve"], ["--help"]])
def test_missing_sqlalchemy_names_the_extra(argv: list[str]) -> None:
    done = _run(["sqlalchemy"], argv)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "pip install 'workstation[server]'" in done.stderr
    assert "sqlalchemy" in done.stderr


def test_missing_uvicorn_at_serve_names_the_extra(tmp_path: Path) -> None:
    done = _run(["uvicorn"], ["serve", "--database", f"sqlite:///{tmp_path / 'x.sqlite'}"])
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "pip install 'workstation[server]'" in done.stderr and "uvicorn" in done.stderr


def test_other_missing_modules_are_not_hidden() -> None:
    """Only the extra's own modules get the hint; a bug elsewhere still shows its traceback."""
    code = "import sys; sys.modules['workstation.server.auth'] = None; import workstation.server.cli"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr
