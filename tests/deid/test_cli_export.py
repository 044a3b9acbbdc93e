"""`workstation export` end to end in-process: a real encrypted store with a file keyring chosen explicitly."""

from __future__ import annotations

import json
import os

import pytest

from workstation.cli import main


@pytest.fixture
def site_file(tmp_path, monkeypatch):
    config = tmp_path / "site.toml"
    config.write_text(f"""
[workstation]
id = "ws-export"

[store]
path = "{tmp_path / 'store.sqlite'}"

[users]
login_variable = "WS_LOGIN"
roles = {{ rita = "reviewer", rob = "radiologist" }}
""", encoding="utf-8")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("WS_LOGIN", "rita")
    return config


def run(site_file, *argv, login="rita"):
    os.environ["WS_LOGIN"] = login
    return main(["export", *argv, "--config", str(site_file)])


def test_export_exit_codes(corpus, site_file, tmp_path, capsys):
    assert run(site_file, str(corpus.folder), "--out", str(tmp_path / "a"), "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["manifest"]["counts"] == {"written": 7, "left_out": 0} and document["left_out"] == []
    # the same secret from the keyring: a second export links up with the first
    assert run(site_file, str(corpus.files["ct1"]), "--zip", str(tmp_path / "b.zip")) == 0
    first = {e["sop_instance_uid"] for e in document["manifest"]["instances"]}
    assert capsys.readouterr().out.startswith("exported 1 object(s)")
    assert run(site_file, str(corpus.folder), "--out", str(tmp_path / "c"), "--options", "clean_pixel_data=false") == 1
    out = capsys.readouterr().out
    assert "left out:" in out and "us.dcm" in out and "does not clean pixel data" in out
    assert run(site_file, str(corpus.folder), "--out", str(tmp_path / "d"), login="rob") == 2
    assert "refused" in capsys.readouterr().err and not (tmp_path / "d").exists()
    assert run(site_file, str(corpus.folder), "--out", str(tmp_path / "e"), "--options", "colour=true") == 2
    assert run(site_file, str(corpus.folder), "--zip", str(tmp_path / "f.zip"), "--node", "X") == 2
    assert run(site_file, str(corpus.folder), "--node", "NOPE") == 2
    assert "no such PACS node" in capsys.readouterr().err
    assert len(first) == 7


def test_export_a_study_from_the_retrieval_cache(corpus, site_file, tmp_path, capsys):
    import pydicom

    from workstation.dicom.cache import StudyCache

    cache = tmp_path / "cache"
    site_file.write_text(site_file.read_text() + f'\n[cache]\ndirectory = "{cache}"\n', encoding="utf-8")
    store = StudyCache(cache, 1 << 30)
    for path in corpus.files.values():
        store.store(path.read_bytes())
    study = str(pydicom.dcmread(corpus.files["ct1"], stop_before_pixels=True).StudyInstanceUID)
    assert run(site_file, "--study", study, "--out", str(tmp_path / "from-cache"), "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["manifest"]["counts"]["written"] == 7
    assert run(site_file, "--study", "1.2.3.404", "--out", str(tmp_path / "none")) == 2
    assert "not in the retrieval cache" in capsys.readouterr().err


def test_reidentification_table_is_kept_when_the_site_chooses_it_and_read_by_admins_only(corpus, tmp_path, capsys,
                                                                                          monkeypatch):
    config = tmp_path / "site.toml"
    config.write_text(f"""
[store]
path = "{tmp_path / 'store.sqlite'}"

[users]
login_variable = "WS_LOGIN"
roles = {{ rita = "reviewer", ada = "admin" }}

[deid]
keep_reidentification = true
""", encoding="utf-8")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("WS_LOGIN", "rita")
    assert run(config, str(corpus.files["ct1"]), "--out", str(tmp_path / "a"), "--json") == 0
    manifest = json.loads(capsys.readouterr().out)["manifest"]
    pseudonym = manifest["patients"][0]["pseudonym"]
    assert main(["export", "reidentify", pseudonym, "--config", str(config)]) == 2  # a reviewer may not
    assert "admins only" in capsys.readouterr().err
    os.environ["WS_LOGIN"] = "ada"
    assert main(["export", "reidentify", pseudonym, "--config", str(config), "--json"]) == 0
    (link,) = json.loads(capsys.readouterr().out)
    assert link["kind"] == "patient" and link["original"] == "7654321"
    study = manifest["patients"][0]["studies"][0]
    assert main(["export", "reidentify", study, "--config", str(config)]) == 0
    assert "1.2.826.0.1.3680043.8.498.914." in capsys.readouterr().out
    assert main(["export", "reidentify", "P-NOBODY", "--config", str(config)]) == 1


def test_no_reidentification_table_by_default(corpus, site_file, tmp_path, capsys):
    assert run(site_file, str(corpus.files["ct1"]), "--out", str(tmp_path / "a"), "--json") == 0
    pseudonym = json.loads(capsys.readouterr().out)["manifest"]["patients"][0]["pseudonym"]
    site_file.write_text(site_file.read_text().replace('rob = "radiologist"', 'rob = "radiologist", ada = "admin"'))
    os.environ["WS_LOGIN"] = "ada"
    assert main(["export", "reidentify", pseudonym, "--config", str(site_file)]) == 1
