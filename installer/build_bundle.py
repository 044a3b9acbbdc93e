"""Build the offline install bundle from this checkout.

    .venv/bin/python installer/build_bundle.py --out DIR [--wheel-cache DIR] [--refresh] [--archive]
                                               [--set-version X.Y.Z]

Makes DIR/workstation-bundle-<version>-<python tag>-<platform>/ holding everything an installation needs on a
machine of the same OS, CPU architecture and Python minor version, without any network:

    install            sh wrapper: finds python3.11 (or $PYTHON) and runs install.py
    install.py         the installer (standard library only)
    wheels/            the workstation wheel built from this checkout, every runtime dependency for this
                       platform and Python (no test or server extras), and pip itself (the installer runs pip
                       from its wheel, so the target needs neither pip nor Debian's python3-venv)
    models/            each models/<name>/<version>/ with its manifest and weights (sha256 checked here and
                       again by the installer)
    resources/         demo-site.toml and the launcher icon
    workstation.desktop, site.example.toml, README.txt
    MANIFEST.json      format workstation.bundle/1: versions, platform, every file with its size and sha256

Dependency wheels come from pip with this machine's pip configuration (so torch is the CPU wheel on local
disk, /opt/wheels here). With --wheel-cache DIR they are kept there and a later build resolves from that
folder alone, without the network (--refresh asks the package index again). --archive also writes
DIR/<bundle>.tar.gz. --set-version builds the package as another version (release engineering and the
upgrade test); the checkout is not modified.

Exit 0 with the bundle's path on the last line; 1 on failure with the reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FORMAT = "workstation.bundle/1"
VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.M)
SOURCE_FILES = ("pyproject.toml", "README.md")
SOURCE_DIRS = ("workstation",)
BUNDLE_FILES = {  # installer/<name> -> <bundle>/<name>
    "install.py": "install.py",
    "workstation.desktop": "workstation.desktop",
    "site.example.toml": "site.example.toml",
    "README.md": "README.txt",
}
ICON = "radiology-workstation.svg"


class BuildError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"build: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the offline install bundle from this checkout.")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the bundle into (created)")
    parser.add_argument("--wheel-cache", type=Path, help="keep dependency wheels here between builds")
    parser.add_argument("--refresh", action="store_true", help="ask the package index again even if the cache has every wheel")
    parser.add_argument("--archive", action="store_true", help="also write <bundle>.tar.gz beside the folder")
    parser.add_argument("--set-version", metavar="X.Y.Z", help="build the package as this version (checkout unchanged)")
    args = parser.parse_args(argv)
    try:
        bundle = build(args.out, wheel_cache=args.wheel_cache, refresh=args.refresh, archive=args.archive,
                       set_version=args.set_version)
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    print(bundle)
    return 0


def build(out: Path, *, wheel_cache: Path | None = None, refresh: bool = False, archive: bool = False,
          set_version: str | None = None) -> Path:
    version = set_version or source_version()
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise BuildError(f"version {version!r}: X.Y.Z expected")
    python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform_tag = re.sub(r"[^A-Za-z0-9]", "_", sysconfig.get_platform())
    name = f"workstation-bundle-{version}-{python_tag}-{platform_tag}"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ws-bundle-", dir=out) as tmp_name:
        tmp = Path(tmp_name)
        cache = wheel_cache or tmp / "wheel-cache"
        cache.mkdir(parents=True, exist_ok=True)
        package = build_package(tmp, version)
        resolved = resolve_dependencies(package, cache, tmp, refresh)
        pip_wheel = bundled_pip(cache)
        staging = tmp / name
        (staging / "wheels").mkdir(parents=True)
        for wheel in [*resolved, pip_wheel]:
            shutil.copyfile(wheel, staging / "wheels" / wheel.name)
        models = copy_models(staging / "models")
        (staging / "resources").mkdir()
        shutil.copyfile(ROOT / "resources" / "demo-site.toml", staging / "resources" / "demo-site.toml")
        shutil.copyfile(HERE / ICON, staging / "resources" / ICON)
        for source, target in BUNDLE_FILES.items():
            shutil.copyfile(HERE / source, staging / target)
        wrapper = staging / "install"
        wrapper.write_text((HERE / "install.sh").read_text(encoding="utf-8").replace(
            "@PYTHON@", f"python{sys.version_info.major}.{sys.version_info.minor}"), encoding="utf-8")
        wrapper.chmod(0o755)
        (staging / "install.py").chmod(0o755)
        manifest = write_manifest(staging, name, version, python_tag, platform_tag, resolved, pip_wheel, models)
        target = out / name
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    log(f"{name}: {len(resolved) + 1} wheels, {len(models)} model(s), {manifest['total_bytes'] / 1e6:.0f} MB in "
        f"{len(manifest['files']) + 1} files")
    if archive:
        tar_path = out / f"{name}.tar.gz"
        log(f"writing {tar_path.name}")
        with tarfile.open(tar_path, "w:gz", compresslevel=6) as tar:
            tar.add(target, arcname=name)
        log(f"{tar_path.name}: {tar_path.stat().st_size / 1e6:.0f} MB")
    return target


def source_version() -> str:
    found = VERSION_LINE.search((ROOT / "workstation" / "__init__.py").read_text(encoding="utf-8"))
    if not found:
        raise BuildError("no __version__ line in workstation/__init__.py")
    return found.group(1)


def run(argv: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        noise = "is ignored"  # pip's harmless warnings about --find-links locations
        text = "\n".join(line for line in (done.stdout + done.stderr).splitlines() if noise not in line)
        raise BuildError(f"{what} failed (exit {done.returncode}):\n{text[-4000:]}")
    return done


def pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def build_package(tmp: Path, version: str) -> Path:
    """The workstation wheel, built from a copy of the source (no build/ or egg-info left in the checkout)."""
    source = tmp / "source"
    source.mkdir()
    for name in SOURCE_FILES:
        shutil.copyfile(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCE_DIRS:
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    init = source / "workstation" / "__init__.py"
    init.write_text(VERSION_LINE.sub(f'__version__ = "{version}"', init.read_text(encoding="utf-8")), encoding="utf-8")
    log(f"building the workstation {version} wheel")
    # no build isolation: setuptools and wheel of this venv, so no network is needed for our own package
    run(pip("wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(tmp / "package"), str(source)),
        "building the workstation wheel (needs setuptools and wheel in this Python)")
    wheels = list((tmp / "package").glob("workstation-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one workstation wheel, found {wheels}")
    return wheels[0]


def resolve_dependencies(package: Path, cache: Path, tmp: Path, refresh: bool) -> list[Path]:
    """Every wheel an installation of `package` needs here, resolved from the cache (filled from the index)."""
    if not refresh:
        resolved = _resolve(package, cache, tmp)
        if resolved is not None:
            log(f"dependencies resolved from the wheel cache {cache} (no network)")
            return resolved
    log(f"downloading dependency wheels into {cache} (package index and this machine's pip configuration)")
    run(pip("wheel", "--quiet", "--prefer-binary", "--find-links", str(cache), "-w", str(cache), str(package)),
        "fetching the dependency wheels")
    for stale in cache.glob("workstation-*.whl"):  # our own wheel is rebuilt each time
        stale.unlink()
    resolved = _resolve(package, cache, tmp)
    if resolved is None:
        raise BuildError("the dependencies still do not resolve from the downloaded wheels")
    return resolved


def _resolve(package: Path, cache: Path, tmp: Path) -> list[Path] | None:
    """What pip would install for `package` on this platform, from local wheels only; None when some are missing."""
    report = tmp / "resolution.json"
    done = subprocess.run(pip("install", "--dry-run", "--ignore-installed", "--quiet", "--only-binary", ":all:",
                              "--no-index", "--find-links", str(cache), "--report", str(report), str(package)),
                          capture_output=True, text=True)
    if done.returncode != 0:
        return None
    wheels = []
    for item in json.loads(report.read_text(encoding="utf-8"))["install"]:
        url = item["download_info"]["url"]
        if not url.startswith("file:"):
            raise BuildError(f"{item['metadata']['name']} resolved to {url}, not a local file")
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        if path.suffix != ".whl":
            raise BuildError(f"{path.name} is not a wheel")
        wheels.append(path)
    return sorted(wheels, key=lambda p: p.name.lower())


def bundled_pip(cache: Path) -> Path:
    """pip's own wheel (the version of this Python's pip), so the installer needs no pip on the target."""
    import importlib.metadata

    version = importlib.metadata.version("pip")
    wheel = cache / f"pip-{version}-py3-none-any.whl"
    if not wheel.exists():
        log(f"fetching pip {version}")
        run(pip("download", "--quiet", "--no-deps", "--only-binary", ":all:", "-d", str(cache), f"pip=={version}"),
            "fetching pip's wheel")
    if not wheel.exists():
        raise BuildError(f"pip's wheel {wheel.name} was not downloaded")
    return wheel


def copy_models(target: Path) -> list[dict]:
    models = []
    for manifest_path in sorted((ROOT / "models").glob("*/*/manifest.json")):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        weights = manifest_path.parent / manifest["weights"]["file"]
        digest = sha256(weights)
        if digest != manifest["weights"]["sha256"].lower():
            raise BuildError(f"{weights}: sha256 {digest} does not match its manifest")
        folder = target / manifest_path.parent.relative_to(ROOT / "models")
        folder.mkdir(parents=True)
        shutil.copyfile(manifest_path, folder / "manifest.json")
        shutil.copyfile(weights, folder / weights.name)
        models.append({"name": manifest["name"], "version": manifest["version"], "weights_sha256": digest})
    if not models:
        raise BuildError("no models under models/*/*/manifest.json")
    return models


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def required_glibc(wheels: list[Path]) -> str | None:
    """The newest glibc any wheel needs (each wheel: the oldest of its manylinux tags)."""
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    needed = None
    for wheel in wheels:
        platforms = wheel.stem.split("-")[-1].split(".")
        versions = []
        for tag in platforms:
            if tag.split("_")[0] in legacy:  # manylinux2014_x86_64...
                versions.append(legacy[tag.split("_")[0]])
            elif found := re.match(r"manylinux_(\d+)_(\d+)_", tag):
                versions.append((int(found.group(1)), int(found.group(2))))
        if versions:
            needed = max(needed or (0, 0), min(versions))
    return f"{needed[0]}.{needed[1]}" if needed else None


def git_source() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", *SOURCE_FILES, *SOURCE_DIRS, "models"],
                                    cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip())
        return {"git_commit": commit, "modified": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": None, "modified": None}


def write_manifest(staging: Path, name: str, version: str, python_tag: str, platform_tag: str,
                   resolved: list[Path], pip_wheel: Path, models: list[dict]) -> dict:
    files = []
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        files.append({"path": path.relative_to(staging).as_posix(), "bytes": path.stat().st_size, "sha256": sha256(path)})
    packages = []
    for wheel in resolved:
        dist, dist_version = wheel.name.split("-")[:2]
        packages.append({"name": dist, "version": dist_version, "wheel": wheel.name})
    manifest = {
        "format": FORMAT,
        "name": name,
        "version": version,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "python_tag": python_tag,
        "platform": platform_tag,
        "system": sys.platform,
        "requires_glibc": required_glibc(resolved) if sys.platform.startswith("linux") else None,
        "built_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": git_source(),
        "pip_wheel": pip_wheel.name,
        "packages": packages,
        "models": models,
        "files": files,
        "total_bytes": sum(f["bytes"] for f in files),
    }
    (staging / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


if __name__ == "__main__":
    sys.exit(main())
