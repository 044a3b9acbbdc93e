"""Cold start (issue 18): the first picture needs Qt, pyqtgraph, numpy and pydicom, not networking, HTTP,
highdicom, torch or the server's libraries; `--first-paint` (bench/cold_start.py) reports the first slice painted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_data import demo_study  # noqa: F401

from workstation.demo import DemoStudy

NOT_FOR_THE_FIRST_PICTURE = ("pynetdicom", "httpx", "highdicom", "torch", "fastapi", "sqlalchemy",
                             "workstation.services.pacs", "workstation.services.sync", "workstation.results")
STORE = ("keyring", "sqlcipher3", "workstation.store.database", "workstation.services.session")

_PROBE = """
import builtins, sys
watched = {watched!r}
real_print = builtins.print
def watch(*args, **kwargs):
    if args and str(args[0]).startswith("first-paint"):
        real_print("loaded " + ",".join(name for name in watched if name in sys.modules), flush=True)
    return real_print(*args, **kwargs)
builtins.print = watch
from workstation.cli import main
sys.exit(main({argv!r}))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", WORKSTATION_DATA_DIR=str(tmp_path / "data"))
    env.pop("WORKSTATION_CONFIG", None)
    return env


def test_the_window_imports_no_networking_http_store_or_results_libraries(tmp_path: Path) -> None:
    code = ("import sys; import workstation.cli, workstation.ui.app, workstation.ui.main_window; "
            f"print(','.join(n for n in {NOT_FOR_THE_FIRST_PICTURE + STORE!r} if n in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


@pytest.mark.ui
def test_first_paint_comes_before_networking_http_and_results(demo_study: DemoStudy, tmp_path: Path) -> None:
    argv = [str(demo_study.directory), "--first-paint"]
    code = _PROBE.format(watched=NOT_FOR_THE_FIRST_PICTURE, argv=argv)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("first-paint ") and float(line.split()[1]) > 0 for line in lines), done.stdout
    [loaded] = [line for line in lines if line.startswith("loaded")]
    assert loaded.strip() == "loaded", loaded
    assert "Traceback" not in done.stderr
