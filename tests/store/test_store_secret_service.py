"""The real OS keyring: gnome-keyring's Secret Service on a private D-Bus session, picked by keyring itself.

CI installs gnome-keyring, dbus and libsecret-tools (.ci/run); the test skips, saying so, only where
dbus-run-session or gnome-keyring-daemon is missing (a missing secret-tool fails it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from store_helpers import STORE_FILES

HERE = Path(__file__).parent
MISSING = [tool for tool in ("dbus-run-session", "gnome-keyring-daemon") if shutil.which(tool) is None]


@pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed (apt-get install gnome-keyring dbus "
                                            "dbus-bin libsecret-tools); CI installs them")
def test_the_key_lives_in_the_secret_service_and_nowhere_in_the_store_folder(tmp_path):
    data, home = tmp_path / "data", tmp_path / "home"
    data.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHON_KEYRING_BACKEND", "DBUS_SESSION_BUS_ADDRESS", "GNOME_KEYRING_CONTROL")}
    # a fresh home: gnome-keyring's login keyring, keyring's config and any plaintext keyring file live under it
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
               XDG_RUNTIME_DIR=str(home / "run"), PYTHONPATH=str(HERE))
    (home / "run").mkdir(parents=True, mode=0o700)
    script = (
        'eval "$(printf pw | gnome-keyring-daemon --unlock --components=secrets)" && '
        f"{shlex.quote(sys.executable)} {shlex.quote(str(HERE / 'secret_service_check.py'))} {shlex.quote(str(data))} && "
        'echo "key=$(secret-tool lookup service radiology-workstation username store-key)"'
    )
    done = subprocess.run(["dbus-run-session", "--", "bash", "-c", script], env=env, cwd=HERE,
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    result = json.loads(next(line for line in lines if line.startswith("{")))
    assert result == {"backend": "keyring.backends.SecretService.Keyring", "entries": 6, "feedback": 1, "ok": True}
    key = next(line for line in lines if line.startswith("key="))[4:]
    assert re.fullmatch(r"[0-9a-f]{64}", key), f"secret-tool found no store key: {key!r}\n{done.stderr}"

    raw = bytes.fromhex(key)
    for path in sorted(data.iterdir()):
        content = path.read_bytes()
        for needle in (key.encode(), key.upper().encode(), raw):
            assert needle not in content, f"the store key is in {path.name}"
    assert {p.name for p in data.iterdir()} == STORE_FILES
    assert not list(home.rglob("keyring_pass.cfg"))  # no plaintext keyring file was used
    for path in _files(home):  # gnome-keyring's own file keeps it encrypted
        assert key.encode() not in _read(path), f"the store key is in clear in {path}"


def _files(root: Path) -> list[Path]:
    """Files under root that stay: gnome-keyring-daemon outlives dbus-run-session by a moment and removes its
    runtime folder (run/keyring) as it exits, so a folder may vanish while it is walked."""
    files = []
    for folder, _, names in os.walk(root, onerror=lambda error: None):
        files += [Path(folder) / name for name in names if (Path(folder) / name).is_file()]
    return files


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:  # the daemon's runtime files go with it
        return b""
