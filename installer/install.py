#!/usr/bin/env python3
"""Offline installer of the radiology workstation. Lives in the bundle; standard library only (Python >= 3.11).

    install --site site.toml [--enrol-code CODE] [--prefix DIR] [--system] [--no-doctor] [--dry-run]
    install [--site site.toml] ...          over an existing installation: upgrade (or repair) in place
    install --uninstall [--prefix DIR] [--system] [--purge-data --yes]
    install --verify-bundle                 check the bundle (files, sha256, platform) and exit

Per user (default; no admin rights): the app in ~/.local/share/workstation/app, the site file in
~/.config/workstation/site.toml, the launcher in ~/.local/share/applications (XDG_DATA_HOME / XDG_CONFIG_HOME
are honoured). --system (root): /opt/workstation, /etc/xdg/workstation/site.toml (first of XDG_CONFIG_DIRS),
/usr/local/share/applications (first of XDG_DATA_DIRS) and /usr/local/bin/workstation.

Order of work: the bundle is checked (every file's sha256, the models' weights against their manifests,
Python version, platform, glibc) and the site file is validated with the package's own parser (run from the
bundle's wheel) before anything is written; an error names the key. Then the new version is installed
into its own folder <prefix>/versions/<version>-<time>/ (a virtual environment; pip runs from the bundle's
wheel with --no-index and no pip configuration, so nothing is fetched) and started (`--version`, imports).
Only then is <prefix>/current switched to it (an atomic rename); the previous version is removed after the
switch. Configuration (a different old file is kept as site.toml.bak-<time>), the encrypted store and the
keys in the OS keyring are never touched by an upgrade. The installation is recorded in the audit trail
(software.install / software.upgrade, and config.change when the site file changed), the workstation is
enrolled with --enrol-code, and `workstation doctor` runs last.

Silent unless --interactive: no prompts; one line per step, for logs. Exit codes: 0 installed and every
doctor check passed; 1 failed (the previous installation, if any, is still in place); 2 usage, invalid site
file or bundle (nothing was changed); 3 installed but the doctor reported failures (its output is above);
4 installed but enrolment failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DOCTOR, EXIT_ENROL = 0, 1, 2, 3, 4
BUNDLE_FORMAT = "workstation.bundle/1"
STATE_FORMAT = "workstation.install/1"
STATE = "install.json"
DESKTOP = "radiology-workstation.desktop"
DESKTOP_MARKER = "X-Radiology-Workstation-Installed-By=install.py"
ICON = "radiology-workstation.svg"
LAUNCHER_MARKER = "# radiology workstation launcher (written by install.py)"
VALIDATOR = r"""
import json, sys, tomllib
sys.path.insert(0, sys.argv[1])  # the workstation wheel: its pure-Python site checks, nothing else
from workstation.core.site import ConfigError
from workstation.services.site_check import check_site_data
try:
    check_site_data(tomllib.loads(open(sys.argv[2], encoding="utf-8").read()))
except ConfigError as exc:
    print(json.dumps({"key": exc.key, "reason": exc.reason}))
else:
    print(json.dumps({"ok": True}))
"""


class Refused(Exception):
    """Nothing was changed: usage, site file or bundle problem (exit 2)."""


class Failed(Exception):
    """Installation failed (exit 1)."""


def ask(question: str) -> bool:
    """Only with --interactive."""
    try:
        return input(f"install: {question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def say(message: str) -> None:
    print(f"install: {message}", flush=True)


def warn(message: str) -> None:
    print(f"install: warning: {message}", flush=True)


# ----------------------------------------------------------------------------------------------- locations
class Layout:
    """Where an installation lives, per user or system-wide."""

    def __init__(self, system: bool, prefix: str | None, bin_dir: str | None = None) -> None:
        env = os.environ
        home = Path.home()
        self.mode = "system" if system else "user"
        if system:
            config_root = Path((env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":")[0])
            data_root = Path((env.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share").split(":")[0])
            self.prefix = Path(prefix or "/opt/workstation")
            self.bin_link = Path(bin_dir or "/usr/local/bin") / "workstation"
        else:
            config_root = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
            data_root = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
            self.prefix = Path(prefix or data_root / "workstation" / "app")
            self.bin_link = Path(bin_dir) / "workstation" if bin_dir else None
        self.prefix = self.prefix.expanduser().absolute()
        self.config_file = config_root / "workstation" / "site.toml"
        self.desktop_file = data_root / "applications" / DESKTOP
        self.launcher = self.prefix / "bin" / "workstation"
        self.current = self.prefix / "current"
        self.versions = self.prefix / "versions"
        self.state_file = self.prefix / STATE

    def describe(self) -> list[str]:
        lines = [f"mode: {self.mode}", f"prefix: {self.prefix}", f"launcher: {self.launcher}",
                 f"site file: {self.config_file}", f"desktop entry: {self.desktop_file}"]
        if self.bin_link:
            lines.append(f"command link: {self.bin_link}")
        return lines


def read_state(layout: Layout) -> dict | None:
    try:
        state = json.loads(layout.state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise Refused(f"{layout.state_file} is unreadable ({exc}); not touching this installation") from None
    if state.get("format") != STATE_FORMAT:
        raise Refused(f"{layout.state_file} is not an installation record of this installer")
    return state


def write_state(layout: Layout, state: dict) -> None:
    tmp = layout.state_file.with_name(STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, layout.state_file)


@contextlib.contextmanager
def locked(layout: Layout):
    """One installer at a time per prefix."""
    layout.prefix.mkdir(parents=True, exist_ok=True)
    with open(layout.prefix / ".install.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Refused(f"another installer is working on {layout.prefix}") from None
        yield


# ----------------------------------------------------------------------------------------------- the bundle
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


class Bundle:
    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            self.manifest = json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise Refused(f"{root} is not a complete bundle: MANIFEST.json unreadable ({exc})") from None
        if self.manifest.get("format") != BUNDLE_FORMAT:
            raise Refused(f"MANIFEST.json: format {self.manifest.get('format')!r}, expected {BUNDLE_FORMAT}")
        self.version = self.manifest["version"]
        self.name = self.manifest["name"]
        self.wheels = root / "wheels"

    @property
    def package_wheel(self) -> Path:
        found = sorted(self.wheels.glob(f"workstation-{self.version}-*.whl"))
        if len(found) != 1:
            raise Refused(f"the bundle holds no single workstation {self.version} wheel ({[p.name for p in found]})")
        return found[0]

    @property
    def pip_wheel(self) -> Path:
        return self.wheels / self.manifest["pip_wheel"]

    def check(self) -> None:
        """Platform first (cheap, clearest message), then every file against its size and sha256, then the models."""
        m = self.manifest
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        if m["python"] != here:
            raise Refused(f"this bundle is for Python {m['python']} ({m['python_tag']}); {sys.executable} is Python "
                          f"{here}: install python{m['python']} or run with PYTHON=/path/to/python{m['python']}")
        platform_tag = re.sub(r"[^A-Za-z0-9]", "_", sysconfig.get_platform())
        if m["platform"] != platform_tag or m["system"] != sys.platform:
            raise Refused(f"this bundle is for {m['platform']}; this machine is {platform_tag}: build a bundle on "
                          "a machine like this one")
        if m.get("requires_glibc"):
            libc, libc_version = platform.libc_ver()
            if libc != "glibc" or version_key(libc_version) < version_key(m["requires_glibc"]):
                raise Refused(f"the bundle's wheels need glibc >= {m['requires_glibc']}; this machine has "
                              f"{libc or 'no glibc'} {libc_version}")
        problems = []
        for entry in m["files"]:
            path = self.root / entry["path"]
            if not path.is_file():
                problems.append(f"{entry['path']}: missing")
            elif path.stat().st_size != entry["bytes"] or sha256(path) != entry["sha256"]:
                problems.append(f"{entry['path']}: damaged (size or sha256 differs from MANIFEST.json)")
        if problems:
            raise Refused("the bundle is incomplete or damaged (copy it again):\n  " + "\n  ".join(problems[:20]))
        for model in m["models"]:
            folder = self.root / "models" / model["name"] / model["version"]
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            weights = folder / manifest["weights"]["file"]
            if sha256(weights) != manifest["weights"]["sha256"].lower():
                raise Refused(f"model {model['name']} {model['version']}: weights do not match their manifest's sha256")
        say(f"bundle {self.name}: {len(m['files'])} files verified (sha256), {len(m['models'])} model(s) verified")


# ----------------------------------------------------------------------------------------------- the site file
def validate_site(bundle: Bundle, path: Path, enrol: bool) -> tuple[bytes, dict]:
    """The site file's bytes and data, or Refused naming the file and the key."""
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise Refused(f"site file {path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(f"site file {path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise Refused(f"site file {path}: not valid TOML: {exc}") from None
    done = subprocess.run([sys.executable, "-I", "-c", VALIDATOR, str(bundle.package_wheel), str(path)],
                          capture_output=True, text=True)
    try:
        verdict = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise Refused(f"could not validate {path} with the bundle's parser: {done.stderr.strip()[-2000:]}") from None
    if "key" in verdict:
        raise Refused(f"site file {path}: {verdict['key']}: {verdict['reason']}")
    if enrol and not (data.get("server") or {}).get("url"):
        raise Refused(f"site file {path}: server.url: required with --enrol-code (the central server to enrol with)")
    for key, value in _file_settings(data):
        if not Path(value).expanduser().is_file():
            warn(f"site file {path}: {key}: {value} does not exist (yet); the doctor will say if it is still missing")
    return raw, data


def _file_settings(data: dict):
    for name, node in (data.get("pacs") or {}).items():
        for key in ("ca_file", "cert_file", "key_file"):
            if isinstance(node, dict) and isinstance(node.get("tls"), dict) and node["tls"].get(key):
                yield f"pacs.{name}.tls.{key}", node["tls"][key]
    if (data.get("server") or {}).get("ca_file"):
        yield "server.ca_file", data["server"]["ca_file"]


# ----------------------------------------------------------------------------------------------- running things
def pip_env() -> dict[str, str]:
    """pip sees nothing of the machine's pip configuration: only the bundle's wheels, no index, no prompts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def app_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def run(argv: list, what: str, env: dict | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        text = "\n".join(line for line in (done.stdout + done.stderr).splitlines() if "is ignored" not in line)
        raise Failed(f"{what} failed (exit {done.returncode}):\n{text.strip()[-4000:]}")
    return done


def echo(done: subprocess.CompletedProcess, prefix: str) -> None:
    for line in (done.stdout + done.stderr).splitlines():
        if line.strip():
            print(f"{prefix}{line.removeprefix(prefix.split()[-1] + ' ')}", flush=True)


# ----------------------------------------------------------------------------------------------- install
def install(args: argparse.Namespace) -> int:
    bundle = Bundle(HERE)
    layout = Layout(args.system, args.prefix, args.bin_dir)
    if sys.platform != "linux":
        raise Refused(f"this installer supports Linux only (this is {sys.platform}); see README.txt")
    bundle.check()
    state = read_state(layout)
    previous = state["version"] if state else None
    site = validate_site(bundle, Path(args.site), bool(args.enrol_code)) if args.site else None
    if site:
        say(f"site file {args.site}: valid")
    elif state is None:
        raise Refused("--site SITE.toml is required for a first installation (see site.example.toml)")
    if previous and version_key(previous) > version_key(bundle.version) and not args.allow_downgrade:
        raise Refused(f"{layout.prefix} holds version {previous}, newer than this bundle's {bundle.version} "
                      "(--allow-downgrade to go back; the store is never converted back)")
    if args.system and os.geteuid() != 0:
        raise Refused("--system needs root (or install per user without --system)")
    action = "install" if previous is None else ("upgrade" if previous != bundle.version else "repair")
    for line in layout.describe():
        say(line)
    if args.dry_run:
        say(f"dry run: would {action} workstation {bundle.version}" + (f" over {previous}" if previous else "")
            + "; nothing was changed")
        return EXIT_OK
    if args.interactive and not ask(f"{action} workstation {bundle.version} into {layout.prefix}?"):
        raise Refused("cancelled")
    fresh_prefix = not layout.prefix.exists()
    try:
        with locked(layout):
            return _install_locked(args, bundle, layout, state, previous, site, action)
    except (Failed, Refused):
        if fresh_prefix:
            _remove_owned(layout)
        raise


def _install_locked(args, bundle: Bundle, layout: Layout, state: dict | None, previous: str | None,
                    site: tuple[bytes, dict] | None, action: str) -> int:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    new_dir = layout.versions / f"{bundle.version}-{stamp}"
    say(f"{action} of workstation {bundle.version}" + (f" (installed: {previous})" if previous else "") + f" into {new_dir}")
    try:
        _make_version(bundle, new_dir)
    except BaseException as exc:
        shutil.rmtree(new_dir, ignore_errors=True)
        still = f"; version {previous} is still installed and unchanged" if previous else "; nothing was installed"
        raise Failed(f"{exc}{still}") from None

    # the switch: one rename; from here on the new version is the installed one
    link = layout.prefix / ".current.new"
    link.unlink(missing_ok=True)
    link.symlink_to(new_dir.relative_to(layout.prefix))
    os.replace(link, layout.current)
    say(f"switched {layout.current} -> {new_dir.name}")
    write_launcher(layout)
    shutil.copyfile(HERE / "install.py", layout.prefix / "install.py")  # uninstall works without the bundle
    shutil.copyfile(HERE / "MANIFEST.json", layout.prefix / "bundle-manifest.json")
    for old in sorted(layout.versions.iterdir()):
        if old != new_dir and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
            say(f"removed the previous version folder {old.name}")

    config_changed, config_sha = False, state.get("config_sha256") if state else None
    if site:
        config_changed, config_sha = write_site(layout, site[0])
    write_desktop_entry(layout, bundle)
    if layout.bin_link:
        link_command(layout)
    history = (state or {}).get("history", [])
    history.append({"at_utc": stamp, "action": action, "version": bundle.version, "previous_version": previous,
                    "bundle": bundle.name, "site_changed": config_changed})
    write_state(layout, {
        "format": STATE_FORMAT, "version": bundle.version, "mode": layout.mode, "prefix": str(layout.prefix),
        "version_dir": str(new_dir.relative_to(layout.prefix)), "bundle": bundle.name, "installed_utc": stamp,
        "python": sys.executable, "config_file": str(layout.config_file), "config_sha256": config_sha,
        "desktop_file": str(layout.desktop_file), "bin_link": str(layout.bin_link) if layout.bin_link else None,
        "history": history,
    })
    check_config_in_force(layout)

    record(layout, "software.upgrade" if action == "upgrade" else "software.install", bundle, previous)
    enrolled = enrol(layout, args.enrol_code) if args.enrol_code else True
    doctor_ok = run_doctor(layout) if not args.no_doctor else True
    verdict = f"workstation {bundle.version} {'installed' if action == 'install' else action + 'd'} in {layout.prefix}"
    if not enrolled:
        say(f"done with problems: {verdict}, but enrolment failed (see above); exit {EXIT_ENROL}")
        return EXIT_ENROL
    if not doctor_ok:
        say(f"done with problems: {verdict}, but the doctor reported failures (see above); exit {EXIT_DOCTOR}")
        return EXIT_DOCTOR
    say(f"done: {verdict}")
    return EXIT_OK


def _make_version(bundle: Bundle, new_dir: Path) -> None:
    new_dir.parent.mkdir(parents=True, exist_ok=True)
    say("creating the virtual environment")
    run([sys.executable, "-m", "venv", "--without-pip", new_dir], "creating the virtual environment")
    python = new_dir / "bin" / "python"
    say(f"installing {len(bundle.manifest['packages'])} packages from the bundle (pip --no-index: no network)")
    run([python, f"{bundle.pip_wheel}/pip", "install", "--no-index", "--find-links", bundle.wheels,
         "--no-warn-script-location", "--progress-bar", "off", "--quiet", f"workstation=={bundle.version}"],
        "pip install from the bundle", env=pip_env())
    share = new_dir / "share" / "workstation"
    shutil.copytree(bundle.root / "models", share / "models")
    shutil.copytree(bundle.root / "resources", share / "resources")
    say(f"models and resources copied to {share}")
    done = run([new_dir / "bin" / "workstation", "--version"], "starting the new version (--version)", env=app_env(),
               timeout=300)
    if done.stdout.strip() != f"workstation {bundle.version}":
        raise Failed(f"the new version says {done.stdout.strip()!r}, expected 'workstation {bundle.version}'")
    # the libraries the app needs at run time, loaded now: a missing system library fails here, not at the desk
    run([python, "-I", "-c", "import PySide6.QtWidgets, pyqtgraph, sqlcipher3, keyring, pydicom, pynetdicom, SimpleITK, numpy"],
        "loading the application's libraries", env={**app_env(), "QT_QPA_PLATFORM": "offscreen"}, timeout=300)
    say(f"the new version starts: {done.stdout.strip()}")


def write_launcher(layout: Layout) -> None:
    layout.launcher.parent.mkdir(parents=True, exist_ok=True)
    tmp = layout.launcher.with_name(".workstation.new")
    tmp.write_text(f'#!/bin/sh\n{LAUNCHER_MARKER}\nexec "{layout.current}/bin/workstation" "$@"\n', encoding="utf-8")
    tmp.chmod(0o755)
    os.replace(tmp, layout.launcher)


def write_site(layout: Layout, raw: bytes) -> tuple[bool, str]:
    """Write the site file where the app reads it; a different existing one is kept as site.toml.bak-<time>."""
    target = layout.config_file
    digest = hashlib.sha256(raw).hexdigest()
    if target.is_file() and target.read_bytes() == raw:
        say(f"site file {target}: unchanged")
        return False, digest
    target.parent.mkdir(parents=True, exist_ok=True)
    changed = target.exists()
    if changed:
        backup = target.with_name(f"site.toml.bak-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
        shutil.copy2(target, backup)
        say(f"site file {target}: replaced (the previous one is kept as {backup.name})")
    tmp = target.with_name(".site.toml.new")
    tmp.write_bytes(raw)
    tmp.chmod(0o644 if layout.mode == "system" else 0o600)  # every user reads the system one; a user's own is theirs
    os.replace(tmp, target)
    if not changed:
        say(f"site file written: {target}")
    return changed, digest


def write_desktop_entry(layout: Layout, bundle: Bundle) -> None:
    text = (HERE / "workstation.desktop").read_text(encoding="utf-8")
    text = (text.replace("@LAUNCHER@", str(layout.launcher)).replace("@VERSION@", bundle.version)
            .replace("@ICON@", str(layout.current / "share" / "workstation" / "resources" / ICON)))
    target = layout.desktop_file
    if target.exists() and DESKTOP_MARKER not in target.read_text(encoding="utf-8", errors="replace"):
        warn(f"{target} exists and was not written by this installer; left as it is")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{DESKTOP}.new")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o644)
    os.replace(tmp, target)
    say(f"desktop entry written: {target}")
    if shutil.which("update-desktop-database"):
        subprocess.run(["update-desktop-database", str(target.parent)], capture_output=True)


def link_command(layout: Layout) -> None:
    link = layout.bin_link
    if link.is_symlink() and os.readlink(link) == str(layout.launcher):
        return
    if link.exists() or link.is_symlink():
        warn(f"{link} exists and is not ours; use {layout.launcher}")
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(layout.launcher)
    say(f"command linked: {link} -> {layout.launcher}")


def check_config_in_force(layout: Layout) -> None:
    """The app's own answer to 'which site file do you read?': warn when another one shadows ours."""
    done = subprocess.run([layout.launcher, "install-support", "paths"], capture_output=True, text=True, env=app_env())
    try:
        in_force = json.loads(done.stdout)["config"]
    except (ValueError, KeyError, TypeError):
        warn(f"could not ask the app which site file it reads: {done.stderr.strip()[-500:]}")
        return
    if in_force and Path(in_force) != layout.config_file:
        warn(f"the app reads {in_force}, not {layout.config_file} ($WORKSTATION_CONFIG or a per-user file shadows it)")


def record(layout: Layout, kind: str, bundle: Bundle, previous: str | None) -> None:
    """The audit entry. System-wide, each user has their own store: it notes the new version at their next start."""
    if layout.mode == "system":
        say(f"{kind} not recorded now: stores are per user; each records the version at its user's next start")
        return
    argv = [layout.launcher, "install-support", "record", kind, "--version", bundle.version, "--bundle", bundle.name,
            "--prefix", layout.prefix, "--mode", layout.mode, "--config", layout.config_file]
    if previous:
        argv += ["--previous-version", previous]
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=app_env())
    echo(done, "install: ")
    if done.returncode != 0:
        warn(f"{kind} is not in the audit trail (exit {done.returncode}); the app records the version at its next start")


def enrol(layout: Layout, code: str) -> bool:
    say("enrolling with the central server")
    done = subprocess.run([str(layout.launcher), "enrol", f"--code={code}", "--config", str(layout.config_file)],
                          capture_output=True, text=True, env=app_env())
    echo(done, "install: enrol: ")
    return done.returncode == 0


def run_doctor(layout: Layout) -> bool:
    say("running workstation doctor")
    done = subprocess.run([str(layout.launcher), "doctor", "--config", str(layout.config_file)],
                          capture_output=True, text=True, env=app_env())
    echo(done, "doctor: ")
    if done.returncode not in (0, 1):
        warn(f"the doctor itself failed (exit {done.returncode})")
    return done.returncode == 0


# ----------------------------------------------------------------------------------------------- uninstall
def uninstall(args: argparse.Namespace) -> int:
    layout = Layout(args.system, args.prefix, args.bin_dir)
    state = read_state(layout)
    if state is None:
        raise Refused(f"no installation found at {layout.prefix} (no {STATE})")
    layout.config_file = Path(state["config_file"])
    layout.desktop_file = Path(state["desktop_file"])
    layout.bin_link = Path(state["bin_link"]) if state.get("bin_link") else None
    paths = app_paths(layout)
    if args.purge_data and not args.yes:
        if not args.interactive or not ask(f"delete the encrypted store {paths.get('store')} for good?"):
            raise Refused(f"--purge-data deletes the encrypted store {paths.get('store') or ''} for good: add --yes "
                          "(nothing was changed)")
    with locked(layout):
        say(f"uninstalling workstation {state['version']} from {layout.prefix}")
        argv = [layout.launcher, "install-support", "record", "software.uninstall", "--version", state["version"],
                "--prefix", layout.prefix, "--mode", layout.mode, "--config", layout.config_file, "--only-if-store-exists"]
        if layout.mode == "user":
            echo(subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=app_env()), "install: ")
        purged = False
        if args.purge_data:
            done = subprocess.run([str(layout.launcher), "install-support", "purge-data", "--yes", "--config",
                                   str(layout.config_file)], capture_output=True, text=True, env=app_env())
            echo(done, "install: purge: ")
            purged = done.returncode == 0
            if done.returncode != 0:
                warn("the data was not entirely deleted (see above)")
        if layout.desktop_file.exists():
            if DESKTOP_MARKER in layout.desktop_file.read_text(encoding="utf-8", errors="replace"):
                layout.desktop_file.unlink()
                say(f"removed {layout.desktop_file}")
        if layout.bin_link and layout.bin_link.is_symlink() and os.readlink(layout.bin_link) == str(layout.launcher):
            layout.bin_link.unlink()
            say(f"removed {layout.bin_link}")
        config = layout.config_file
        if config.is_file():
            ours = state.get("config_sha256") == sha256(config)
            if ours or args.purge_data:
                config.unlink()
                say(f"removed the site file {config}")
            else:
                say(f"kept the site file {config} (changed since it was installed)")
        _remove_owned(layout)
        if args.purge_data and args.prefix is None and layout.mode == "user":  # ~/.local/share/workstation, if now empty
            with contextlib.suppress(OSError):
                layout.prefix.parent.rmdir()
        say(f"removed the application from {layout.prefix}")
    if not args.purge_data:
        kept = [f"the encrypted store {paths['store']}" if paths.get("store") and Path(paths["store"]).exists() else None,
                "its key and the server token in the OS keyring (service radiology-workstation)",
                f"the cache {paths['user_cache']}" if paths.get("user_cache") and Path(paths["user_cache"]).exists() else None]
        for item in filter(None, kept):
            say(f"kept: {item}")
        say("data kept; to delete it, uninstall with --purge-data --yes while the app is installed")
    elif not purged:
        return EXIT_FAILED
    say("done")
    return EXIT_OK


def app_paths(layout: Layout) -> dict:
    try:
        done = subprocess.run([str(layout.launcher), "install-support", "paths", "--config", str(layout.config_file)],
                              capture_output=True, text=True, env=app_env(), timeout=120)
        return json.loads(done.stdout) if done.returncode == 0 else {}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


def _remove_owned(layout: Layout) -> None:
    """What this installer puts in the prefix, and nothing else; the prefix itself only if then empty."""
    for name in ("current", ".current.new", "versions", "install.py", "bundle-manifest.json", STATE, STATE + ".tmp",
                 ".install.lock"):
        path = layout.prefix / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
    if layout.launcher.is_file() and LAUNCHER_MARKER in layout.launcher.read_text(encoding="utf-8", errors="replace"):
        layout.launcher.unlink()
    for folder in (layout.launcher.parent, layout.prefix):
        with contextlib.suppress(OSError):
            folder.rmdir()


# ----------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="install", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--site", metavar="SITE.toml", help="the site configuration (required for a first installation)")
    parser.add_argument("--enrol-code", metavar="CODE", help="enrol with the central server using IT's one-time code")
    parser.add_argument("--prefix", metavar="DIR", help="where the application goes (default: per user "
                        "~/.local/share/workstation/app; --system /opt/workstation)")
    parser.add_argument("--system", action="store_true", help="system-wide (root): /opt, /etc/xdg, /usr/local")
    parser.add_argument("--bin-dir", metavar="DIR", help="link the `workstation` command here (default with --system: /usr/local/bin)")
    parser.add_argument("--no-doctor", action="store_true", help="do not run `workstation doctor` at the end")
    parser.add_argument("--dry-run", action="store_true", help="check the bundle and the site file, print the plan, change nothing")
    parser.add_argument("--allow-downgrade", action="store_true", help="install an older version over a newer one")
    parser.add_argument("--uninstall", action="store_true", help="remove the application (the data stays unless --purge-data --yes)")
    parser.add_argument("--purge-data", action="store_true", help="with --uninstall: also delete the encrypted store, caches and keyring entries")
    parser.add_argument("--yes", action="store_true", help="confirm --purge-data without a prompt")
    parser.add_argument("--interactive", action="store_true", help="ask before changing anything (default: silent)")
    parser.add_argument("--verify-bundle", action="store_true", help="check the bundle's files and platform, then exit")
    args = parser.parse_args(argv)
    try:
        if args.verify_bundle:
            Bundle(HERE).check()
            return EXIT_OK
        if args.uninstall:
            return uninstall(args)
        if args.purge_data:
            raise Refused("--purge-data goes with --uninstall")
        return install(args)
    except Refused as exc:
        print(f"install: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except (Failed, OSError, subprocess.SubprocessError) as exc:
        print(f"install: failed: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("install: interrupted", file=sys.stderr, flush=True)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
