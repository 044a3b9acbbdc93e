"""Helpers of the installer tests: building bundles, and a sandboxed "home" with a real OS keyring.

The bundle build may fetch wheels from the package index (cached in $WS_BUNDLE_WHEEL_CACHE, default
~/.cache/workstation-bundle-wheels, so a second build needs no network); tests/conftest.py has moved this test
process into a loopback-only network namespace, so the build runs in the namespace pytest was started in (its
parent's), through nsenter. The installs never leave the private namespace: no network at all.

A Sandbox is a fresh home (HOME and every XDG directory under one temporary folder) with its own D-Bus session and
gnome-keyring unlocked on it: the installed app finds the Secret Service there, as on a desktop, with no keyring
backend chosen for it. Login "it-admin" unless told otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "installer" / "build_bundle.py"
WHEEL_CACHE_ENV = "WS_BUNDLE_WHEEL_CACHE"
KEYRING_SERVICE = "radiology-workstation"
KEYRING_TOOLS = ("dbus-daemon", "dbus-send", "gnome-keyring-daemon", "secret-tool")


def wheel_cache() -> Path:
    return Path(os.environ.get(WHEEL_CACHE_ENV) or Path.home() / ".cache" / "workstation-bundle-wheels")


def host_network(argv: list[str]) -> list[str]:
    """argv run in the network namespace of pytest's parent (the one the session started in), when we left it."""
    parent, own = f"/proc/{os.getppid()}/ns/net", "/proc/self/ns/net"
    nsenter = shutil.which("nsenter")
    try:
        moved = os.stat(parent).st_ino != os.stat(own).st_ino
    except OSError:
        return argv
    return [nsenter, f"--net={parent}", "--", *argv] if nsenter and moved and os.geteuid() == 0 else argv


def build_bundle(out: Path, *extra: str) -> tuple[Path, float]:
    """Run installer/build_bundle.py; the bundle folder and the seconds it took."""
    argv = host_network([sys.executable, str(BUILD), "--out", str(out), "--wheel-cache", str(wheel_cache()), *extra])
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        pytest.fail(f"bundle build failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}", pytrace=False)
    return Path(done.stdout.strip().splitlines()[-1]), time.monotonic() - started


def manifest(bundle: Path) -> dict:
    return json.loads((bundle / "MANIFEST.json").read_text(encoding="utf-8"))


class Sandbox:
    """A fresh home with XDG directories, a private D-Bus session and an unlocked gnome-keyring."""

    def __init__(self, root: Path, login: str = "it-admin") -> None:
        self.root = root
        self.home = root / "home"
        self.data_home = self.home / ".local" / "share"
        self.config_home = self.home / ".config"
        self.cache_home = self.home / ".cache"
        self.runtime = root / "run"
        for folder in (self.data_home, self.config_home, self.cache_home):
            folder.mkdir(parents=True, exist_ok=True)
        self.runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        drop = ("WORKSTATION_", "PYTHON_KEYRING", "DBUS_", "GNOME_KEYRING", "XDG_", "SSH_AUTH_SOCK", "QT_")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        self.env.update(HOME=str(self.home), XDG_DATA_HOME=str(self.data_home), XDG_CONFIG_HOME=str(self.config_home),
                        XDG_CACHE_HOME=str(self.cache_home), XDG_RUNTIME_DIR=str(self.runtime), USER=login,
                        LOGNAME=login, QT_QPA_PLATFORM="offscreen")
        self._procs: list[subprocess.Popen] = []

    # where the app keeps things when nothing overrides it
    @property
    def store(self) -> Path:
        return self.data_home / "workstation" / "store.sqlite"

    @property
    def site_file(self) -> Path:
        return self.config_home / "workstation" / "site.toml"

    @property
    def desktop_file(self) -> Path:
        return self.data_home / "applications" / "radiology-workstation.desktop"

    def start(self) -> Sandbox:
        missing = [tool for tool in KEYRING_TOOLS if shutil.which(tool) is None]
        if missing:
            pytest.fail(f"{', '.join(missing)} not installed: apt-get install gnome-keyring dbus dbus-bin "
                        "libsecret-tools (CI does)", pytrace=False)
        bus = self.runtime / "bus"
        dbus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address=unix:path={bus}",
                                 "--print-address=1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env,
                                text=True, start_new_session=True)
        self._procs.append(dbus)
        self.env["DBUS_SESSION_BUS_ADDRESS"] = dbus.stdout.readline().strip()
        log = open(self.root / "gnome-keyring.log", "wb")
        daemon = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                                  stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                  start_new_session=True)
        self._procs.append(daemon)
        daemon.stdin.write(b"sandbox-password")
        daemon.stdin.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            owner = subprocess.run(["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus",
                                    "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
                                    "string:org.freedesktop.secrets"], capture_output=True, text=True, env=self.env)
            if "boolean true" in owner.stdout:
                return self
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"gnome-keyring did not come up on the sandbox's D-Bus: {(self.root / 'gnome-keyring.log').read_text()}",
                    pytrace=False)

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()

    def run(self, argv: list, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                              env={**self.env, **env}, stdin=subprocess.DEVNULL, cwd=self.root)

    def secret(self, name: str) -> str | None:
        """What the Secret Service holds for the app under `name` (store-key, server-token), or None."""
        done = self.run(["secret-tool", "lookup", "service", KEYRING_SERVICE, "username", name], timeout=30)
        return done.stdout.strip() or None


def install_py(bundle: Path) -> list[str]:
    """The installer as IT runs it: the bundle's `install` wrapper (which picks python3.11)."""
    return [str(bundle / "install")]


def output(done: subprocess.CompletedProcess) -> str:
    return done.stdout + done.stderr
