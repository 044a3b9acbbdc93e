"""The offline bundle's contents, and everything the installer refuses before it writes a single file."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from installer_helpers import Sandbox, install_py, manifest, output

RUNTIME = {"workstation", "torch", "PySide6_Essentials", "shiboken6", "numpy", "pydicom", "pynetdicom", "highdicom",
           "SimpleITK", "pyqtgraph", "keyring", "sqlcipher3", "httpx", "platformdirs", "pylibjpeg", "pylibjpeg_libjpeg",
           "pylibjpeg_openjpeg", "pylibjpeg_rle", "SecretStorage", "jeepney"}
NOT_SHIPPED = ("fastapi", "uvicorn", "sqlalchemy", "psycopg", "pytest", "pytest_qt", "import_linter", "pydicom_data",
               "keyrings.alt", "keyrings_alt", "nvidia", "triton", "starlette")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _normal(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def test_the_bundle_holds_the_package_its_runtime_wheels_and_the_models(bundle):
    m = manifest(bundle)
    assert m["format"] == "workstation.bundle/1"
    assert bundle.name == f"workstation-bundle-{m['version']}-{m['python_tag']}-{m['platform']}"
    listed = {f["path"]: f for f in m["files"]}
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {"MANIFEST.json"}
    assert set(listed) == on_disk
    assert m["total_bytes"] == sum(f["bytes"] for f in m["files"])
    for path in ("install", "install.py", "README.txt", "site.example.toml", "workstation.desktop",
                 "resources/demo-site.toml", "resources/radiology-workstation.svg",
                 "models/nodule-detector/1.1.0/manifest.json", "models/nodule-detector/1.1.0/weights.pt"):
        assert path in listed, path
        if path.startswith("models/") or path == "install.py":
            assert _sha256(bundle / path) == listed[path]["sha256"]
    assert os.access(bundle / "install", os.X_OK)

    names = {_normal(p["name"]): p["version"] for p in m["packages"]}
    assert {_normal(n) for n in RUNTIME} <= set(names), {_normal(n) for n in RUNTIME} - set(names)
    assert names["torch"] == "2.13.0+cpu" and names["pyside6_essentials"] == "6.11.3"
    assert names["workstation"] == m["version"]
    for name in names:
        assert not name.startswith(tuple(_normal(n) for n in NOT_SHIPPED)), f"{name} is not a runtime dependency"
    wheels = sorted((bundle / "wheels").iterdir())
    assert all(w.suffix == ".whl" for w in wheels) and len(wheels) == len(m["packages"]) + 1  # + pip itself
    assert (bundle / "wheels" / m["pip_wheel"]).is_file()
    with zipfile.ZipFile(next((bundle / "wheels").glob("workstation-*.whl"))) as wheel:
        members = set(wheel.namelist())
    assert {"workstation/cli/install_support.py", "workstation/cli/doctor.py"} <= members
    assert not any(name.startswith(("tests/", "installer/", "models/")) for name in members)
    assert 200e6 < m["total_bytes"] < 700e6, f"bundle size {m['total_bytes'] / 1e6:.0f} MB"
    print(f"\n{bundle.name}: {m['total_bytes'] / 1e6:.0f} MB, {len(wheels)} wheels; largest: "
          + ", ".join(f"{w.name.split('-')[0]} {w.stat().st_size / 1e6:.0f} MB"
                      for w in sorted(wheels, key=lambda w: -w.stat().st_size)[:4]))

    done = subprocess.run(install_py(bundle) + ["--verify-bundle"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, output(done)
    assert f"{len(m['files'])} files verified (sha256)" in done.stdout


def test_a_damaged_bundle_is_refused_before_anything_is_written(bundle, tmp_path):
    copy = tmp_path / bundle.name
    subprocess.run(["cp", "-al", str(bundle), str(copy)], check=True)  # hard links: instant, no space
    weights = copy / "models" / "nodule-detector" / "1.1.0" / "weights.pt"
    data = bytearray(weights.read_bytes())
    weights.unlink()  # a new file: the original bundle's (hard-linked) one stays intact
    data[1000] ^= 0xFF
    weights.write_bytes(bytes(data))
    sandbox = Sandbox(tmp_path / "box")
    site = tmp_path / "site.toml"
    site.write_text('[workstation]\nid = "ws-x"\n', encoding="utf-8")
    done = sandbox.run(install_py(copy) + ["--site", site], timeout=300)
    assert done.returncode == 2, output(done)
    assert "models/nodule-detector/1.1.0/weights.pt: damaged" in done.stderr
    assert [p for p in sandbox.home.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("site_text, extra, expected", [
    ('[pacs.MAIN]\nae_title = "ORTHANC"\nhost = "pacs"\nport = "4242"\n', [],
     "pacs.MAIN.port: must be an integer port number from 1 to 65535"),
    ('[workstation]\nae_title = "WS"\ncolour = "blue"\n', [], "workstation.colour: unknown setting"),
    ('[users.roles]\n"dr.who" = "surgeon"\n', [], "users.roles.dr.who: role must be one of radiologist, reviewer, admin"),
    ('[server]\nurl = "ftp://audit"\n', [], "server.url: must be an http:// or https:// URL"),
    ('[workstation\nid = "x"\n', [], "not valid TOML"),
    ('[workstation]\nid = "ws-1"\n', ["--enrol-code", "ABC"], "server.url: required with --enrol-code"),
    ('[[routing.rules]]\nname = "ct"\nmodality = "CT"\nmodels = ["nodule-detector"]\nslices = "many"\n', [],
     "routing.rules[0].slices: must be [min, max]"),
    ('[alerts]\nnodule-detector = 2\n', [], "alerts.nodule-detector: must be a calibrated score from 0 to 1"),
    ('[deid]\nretain_modified_dates = "yes"\n', [], "deid.retain_modified_dates: must be true or false"),
    (None, [], "--site SITE.toml is required for a first installation"),
], ids=["port-type", "unknown-key", "role", "server-url", "toml", "enrol-without-server", "routing-rule", "alert",
        "deid", "no-site"])
def test_an_invalid_site_file_is_refused_naming_the_key_and_nothing_is_written(bundle, tmp_path, site_text, extra, expected):
    sandbox = Sandbox(tmp_path / "box")
    argv = install_py(bundle) + ["--prefix", sandbox.root / "app", *extra]
    if site_text is not None:
        site = tmp_path / "site.toml"
        site.write_text(site_text, encoding="utf-8")
        argv += ["--site", site]
    done = sandbox.run(argv, timeout=300)
    assert done.returncode == 2, output(done)
    assert expected in done.stderr, output(done)
    assert "install: error:" in done.stderr
    assert not (sandbox.root / "app").exists()
    assert [p for p in sandbox.home.rglob("*") if p.is_file()] == []  # no site file, no desktop entry, no store


def test_a_dry_run_prints_where_everything_goes_and_changes_nothing(bundle, tmp_path):
    sandbox = Sandbox(tmp_path / "box")
    site = tmp_path / "site.toml"
    shutil.copyfile(bundle / "site.example.toml", site)  # the example itself is valid
    done = sandbox.run(install_py(bundle) + ["--site", site, "--dry-run"], timeout=300)
    assert done.returncode == 0, output(done)
    out = done.stdout
    assert f"prefix: {sandbox.data_home / 'workstation' / 'app'}" in out
    assert f"site file: {sandbox.site_file}" in out and f"desktop entry: {sandbox.desktop_file}" in out
    assert "dry run: would install workstation" in out

    etc, share = tmp_path / "etc-xdg", tmp_path / "usr-local-share"
    done = sandbox.run(install_py(bundle) + ["--site", site, "--dry-run", "--system"], timeout=300,
                       XDG_CONFIG_DIRS=f"{etc}:/etc/xdg", XDG_DATA_DIRS=f"{share}:/usr/share")
    assert done.returncode == 0, output(done)
    assert "mode: system" in done.stdout and "prefix: /opt/workstation" in done.stdout
    assert f"site file: {etc / 'workstation' / 'site.toml'}" in done.stdout
    assert f"desktop entry: {share / 'applications' / 'radiology-workstation.desktop'}" in done.stdout
    assert "command link: /usr/local/bin/workstation" in done.stdout
    assert not etc.exists() and not share.exists()
    assert [p for p in sandbox.home.rglob("*") if p.is_file()] == []
