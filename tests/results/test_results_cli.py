"""`workstation results build` and the build service on a real encrypted store: what is written when,
exit codes, the export audit entry."""

from __future__ import annotations

import json

import keyring.core
import pydicom
import pytest
from results_helpers import MODEL, record_run, review_run

from workstation.cli import main
from workstation.core.roles import Role, User
from workstation.services.results_build import NothingToBuild, build_for_series
from workstation.store.database import Identity, Store


@pytest.fixture
def site(tmp_path, monkeypatch):
    config = tmp_path / "site.toml"
    config.write_text(f"""
[workstation]
id = "ws-results"
[store]
path = "{tmp_path / 'store.sqlite'}"
[users]
login_variable = "WS_LOGIN"
roles = {{ bob = "reviewer" }}
""", encoding="utf-8")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("WS_LOGIN", "bob")
    return config


def store_of(site) -> Store:
    return Store.open(site.parent / "store.sqlite", Identity(User("bob", Role.REVIEWER), "ws-results"),
                      keyring.core.load_env())


def test_build_writes_the_four_objects_and_records_the_export(site, study, display_set, tmp_path, capsys):
    with store_of(site) as store:
        review_run(store, display_set, record_run(store, display_set))
    out = tmp_path / "out"
    assert main(["results", "build", str(study.directory), "--out", str(out), "--json", "--config", str(site)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "workstation.results-build/1" and document["skipped"] == []
    assert [e["kind"] for e in document["written"]] == ["ai-sr", "review-sr", "gsps", "pmap"]
    for entry in document["written"]:
        ds = pydicom.dcmread(entry["path"])
        assert entry["path"].endswith(f"/{entry['kind']}-{ds.SOPInstanceUID}.dcm")
        assert (entry["sop_instance_uid"], entry["source_series_instance_uid"], entry["signed_off"]) == (
            ds.SOPInstanceUID, display_set.series.series_instance_uid, True)
    assert sorted(p.name for p in out.iterdir()) == sorted(e["path"].rsplit("/", 1)[1] for e in document["written"])
    with store_of(site) as store:
        export = store.audit_entries()[-1]
    assert export.kind == "export" and export.study_instance_uid == display_set.series.study.study_instance_uid
    assert [o["sop_instance_uid"] for o in export.details["objects"]] == [e["sop_instance_uid"] for e in document["written"]]
    assert "PHANTOM" not in json.dumps(export.details)
    assert main(["results", "build", str(study.directory), "--out", str(out), "--config", str(site)]) == 0
    assert capsys.readouterr().out.count("wrote ") == 4


def test_without_sign_off_there_is_no_review_sr_and_a_reopen_withdraws_it(site, study, display_set):
    series = display_set.series.series_instance_uid
    with store_of(site) as store:
        run = record_run(store, display_set)
        review = review_run(store, display_set, run, sign=False)
        assert [b.kind for b in build_for_series(store, series, [study.directory])] == ["ai-sr", "gsps", "pmap"]
        review.sign_off()
        assert "review-sr" in [b.kind for b in build_for_series(store, series, [study.directory])]
        review.reopen(comment="second look")
        assert [b.kind for b in build_for_series(store, series, [study.directory])] == ["ai-sr", "gsps", "pmap"]


def test_a_run_without_a_kept_heatmap_gets_no_parametric_map(site, study, display_set):
    with store_of(site) as store:
        record_run(store, display_set, heat=False)
        built = build_for_series(store, display_set.series.series_instance_uid, [study.directory])
    assert [b.kind for b in built] == ["ai-sr", "gsps"]
    assert built[0].dataset.ContentSequence  # the AI SR lists the findings all the same


def test_nothing_to_build_exits_1_with_the_reason(site, study, display_set, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["results", "build", str(study.directory), "--out", out, "--json", "--config", str(site)]) == 1
    (skipped,) = json.loads(capsys.readouterr().out)["skipped"]
    assert skipped["reason"].startswith("no AI run stored for series")
    assert main(["results", "build", str(study.directory), "--series", "1.2.3", "--out", out, "--config", str(site)]) == 1
    assert "no image series under the given paths matches" in capsys.readouterr().out
    with store_of(site) as store:
        with pytest.raises(NothingToBuild, match="not among the given files"):
            record_run(store, display_set)
            build_for_series(store, display_set.series.series_instance_uid, [str(tmp_path)])


def test_a_locked_store_exits_3_and_bad_usage_exits_2(site, study, tmp_path, monkeypatch, capsys):
    with store_of(site):
        pass
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "another-keyring"))  # the key is not in this keyring
    assert main(["results", "build", str(study.directory), "--out", str(tmp_path / "o"), "--config", str(site)]) == 3
    assert "cannot be opened" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["results", "build", str(study.directory)])
    assert usage.value.code == 2
    assert main(["results", "build", str(study.directory), "--out", "o", "--config", str(tmp_path / "none.toml")]) == 2


def test_the_model_is_named_in_every_series_description(site, study, display_set):
    with store_of(site) as store:
        record_run(store, display_set)
        built = build_for_series(store, display_set.series.series_instance_uid, [study.directory])
    assert all(f"{MODEL.name} {MODEL.version}" in b.dataset.SeriesDescription for b in built)
